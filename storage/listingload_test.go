package storage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// migrated is a fresh database with TIP's schema.
func migrated(t *testing.T) *storage.DB {
	t.Helper()
	db := openFresh(t)
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestMergeWritesOnlyWhatChanged merges three lists of one source in turn and
// checks every listing's dates: a listing still listed is not rewritten, yet
// reads as seen at the source's last load; a removed one keeps the load that
// last saw it; a re-listed one keeps its first sighting.
func TestMergeWritesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	db := migrated(t)
	sql := testenv.SQL(t, db)
	for _, name := range []string{"s", "other"} {
		if err := db.UpsertSource(ctx, storage.SourceRow{Name: name, URL: "https://x/" + name, Format: "ip-list", Type: "ipv4", Prior: 0.5, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	mergeList := func(source string, values ...string) (storage.Merged, time.Time) {
		t.Helper()
		return mergeValues(t, db, source, values...)
	}
	type listing struct {
		firstSeen, lastSeen time.Time
		active              bool
		removedAt           *time.Time
	}
	listings := func(source string) map[string]listing {
		t.Helper()
		rows, _ := sql.Query(ctx, `SELECT i.value, l.first_seen, l.last_seen, l.active, l.removed_at
			FROM listings l JOIN indicators i ON i.id = l.indicator_id WHERE l.source = $1`, source)
		out := map[string]listing{}
		var v string
		var l listing
		if _, err := pgx.ForEachRow(rows, []any{&v, &l.firstSeen, &l.lastSeen, &l.active, &l.removedAt}, func() error {
			out[v] = l
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	versions := func() map[string]string { // each listing row's version, to see what a merge rewrote
		t.Helper()
		rows, _ := sql.Query(ctx, `SELECT i.value, l.xmin::text FROM source_listings l
			JOIN indicators i ON i.id = l.indicator_id JOIN sources s ON s.id = l.source_id WHERE s.name = 's'`)
		out := map[string]string{}
		var v, x string
		if _, err := pgx.ForEachRow(rows, []any{&v, &x}, func() error {
			out[v] = x
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}

	mergeList("other", "9.0.0.2") // an indicator another source listed first
	r1, t1 := mergeList("s", "9.0.0.1", "9.0.0.2", "9.0.0.2", "9.0.0.3")
	if r1.Entries != 3 || r1.Added != 3 || r1.Removed != 0 {
		t.Fatalf("first load: %+v", r1)
	}
	v1 := versions()
	r2, t2 := mergeList("s", "9.0.0.1", "9.0.0.2", "9.0.0.4")
	if r2.Entries != 3 || r2.Added != 1 || r2.Removed != 1 {
		t.Fatalf("second load: %+v", r2)
	}
	if v2 := versions(); v2["9.0.0.1"] != v1["9.0.0.1"] || v2["9.0.0.2"] != v1["9.0.0.2"] {
		t.Errorf("listings still listed were rewritten: %v, then %v", v1, v2)
	}
	ls := listings("s")
	if l := ls["9.0.0.1"]; !l.active || !l.firstSeen.Equal(t1) || !l.lastSeen.Equal(t2) || l.removedAt != nil {
		t.Errorf("still listed: %+v, loads at %s and %s", l, t1, t2)
	}
	if l := ls["9.0.0.3"]; l.active || !l.lastSeen.Equal(t1) || l.removedAt == nil || !l.removedAt.Equal(t2) {
		t.Errorf("removed: %+v, loads at %s and %s", l, t1, t2)
	}
	if l := ls["9.0.0.4"]; !l.active || !l.firstSeen.Equal(t2) || !l.lastSeen.Equal(t2) {
		t.Errorf("new: %+v, load at %s", l, t2)
	}

	r3, t3 := mergeList("s", "9.0.0.3", "9.0.0.4")
	if r3.Entries != 2 || r3.Added != 1 || r3.Removed != 2 {
		t.Fatalf("third load: %+v", r3)
	}
	ls = listings("s")
	if l := ls["9.0.0.3"]; !l.active || !l.firstSeen.Equal(t1) || !l.lastSeen.Equal(t3) || l.removedAt != nil {
		t.Errorf("re-listed: %+v, loads at %s and %s", l, t1, t3)
	}
	if l := ls["9.0.0.1"]; l.active || !l.lastSeen.Equal(t2) || !l.removedAt.Equal(t3) {
		t.Errorf("removed after two loads: %+v, loads at %s and %s", l, t2, t3)
	}
	if l := listings("other")["9.0.0.2"]; !l.active {
		t.Errorf("another source's listing changed: %+v", l)
	}
	var indicators int
	sql.QueryRow(ctx, `SELECT count(*) FROM indicators`).Scan(&indicators)
	if indicators != 4 {
		t.Errorf("%d indicators, want 4", indicators)
	}
}

// mergeValues loads values (IPv4 addresses) as source's list, the way
// LoadSource does, and returns what the merge changed and the load's time.
func mergeValues(t *testing.T, db *storage.DB, source string, values ...string) (storage.Merged, time.Time) {
	t.Helper()
	m, at, err := tryMerge(db, source, values...)
	if err != nil {
		t.Fatal(err)
	}
	return m, at
}

var runKeys atomic.Int64

func tryMerge(db *storage.DB, source string, values ...string) (storage.Merged, time.Time, error) {
	return tryLoad(db, source, "ip-list", strings.Join(values, "\n")+"\n")
}

// tryLoad loads body, a feed in format, as source's list: copied, merged,
// and committed as a run; it returns what the merge did and the load's time.
func tryLoad(db *storage.DB, source, format, body string) (storage.Merged, time.Time, error) {
	ctx := context.Background()
	l, err := db.BeginListingLoad(ctx, source)
	if err != nil {
		return storage.Merged{}, time.Time{}, err
	}
	defer l.Rollback(ctx)
	if _, _, parseErr, copyErr := l.CopyParsed(ctx, format, feeds.Options{}, strings.NewReader(body), nil); parseErr != nil || copyErr != nil {
		return storage.Merged{}, time.Time{}, errors.Join(parseErr, copyErr)
	}
	m, err := l.Merge(ctx)
	if err != nil {
		return m, time.Time{}, err
	}
	run := storage.SourceRun{RunKey: fmt.Sprint("merge-", runKeys.Add(1)), Fetch: contract.FetchResult{StartedAt: time.Now()},
		Result: contract.LoadResult{Source: source, Status: contract.RunLoaded, Entries: m.Entries, Added: m.Added, Removed: m.Removed}}
	if err := l.Commit(ctx, run); err != nil {
		return m, time.Time{}, err
	}
	// the load's time: the source's last success, set in the load's transaction
	s, err := db.Source(ctx, source)
	return m, s.LastSuccess, err
}

// TestMergeListsWhatAnotherLoadInsertedMeanwhile has a load insert an indicator
// that another load inserted and committed while it ran: it is listed all the
// same, once.
func TestMergeListsWhatAnotherLoadInsertedMeanwhile(t *testing.T) {
	ctx := context.Background()
	db := migrated(t)
	sql := testenv.SQL(t, db)
	if err := db.UpsertSource(ctx, storage.SourceRow{Name: "s", URL: "https://x/s", Format: "ip-list", Type: "ipv4", Prior: 0.5, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx) //nolint:errcheck
	if _, err := other.Exec(ctx, `INSERT INTO indicators (type, value, first_seen) VALUES ('ipv4', '9.0.0.9', now())`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		res storage.Merged
		err error
	}
	done := make(chan result)
	go func() {
		res, _, err := tryMerge(db, "s", "9.0.0.8", "9.0.0.9")
		done <- result{res, err}
	}()
	// the merge waits for the other insert of 9.0.0.9 to end; then it commits
	for waiting := false; !waiting; {
		time.Sleep(20 * time.Millisecond)
		if err := sql.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%WITH feed%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.res.Entries != 2 || r.res.Added != 2 {
		t.Fatalf("merge: %+v, %v", r.res, r.err)
	}
	var indicators, listed int
	sql.QueryRow(ctx, `SELECT count(*) FROM indicators`).Scan(&indicators)
	sql.QueryRow(ctx, `SELECT count(*) FROM listings WHERE source = 's' AND active`).Scan(&listed)
	if indicators != 2 || listed != 2 {
		t.Fatalf("%d indicators, %d listed; want 2 and 2", indicators, listed)
	}
}

// TestRecordRunOutcomeIsOneTransaction records runs that load nothing. The
// source's row, its health and the run are written in one transaction: a run
// that cannot be recorded leaves no source behind, and on a pool of a single
// connection recording neither waits for a second one nor fails.
func TestRecordRunOutcomeIsOneTransaction(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	open := func(dsn string) *storage.DB {
		db, err := storage.OpenDB(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return db
	}
	db := open(dsn)
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	src := storage.SourceRow{Name: "s", URL: "https://x/s", Format: "ip-list", Type: "ipv4", Prior: 0.5, Enabled: true}
	record := func(db *storage.DB, status, runKey string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return db.RecordRunOutcome(ctx, src, storage.SourceRun{RunKey: runKey, Fetch: contract.FetchResult{StartedAt: time.Now(), HTTPStatus: 500},
			Result: contract.LoadResult{Source: src.Name, Status: status, Error: "HTTP 500"}})
	}

	t.Run("RollsBackTheSource", func(t *testing.T) {
		// source_runs refuses the status: the run's insert fails, after the source's upsert
		if err := record(db, "bogus", "r0"); err == nil {
			t.Fatal("a run of status bogus was recorded")
		}
		if _, err := db.Source(context.Background(), src.Name); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after a run that could not be recorded, the source reads: %v; want it not recorded", err)
		}
	})
	t.Run("OnOneConnection", func(t *testing.T) {
		one := open(dsn + "&pool_max_conns=1")
		for i, status := range []string{contract.RunFailed, contract.RunDead, contract.RunUnchanged, contract.RunMalformed} {
			if err := record(one, status, fmt.Sprint("r", i+1)); err != nil {
				t.Fatalf("record a run %s on a pool of one connection: %v", status, err)
			}
		}
		s, err := one.Source(context.Background(), src.Name)
		if err != nil || s.ConsecutiveFailures != 1 || s.LastSuccess.IsZero() {
			t.Fatalf("source after failed, dead, unchanged, malformed: %+v, %v; want 1 consecutive failure and a last success", s, err)
		}
		if r, ok, err := one.RecordedRun(context.Background(), src.Name, "r2"); err != nil || !ok || r.Status != contract.RunDead || r.Error != "HTTP 500" {
			t.Fatalf("recorded run r2: %+v, %v, %v", r, ok, err)
		}
	})
}
