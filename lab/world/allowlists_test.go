package world

import (
	"net/netip"
	"strings"
	"testing"
)

func TestTopSitesAreBenignRankedAndStable(t *testing.T) {
	w := NewWorld(7)
	top := w.TopSites()
	if len(top) != TopSitesSize {
		t.Fatalf("%d top sites, want %d", len(top), TopSitesSize)
	}
	seen := map[string]bool{}
	for i, n := range top {
		if seen[n] {
			t.Fatalf("rank %d: %s listed twice", i+1, n)
		}
		seen[n] = true
		if d, ok := w.Domain(n); ok && d.Class != CDNDomain {
			t.Fatalf("rank %d: %s is %s, never a top site", i+1, n, d.Class)
		}
	}
	for _, d := range w.Domains {
		if d.Popular && !seen[d.Name] {
			t.Errorf("popular %s is not ranked", d.Name)
		}
	}
	if d, ok := w.Domain(top[0]); !ok || !d.Popular {
		t.Errorf("rank 1 is %q, want a popular name", top[0])
	}
	again := NewWorld(7).TopSites()
	for i := range top {
		if top[i] != again[i] {
			t.Fatalf("rank %d differs between two worlds of one seed: %s vs %s", i+1, top[i], again[i])
		}
	}
}

func TestCDNRangesCoverCDNDomainsOnly(t *testing.T) {
	w := NewWorld(7)
	ranges := w.CDNRanges()
	in := func(a netip.Addr) bool {
		for _, p := range ranges {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	for _, d := range w.DomainsOf(CDNDomain) {
		for _, a := range d.Pool {
			if !in(a) {
				t.Errorf("%s answers %s, outside the CDN ranges", d.Name, a)
			}
		}
	}
	for _, d := range w.DomainsOf(SingleFlux, DoubleFlux, Malicious) {
		for _, a := range d.Pool {
			if in(a) {
				t.Errorf("%s (%s) answers %s, inside the CDN ranges", d.Name, d.Class, a)
			}
		}
	}
	text := w.CDNRangesText()
	if n := strings.Count(text, "\n") - strings.Count(text, "#"); n != len(ranges) {
		t.Errorf("text has %d prefix lines, want %d", n, len(ranges))
	}
}
