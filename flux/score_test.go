package flux

import (
	"math"
	"net/netip"
	"testing"
)

// The boundary cases of Holz et al.'s model, as science.md gives them.
func TestHolzScore(t *testing.T) {
	cases := []struct {
		nA, nASN int
		want     float64
		flux     bool
	}{
		{9, 7, -0.72, false},
		{10, 7, +0.60, true},
		{8, 1, -113.28, false}, // CDN-like: -113.3
		{20, 10, +69.42, true}, // +69.4
		{1, 1, -122.52, false},
		{0, 0, -142.38, false},
	}
	for _, c := range cases {
		got := HolzScore(c.nA, c.nASN)
		if math.Abs(got-c.want) > 1e-9 {
			t.Errorf("HolzScore(%d, %d) = %.6f, want %.2f", c.nA, c.nASN, got, c.want)
		}
		if (got > 0) != c.flux {
			t.Errorf("HolzScore(%d, %d) = %.2f: flux %v, want %v", c.nA, c.nASN, got, got > 0, c.flux)
		}
	}
}

func TestCandidate(t *testing.T) {
	cases := []struct {
		ttl     uint32
		records int
		want    bool
	}{
		{300, 3, true},    // short enough, enough records
		{300, 2, false},   // too few records for a 5-minute TTL
		{30, 1, true},     // a 30 s TTL makes a candidate alone
		{31, 2, false},    // just above the short TTL
		{10800, 5, true},  // exactly 3 h
		{10801, 5, false}, // over 3 h
		{0, 1, true},
		{86400, 1, false},
	}
	for _, c := range cases {
		if got := Candidate(c.ttl, c.records); got != c.want {
			t.Errorf("Candidate(%d, %d) = %v, want %v", c.ttl, c.records, got, c.want)
		}
	}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestDiversity(t *testing.T) {
	cases := []struct {
		name  string
		addrs []netip.Addr
		want  float64
	}{
		{"empty", nil, 0},
		{"one address", addrs("1.2.3.4"), 0},
		{"one address twice", addrs("1.2.3.4", "1.2.3.4"), 0},
		{"all in one /16", addrs("1.2.3.4", "1.2.200.1", "1.2.0.9"), 0},
		{"each in its own /16", addrs("1.2.3.4", "5.6.7.8", "9.10.11.12", "13.14.15.16"), 1},
		// Two /16s, two addresses each: H = 1 bit, log2 4 = 2.
		{"two pairs", addrs("1.2.0.1", "1.2.0.2", "5.6.0.1", "5.6.0.2"), 0.5},
		// 3 addresses in one /16 and 1 in another: H = 0.8113, /2.
		{"three and one", addrs("1.2.0.1", "1.2.0.2", "1.2.0.3", "5.6.0.1"), 0.40564},
		{"IPv6 left out", addrs("2a00::1", "2a01::1", "1.2.3.4"), 0},
		{"mapped IPv4 counts", addrs("::ffff:1.2.3.4", "5.6.7.8"), 1},
	}
	for _, c := range cases {
		if got := Diversity(c.addrs); math.Abs(got-c.want) > 1e-4 {
			t.Errorf("%s: Diversity = %.5f, want %.5f", c.name, got, c.want)
		}
	}
	// FluxBuster's thresholds: per answer D ≥ 1/3, over a window D ≥ 0.5.
	if d := Diversity(addrs("1.2.0.1", "1.2.0.2", "1.2.0.3", "5.6.0.1")); d < MinAnswerDiversity || d >= MinWindowDiversity {
		t.Errorf("three and one: D %.3f should pass per answer and fail over a window", d)
	}
}

func TestJaccard(t *testing.T) {
	cases := []struct {
		name string
		a, b []netip.Addr
		want float64
		ok   bool
	}{
		{"both empty", nil, nil, 0, false},
		{"same set, other order", addrs("1.1.1.1", "2.2.2.2"), addrs("2.2.2.2", "1.1.1.1"), 1, true},
		{"disjoint", addrs("1.1.1.1"), addrs("2.2.2.2"), 0, true},
		{"half", addrs("1.1.1.1", "2.2.2.2", "3.3.3.3"), addrs("2.2.2.2", "3.3.3.3", "4.4.4.4"), 0.5, true},
		{"one empty", addrs("1.1.1.1"), nil, 0, true},
		{"duplicates ignored", addrs("1.1.1.1", "1.1.1.1"), addrs("1.1.1.1"), 1, true},
		{"mapped equals plain", addrs("::ffff:1.1.1.1"), addrs("1.1.1.1"), 1, true},
	}
	for _, c := range cases {
		got, ok := Jaccard(c.a, c.b)
		if ok != c.ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: Jaccard = %.3f, %v; want %.3f, %v", c.name, got, ok, c.want, c.ok)
		}
	}
	a := addrs("3.3.3.3", "1.1.1.1")
	Jaccard(a, nil)
	if a[0] != netip.MustParseAddr("3.3.3.3") {
		t.Error("Jaccard reordered its argument")
	}
}
