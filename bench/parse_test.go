//go:build bench

package bench

import (
	"bytes"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/feeds"
)

// parseTarget is the parse throughput issue 4 asks for, in lines per second on
// one core.
const parseTarget = 1_000_000

const parseRuns = 5

// benchParse parses the lab's large feed, generated in memory beforehand, with
// the format and options its catalog source names, on one core.
func benchParse(t *testing.T, l *lab, r *report) {
	body := l.largeBody(t)
	opts := activities.ParserOptions(l.large)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	runtime.GC()
	var took []time.Duration
	var st feeds.Stats
	for range parseRuns {
		start := time.Now()
		var err error
		st, err = feeds.Parse(l.large.Format, bytes.NewReader(body), opts, func(feeds.Indicator) error { return nil })
		took = append(took, time.Since(start))
		if err != nil {
			t.Fatalf("parse %s: %v", l.large.Name, err)
		}
	}
	if st.Lines < parseTarget {
		t.Fatalf("the large feed has %d lines, want at least %d", st.Lines, parseTarget)
	}
	slices.Sort(took)
	rate := func(d time.Duration) float64 { return float64(st.Lines) / d.Seconds() }
	med := took[len(took)/2]
	r.add(t, "parse: %d lines in %s = %.2fM lines/s (%.2fx the 1M lines/s target) [%s, %s, one core; median of %d runs, %.2f-%.2fM lines/s]",
		st.Lines, secs(med), rate(med)/1e6, rate(med)/parseTarget, l.large.Name, l.large.Format, parseRuns,
		rate(took[len(took)-1])/1e6, rate(took[0])/1e6)
}
