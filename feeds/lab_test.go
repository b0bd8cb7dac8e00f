package feeds_test

import (
	"bytes"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/feeds"
	lab "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
)

const day = 24 * time.Hour

// labServer is the lab's feed server for seed 1 on a fixed clock.
func labServer(t testing.TB) (*world.Clock, *lab.Server) {
	t.Helper()
	w := world.NewWorld(1)
	clock := world.FixedClock(w.Start)
	return clock, lab.New(w, clock, lab.Options{SlowChunkDelay: time.Millisecond, LargeLines: 20_000})
}

func get(t testing.TB, s *lab.Server, path string) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: status %d", path, rec.Code)
	}
	return rec.Body.Bytes()
}

func collect(t testing.TB, format string, body []byte) ([]feeds.Indicator, feeds.Stats, error) {
	t.Helper()
	var got []feeds.Indicator
	st, err := feeds.Parse(format, bytes.NewReader(body), feeds.Options{}, func(ind feeds.Indicator) error {
		got = append(got, ind)
		return nil
	})
	return got, st, err
}

// TestLabFeedsMatchTruth parses every lab feed in the format its catalog entry
// names and checks the indicators are exactly the lab's truth, normalised, minus
// the private and reserved entries, which must be counted as dropped.
func TestLabFeedsMatchTruth(t *testing.T) {
	clock, s := labServer(t)
	start := clock.Now()
	known := map[string]bool{}
	for _, f := range feeds.Formats() {
		known[f.Name] = true
	}
	for _, at := range []time.Duration{-20 * day, 0, 45 * day} {
		clock.Set(start.Add(at))
		truth := map[string]lab.FeedTruth{}
		for _, ft := range s.Truth(clock.Now()) {
			truth[ft.Feed] = ft
		}
		for _, f := range s.Catalog() {
			if !known[f.Format] {
				t.Errorf("%s: no parser for format %q", f.Name, f.Format)
				continue
			}
			if f.Behaviour != lab.OK && f.Behaviour != lab.Slow {
				continue
			}
			got, st, err := collect(t, f.Format, get(t, s, f.Path))
			if err != nil {
				t.Fatalf("%s at %v: %v", f.Name, at, err)
			}
			if st.Bad != 0 {
				t.Errorf("%s at %v: %d bad lines: %v", f.Name, at, st.Bad, st.BadSample)
			}
			var want []string
			dropped := 0
			for _, e := range truth[f.Name].Entries {
				ind, drop, err := feeds.Normalize(feeds.Type(e.Type), e.Value)
				if err != nil {
					t.Fatalf("%s: truth value %q does not normalise: %v", f.Name, e.Value, err)
				}
				if drop != "" {
					dropped++
					continue
				}
				want = append(want, ind.Value)
			}
			var vals []string
			for _, ind := range got {
				vals = append(vals, ind.Value)
				if f.Indicator == lab.Domain || f.Indicator == lab.URL {
					if ind.Type == feeds.Domain && ind.Registrable == "" {
						t.Errorf("%s: %s without a registrable domain", f.Name, ind.Value)
					}
				}
			}
			slices.Sort(vals)
			slices.Sort(want)
			if !slices.Equal(vals, want) {
				t.Errorf("%s at %v: parsed %d, truth %d\nparsed %v\ntruth  %v", f.Name, at, len(vals), len(want), vals, want)
			}
			nd := 0
			for reason, n := range st.Dropped {
				if reason != "local" {
					nd += n
				}
			}
			if nd != dropped {
				t.Errorf("%s at %v: dropped %d (%v), truth has %d private or reserved", f.Name, at, nd, st.Dropped, dropped)
			}
		}
	}
}

// TestLabFaultyFeeds: an HTML page with status 200 is malformed, a truncated
// body loses at most its last line, and the large feed parses whole.
func TestLabFaultyFeeds(t *testing.T) {
	_, s := labServer(t)
	for _, f := range s.Catalog() {
		switch f.Behaviour {
		case lab.HTMLError:
			_, _, err := collect(t, f.Format, get(t, s, f.Path))
			if !errors.Is(err, feeds.ErrMalformed) {
				t.Errorf("%s: HTML page parsed without ErrMalformed: %v", f.Name, err)
			}
		case lab.Truncated:
			got, st, err := collect(t, f.Format, get(t, s, f.Path))
			if err != nil {
				t.Errorf("%s: %v", f.Name, err)
			}
			if st.Bad > 1 || len(got) == 0 {
				t.Errorf("%s: %d indicators, %d bad", f.Name, len(got), st.Bad)
			}
		case lab.Large:
			got, st, err := collect(t, f.Format, get(t, s, f.Path))
			if err != nil || len(got) != 20_000 || st.Lines != 20_000 {
				t.Errorf("%s: %d indicators of %d lines, err %v", f.Name, len(got), st.Lines, err)
			}
		}
	}
}

var update = flag.Bool("update", false, "rewrite testdata/lab-* from the lab generator")

// TestUpdateFixtures writes one body of every lab feed to testdata, for the fuzz
// seeds and for trying `tip feeds parse` by hand.
func TestUpdateFixtures(t *testing.T) {
	if !*update {
		t.Skip("run with -update")
	}
	_, s := labServer(t)
	for _, f := range s.Catalog() {
		if f.Behaviour == lab.Dead || f.Behaviour == lab.Slow || f.Behaviour == lab.Large {
			continue
		}
		name := filepath.Join("testdata", "lab-"+f.Name+"."+f.Format)
		if err := os.WriteFile(name, get(t, s, f.Path), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
