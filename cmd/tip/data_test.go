package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tip-project/tip/internal/seed"
	"github.com/tip-project/tip/internal/testenv"
)

// tip data prune summarises the seed's flux checks (months old: past the
// default window) and removes them; a dry run first counts the same and
// changes nothing; tip flux show and tip flux pdns answer the same after.
func TestDataPruneKeepsWhatUsersRead(t *testing.T) {
	db, _ := seed.New(t)
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.DSN(t, db)
	setEnv(t, cfg)
	read := func() string {
		var b strings.Builder
		for _, args := range [][]string{{"flux", "show", seed.FluxBig, "--json"}, {"flux", "show", seed.FluxSmall}, {"flux", "pdns", seed.FluxBig, "--json"}} {
			out, err := runTip(t, args...)
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			b.WriteString(out)
		}
		return b.String()
	}
	before := read()
	if !strings.Contains(before, "hourly summaries before every check") {
		t.Errorf("tip flux show draws the months-old checks hourly even before a prune:\n%s", before)
	}
	type result struct {
		Observations int64 `json:"observations"`
		Hours        int64 `json:"hours"`
		BytesAfter   struct {
			Observations int64 `json:"flux_observations"`
		} `json:"bytes_after"`
	}
	var dry, done result
	for _, c := range []struct {
		args []string
		into *result
	}{{[]string{"data", "prune", "--dry-run", "--json"}, &dry}, {[]string{"data", "prune", "--json"}, &done}} {
		out, err := runTip(t, c.args...)
		if err != nil || json.Unmarshal([]byte(out), c.into) != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, out)
		}
	}
	if dry.Observations == 0 || dry.Observations != done.Observations || dry.Hours != done.Hours {
		t.Errorf("dry run %+v, prune %+v: want the same counts, some", dry, done)
	}
	if after := read(); after != before {
		t.Errorf("tip flux show and pdns changed by the prune:\nbefore %s\nafter %s", before, after)
	}
	out, err := runTip(t, "data", "prune")
	if err != nil || !strings.Contains(out, ": 0 summarised and removed into 0 hourly rows") {
		t.Errorf("a second prune: %v\n%s", err, out)
	}
}
