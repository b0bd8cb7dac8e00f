package storage

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/export"
)

// The rules of publishing, one step at a time: a first version, nothing new
// when nothing changed, a new version when what it says, its confidence or its
// validity's half-life calls for one, a collection joining, a revocation, and
// a new object after it.
func TestTaxiiStepVersionsAndRevokes(t *testing.T) {
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	firstSeen := t0.Add(-72 * time.Hour)
	opts := export.STIXOptions{MinScore: 0.5, HalfLife: ScoreHalfLife}
	want := func(score float64, own bool, sources ...string) *taxiiWant {
		r := export.Row{Type: "ipv4", Value: "45.10.0.7", Score: score, Sources: sources}
		return indicatorWant(7, firstSeen, r, own, 0.5, opts)
	}
	decode := func(rows []taxiiRow) map[string]any {
		var o map[string]any
		if err := json.Unmarshal([]byte(rows[0].object), &o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	step := func(prev taxiiPublished, w *taxiiWant, at time.Time) (taxiiPublished, []taxiiRow) {
		t.Helper()
		next, rows, err := taxiiStep(prev, w, at)
		if err != nil {
			t.Fatal(err)
		}
		if next == nil {
			return prev, rows
		}
		return *next, rows
	}
	collections := func(rows []taxiiRow) []string {
		var out []string
		for _, r := range rows {
			out = append(out, r.collection)
		}
		return out
	}

	// Below the minimum, listed by no own source: not published at all.
	if p, rows := step(taxiiPublished{}, want(0.4, false, "a"), t0); p.exists || len(rows) != 0 {
		t.Fatalf("an indicator in no collection: %+v %v", p, rows)
	}
	p, rows := step(taxiiPublished{}, want(0.9, false, "a"), t0)
	if !p.exists || p.episode != 0 || p.id != export.STIXIndicatorID("ipv4", "45.10.0.7", 0) || !slices.Equal(collections(rows), []string{TAXIIIndicators}) {
		t.Fatalf("first version: %+v %v", p, rows)
	}
	o := decode(rows)
	if o["created"] != export.STIXTime(firstSeen) || o["modified"] != export.STIXTime(t0) || o["valid_from"] != o["created"] {
		t.Errorf("first version's times: %v", o)
	}
	validity := opts.Validity(0.9)
	if o["valid_until"] != export.STIXTime(t0.Add(validity)) {
		t.Errorf("valid_until %v, want %s", o["valid_until"], export.STIXTime(t0.Add(validity)))
	}

	// Nothing changed, or the score moved less than the step: no version.
	t1 := t0.Add(time.Hour)
	if _, rows := step(p, want(0.88, false, "a"), t1); len(rows) != 0 {
		t.Errorf("a confidence 2 points lower made a version: %v", rows)
	}
	// An own source lists it too: a new version (its sources changed), in both
	// collections.
	p2, rows := step(p, want(0.95, true, "a", "tip-spamtrap-senders"), t1)
	if got := collections(rows); !slices.Equal(got, []string{TAXIIIndicators, TAXIIOwnSources}) || p2.id != p.id || !p2.modified.Equal(t1) {
		t.Fatalf("a new source: %v, %+v", got, p2)
	}
	if o := decode(rows); o["created"] != export.STIXTime(firstSeen) {
		t.Errorf("a later version's created: %v", o["created"])
	}
	// The confidence moves 5 points: a version.
	if _, rows := step(p2, want(0.90, true, "a", "tip-spamtrap-senders"), t1.Add(time.Minute)); len(rows) != 2 {
		t.Errorf("a confidence 5 points lower: %d versions", len(rows))
	}
	// Half the validity passed: a version renewing it.
	half := t1.Add(p2.validUntil.Sub(t1) / 2)
	if _, rows := step(p2, want(0.95, true, "a", "tip-spamtrap-senders"), half.Add(-time.Second)); len(rows) != 0 {
		t.Errorf("before half its validity: %d versions", len(rows))
	}
	if _, rows := step(p2, want(0.95, true, "a", "tip-spamtrap-senders"), half); len(rows) != 2 {
		t.Errorf("at half its validity: %d versions", len(rows))
	}
	// Dropping below the minimum but still own-listed: it stays, and the
	// collection holding it keeps getting its versions.
	if _, rows := step(p2, want(0.3, true, "tip-spamtrap-senders"), t1.Add(2*time.Minute)); !slices.Equal(collections(rows), []string{TAXIIIndicators, TAXIIOwnSources}) {
		t.Errorf("own-listed below the minimum: %v", collections(rows))
	}

	// Joining a collection without a change: the latest version is added to it.
	p3, _ := step(taxiiPublished{}, want(0.9, false, "a"), t0)
	p4, rows := step(p3, want(0.9, true, "a"), t1)
	if len(rows) != 1 || rows[0].collection != TAXIIOwnSources || !rows[0].version.Equal(t0) || !slices.Equal(p4.held, []string{TAXIIIndicators, TAXIIOwnSources}) {
		t.Errorf("joining a collection: %v, held %v", rows, p4.held)
	}

	// Revoked: every holding collection gets the revocation.
	t2 := t1.Add(time.Hour)
	p5, rows := step(p2, nil, t2)
	if !p5.revoked || len(rows) != 2 || !rows[0].revoked {
		t.Fatalf("revocation: %+v %v", p5, rows)
	}
	if o := decode(rows); o["revoked"] != true || o["modified"] != export.STIXTime(t2) || o["id"] != p2.id {
		t.Errorf("the revocation: %v", o)
	}
	if _, rows := step(p5, nil, t2.Add(time.Hour)); len(rows) != 0 {
		t.Error("revoked twice")
	}
	// Listed again: a new object, episode 1, created when it comes back.
	t3 := t2.Add(time.Hour)
	p6, rows := step(p5, want(0.9, false, "a"), t3)
	if p6.episode != 1 || p6.id == p2.id || p6.id != export.STIXIndicatorID("ipv4", "45.10.0.7", 1) || p6.revoked || !p6.created.Equal(t3) {
		t.Fatalf("listed again: %+v", p6)
	}
	if o := decode(rows); o["created"] != export.STIXTime(t3) {
		t.Errorf("the new object's created: %v", o["created"])
	}
}
