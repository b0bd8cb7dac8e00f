//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// loadTarget is how many times a bare COPY of the same rows the load may take.
const loadTarget = 1.5

// benchLoad loads the lab's large feed the way a refresh does — FetchSource
// streams it into S3, LoadSource streams it from S3 through the parser into
// PostgreSQL — and compares the load with a bare COPY of the same rows, already
// parsed in memory, into the empty indicators table of another fresh database
// (every column a load writes there; the load also writes the listings).
// Then it loads the next lab day's list over it: the large feed's steady state.
func benchLoad(t *testing.T, l *lab, r *report) {
	ctx := context.Background()
	src := l.large

	var rows [][]any
	now := time.Now()
	if _, err := feeds.Parse(src.Format, bytes.NewReader(l.largeBody(t)), activities.ParserOptions(src), func(i feeds.Indicator) error {
		rows = append(rows, []any{string(i.Type), i.Value, i.Registrable, now})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The COPY runs before and after the load, and the baseline is their mean, so
	// a change in what else the machine does during the run skews both sides alike.
	bareCopy := func() (int64, time.Duration) {
		base := newActivities(t)
		sql := testenv.SQL(t, base.Store.(*storage.DB))
		if err := sql.Ping(ctx); err != nil { // connected before the clock starts, as the load's pool is
			t.Fatal(err)
		}
		start := time.Now()
		n, err := sql.CopyFrom(ctx, pgx.Identifier{"indicators"},
			[]string{"type", "value", "registrable", "first_seen"}, pgx.CopyFromRows(rows))
		if err != nil {
			t.Fatal(err)
		}
		return n, time.Since(start)
	}
	copied, copyBefore := bareCopy()

	// Every statement's duration goes to the server log, so the report can say
	// where the load's time went without touching the load's code.
	a := newActivities(t, "log_min_duration_statement = 0")
	pglog := newServerLog(t)
	load := func(runKey string) (contract.LoadResult, time.Duration, time.Duration, string) {
		t.Helper()
		start := time.Now()
		f, err := a.FetchSource(ctx, src)
		fetchTook := time.Since(start)
		if err != nil || f.Status != contract.FetchChanged {
			t.Fatalf("fetch %s: %+v, %v", src.Name, f, err)
		}
		pglog.skip()
		start = time.Now()
		res, err := a.LoadSource(ctx, contract.LoadInput{Source: src, Fetch: f, RunKey: runKey})
		loadTook := time.Since(start)
		if err != nil || res.Status != contract.RunLoaded {
			t.Fatalf("load %s: %+v, %v", src.Name, res, err)
		}
		return res, fetchTook, loadTook, pglog.statements()
	}

	res, fetchTook, loadTook, where := load("bench/" + src.Name + "/1")
	if int64(res.Entries) != copied {
		t.Fatalf("the load listed %d indicators, the COPY wrote %d rows", res.Entries, copied)
	}
	_, copyAfter := bareCopy()
	rows = nil
	copyTook := (copyBefore + copyAfter) / 2
	ratio := loadTook.Seconds() / copyTook.Seconds()
	r.add(t, "load: %d indicators of %s: load activity %s vs bare COPY %s (%s before, %s after) = %.2fx (target <= %.1fx: %s); the fetch into S3 before it %s",
		copied, src.Name, secs(loadTook), secs(copyTook), secs(copyBefore), secs(copyAfter), ratio, loadTarget,
		verdict(ratio <= loadTarget), secs(fetchTook))
	r.add(t, "load:   where the load went (server-side statement times): %s", where)

	// A refresh loads the next list minutes later, when autovacuum has analyzed
	// the tables; ANALYZE now so the plans are the ones it would get. (Without
	// statistics the planner may pick plans that take far longer than any steady
	// state. The source's interval is dropped: it was fetched a moment ago.)
	if _, err := testenv.SQL(t, a.Store.(*storage.DB)).Exec(ctx, `ANALYZE indicators; ANALYZE source_listings`); err != nil {
		t.Fatal(err)
	}
	src.Interval = 0
	l.clock.Set(labTime.Add(24 * time.Hour))
	defer l.clock.Set(labTime)
	res, fetchTook, loadTook, where = load("bench/" + src.Name + "/2")
	r.add(t, "load: the next lab day's list over it (+%d -%d listings): load activity %s = %.2fx the COPY; fetch %s",
		res.Added, res.Removed, secs(loadTook), loadTook.Seconds()/copyTook.Seconds(), secs(fetchTook))
	r.add(t, "load:   where it went: %s", where)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// serverLog reads the statement durations the test cluster logs.
type serverLog struct {
	path string
	off  int64
}

func newServerLog(t *testing.T) *serverLog {
	return &serverLog{path: filepath.Join(testenv.Stack(t).Dir(devstack.Postgres), string(devstack.Postgres)+".log")}
}

// skip forgets what was logged so far.
func (s *serverLog) skip() {
	if fi, err := os.Stat(s.path); err == nil {
		s.off = fi.Size()
	}
}

// durationLine is PostgreSQL's log_min_duration_statement line for a simple
// query or the execution of a prepared one; the statement's text may start on
// the next line.
var durationLine = regexp.MustCompile(`duration: ([0-9.]+) ms  (?:statement|execute [^:]*): ?(.*)$`)

// statements sums the logged durations since skip by each statement's first
// words, slowest first: "WITH current AS 31.20s, INSERT INTO indicators 13.10s, ...".
func (s *serverLog) statements() string {
	f, err := os.Open(s.path)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer f.Close()
	if _, err := f.Seek(s.off, 0); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	s.skip()
	sums := map[string]float64{}
	var pending float64 // a duration whose statement text is on the next lines
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := durationLine.FindStringSubmatch(line); m != nil {
			ms, _ := strconv.ParseFloat(m[1], 64)
			if text := strings.TrimSpace(m[2]); text != "" {
				sums[firstWords(text)] += ms
			} else {
				pending = ms
			}
			continue
		}
		if text := strings.TrimSpace(line); pending > 0 && strings.HasPrefix(line, "\t") && text != "" {
			sums[firstWords(text)] += pending
			pending = 0
		}
	}
	type part struct {
		what string
		ms   float64
	}
	var parts []part
	other := 0.0
	for what, ms := range sums {
		if ms < 100 {
			other += ms
		} else {
			parts = append(parts, part{what, ms})
		}
	}
	slices.SortFunc(parts, func(a, b part) int { return cmp.Compare(b.ms, a.ms) })
	var out []string
	for _, p := range parts {
		out = append(out, fmt.Sprintf("%s %.2fs", p.what, p.ms/1000))
	}
	return strings.Join(append(out, fmt.Sprintf("the rest %.2fs", other/1000)), ", ")
}

// firstWords names a statement by its first three words before a parenthesis,
// unquoted: "copy staging", "INSERT INTO indicators", "WITH current AS".
func firstWords(sql string) string {
	var words []string
	for _, w := range strings.Fields(sql) {
		if strings.HasPrefix(w, "(") || len(words) == 3 {
			break
		}
		words = append(words, strings.Trim(w, `"`))
	}
	return strings.Join(words, " ")
}
