package flux

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/ipasn"
)

// testTable is an ASN table in the iptoasn format: AS 65000+i announces 10.i.0.0/16
// for i in 1..40 (residential-like networks, a country each), AS 64600 announces a
// CDN's 60.0.0.0/12, AS 64700 a hosting provider's 70.0.0.0/16, and 80.0.0.0/8 is
// not routed.
func testTable(t testing.TB) *ipasn.Table {
	t.Helper()
	var b strings.Builder
	b.WriteString("10.0.0.0\t10.0.255.255\t0\tNone\tNot routed\n")
	cc := []string{"RU", "UA", "BR", "IN", "VN", "TR", "RO", "CN"}
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "10.%d.0.0\t10.%d.255.255\t%d\t%s\tRES-%d Broadband\n", i, i, 65000+i, cc[i%len(cc)], i)
	}
	b.WriteString("60.0.0.0\t60.15.255.255\t64600\tUS\tCDN Edge\n")
	b.WriteString("70.0.0.0\t70.0.255.255\t64700\tDE\tHosting GmbH\n")
	b.WriteString("80.0.0.0\t80.255.255.255\t0\tNone\tNot routed\n")
	tab, st, err := ipasn.Load(strings.NewReader(b.String()))
	if err != nil || st.Bad != 0 {
		t.Fatalf("table: %+v %v", st, err)
	}
	return tab
}

// bots returns n addresses of the residential networks, from bot k on: bot i lives
// in AS 65001+(i%asns).
func bots(k, n, asns int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		b := k + i
		out[i] = netip.AddrFrom4([4]byte{10, byte(1 + b%asns), byte(b / 256), byte(1 + b%250)})
	}
	return out
}

// cdnAddrs returns n edge addresses in the CDN's /12, from address k on.
func cdnAddrs(k, n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		b := k + i
		out[i] = netip.AddrFrom4([4]byte{60, byte(b % 16), byte(b / 16), 1})
	}
	return out
}

var t0 = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

// answer builds an answered observation at t0+after.
func answer(after time.Duration, ttl uint32, a []netip.Addr, ns ...NameServer) Observation {
	o := Observation{Domain: "example.test", At: t0.Add(after), Status: NoError, NS: ns}
	for _, ip := range a {
		if ip.Is4() {
			o.A = append(o.A, Record{Addr: ip, TTL: ttl})
		} else {
			o.AAAA = append(o.AAAA, Record{Addr: ip, TTL: ttl})
		}
	}
	return o
}

func ns(name string, ips ...netip.Addr) NameServer {
	n := NameServer{Name: name, TTL: 300}
	for _, ip := range ips {
		n.Addrs = append(n.Addrs, Record{Addr: ip})
	}
	return n
}

func TestTriage(t *testing.T) {
	tab := testTable(t)
	hostNS := []NameServer{ns("ns1.example.test", netip.MustParseAddr("70.0.0.53")), ns("ns2.example.test", netip.MustParseAddr("70.0.1.53"))}
	allow := &Allowlist{}
	for _, e := range []string{"AS64600", "cdn-customer.test"} {
		if err := allow.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name          string
		first, second Observation
		allow         *Allowlist
		verdict       Verdict
		score         float64
		ips, asns     int
		reason        string
	}{
		{
			name:    "single flux: 10 bots in 7 ASNs",
			first:   answer(0, 120, bots(0, 5, 7), hostNS...),
			second:  answer(2*time.Minute, 120, bots(5, 5, 7), hostNS...),
			verdict: VerdictFlux, score: 0.60, ips: 10, asns: 7, reason: "Holz score +0.6 > 0",
		},
		{
			name:    "Holz just short, but rotating over 7 ASNs: 9 bots",
			first:   answer(0, 120, bots(0, 5, 7), hostNS...),
			second:  answer(2*time.Minute, 120, bots(5, 4, 7), hostNS...),
			verdict: VerdictFlux, score: -0.72, ips: 9, asns: 7, reason: "Holz score -0.7, but the answers rotate (Jaccard 0.00) over 7 ASNs",
		},
		{
			name:    "Holz short, answers mostly repeat",
			first:   answer(0, 120, bots(0, 5, 7), hostNS...),
			second:  answer(2*time.Minute, 120, bots(1, 5, 7), hostNS...),
			verdict: VerdictBenign, score: HolzScore(6, 6), ips: 6, asns: 6, reason: "Holz score -23.2 ≤ 0",
		},
		{
			name:    "Holz short, rotating over 3 ASNs only",
			first:   answer(0, 120, bots(0, 4, 3), hostNS...),
			second:  answer(2*time.Minute, 120, bots(4, 4, 3), hostNS...),
			verdict: VerdictBenign, score: HolzScore(8, 3), ips: 8, asns: 3,
		},
		{
			name:    "Holz short, rotating, but one answer mostly in one /16",
			first:   answer(0, 120, append(bots(0, 1, 5), netip.MustParseAddr("70.0.9.1"), netip.MustParseAddr("70.0.9.2"), netip.MustParseAddr("70.0.9.3"), netip.MustParseAddr("70.0.9.4"))),
			second:  answer(2*time.Minute, 120, append(bots(1, 4, 5), netip.MustParseAddr("70.0.9.5"), netip.MustParseAddr("70.0.9.6"), netip.MustParseAddr("70.0.9.7"), netip.MustParseAddr("70.0.9.8"))),
			verdict: VerdictBenign, score: HolzScore(13, 6), ips: 13, asns: 6,
		},
		{
			name:    "double flux: the name servers rotate too",
			first:   answer(0, 180, bots(0, 10, 10), ns("ns3.example.test", bots(100, 1, 10)...), ns("ns7.example.test", bots(101, 1, 10)...)),
			second:  answer(3*time.Minute, 180, bots(10, 10, 10), ns("ns1.example.test", bots(102, 1, 10)...), ns("ns7.example.test", bots(103, 1, 10)...)),
			verdict: VerdictDoubleFlux, score: 69.42, ips: 20, asns: 10, reason: "name servers rotate (3 names, 4 addresses in 4 ASNs)",
		},
		{
			name:    "double flux: same NS names, new addresses",
			first:   answer(0, 180, bots(0, 10, 10), ns("ns1.example.test", bots(100, 1, 10)...)),
			second:  answer(3*time.Minute, 180, bots(10, 10, 10), ns("ns1.example.test", bots(101, 1, 10)...)),
			verdict: VerdictDoubleFlux, score: 69.42, ips: 20, asns: 10,
		},
		{
			name:    "NS answer missing from one resolution is no rotation",
			first:   answer(0, 180, bots(0, 10, 10), hostNS...),
			second:  answer(3*time.Minute, 180, bots(10, 10, 10)),
			verdict: VerdictFlux, score: 69.42, ips: 20, asns: 10,
		},
		{
			name:    "CDN-like: 8 edges in one ASN",
			first:   answer(0, 20, cdnAddrs(0, 4), hostNS...),
			second:  answer(20*time.Second, 20, cdnAddrs(4, 4), hostNS...),
			verdict: VerdictBenign, score: -113.28, ips: 8, asns: 1, reason: "8 IPs in 1 ASN and 8 /16s",
		},
		{
			name:    "huge CDN RRsets: positive score, but one ASN for 120 IPs",
			first:   answer(0, 20, cdnAddrs(0, 60), hostNS...),
			second:  answer(20*time.Second, 20, cdnAddrs(60, 60), hostNS...),
			verdict: VerdictBenign, score: 1.32*120 + 18.54 - 142.38, ips: 120, asns: 1, reason: "CDN-like",
		},
		{
			name:    "the same, allowlisted by ASN",
			first:   answer(0, 20, cdnAddrs(0, 60)),
			second:  answer(20*time.Second, 20, cdnAddrs(60, 60)),
			allow:   allow,
			verdict: VerdictCDN, score: 1.32*120 + 18.54 - 142.38, ips: 120, asns: 1, reason: "every address in an allowlisted ASN",
		},
		{
			name:    "one address outside the allowlist: scored",
			first:   answer(0, 20, cdnAddrs(0, 4)),
			second:  answer(20*time.Second, 20, append(cdnAddrs(4, 3), netip.MustParseAddr("70.0.0.80"))),
			allow:   allow,
			verdict: VerdictBenign, score: HolzScore(8, 2), ips: 8, asns: 2,
		},
		{
			name:    "allowlisted domain suffix, whatever the answers",
			first:   func() Observation { o := answer(0, 120, bots(0, 10, 10)); o.Domain = "img.cdn-customer.test"; return o }(),
			second:  answer(2*time.Minute, 120, bots(10, 10, 10)),
			allow:   allow,
			verdict: VerdictCDN, score: 69.42, ips: 20, asns: 10, reason: "allowlisted suffix cdn-customer.test",
		},
		{
			name:    "long TTLs fail the prefilter",
			first:   answer(0, 86400, bots(0, 10, 10)),
			second:  answer(24*time.Hour, 86400, bots(10, 10, 10)),
			verdict: VerdictBenign, score: 69.42, ips: 20, asns: 10, reason: "prefilter",
		},
		{
			name:    "static site",
			first:   answer(0, 3600, addrs("70.0.0.80"), hostNS...),
			second:  answer(time.Hour, 3600, addrs("70.0.0.80"), hostNS...),
			verdict: VerdictBenign, score: HolzScore(1, 1), ips: 1, asns: 1,
		},
		{
			name:    "unrouted addresses add no ASN",
			first:   answer(0, 60, []netip.Addr{netip.MustParseAddr("80.1.1.1"), netip.MustParseAddr("80.2.2.2"), netip.MustParseAddr("80.3.3.3")}),
			second:  answer(time.Minute, 60, []netip.Addr{netip.MustParseAddr("80.4.4.4")}),
			verdict: VerdictBenign, score: HolzScore(4, 0), ips: 4, asns: 0,
		},
		{
			name:    "taken down between the resolutions",
			first:   answer(0, 120, bots(0, 10, 10)),
			second:  Observation{Domain: "example.test", At: t0.Add(2 * time.Minute), Status: NXDomain},
			verdict: VerdictNXDomain, reason: "NXDOMAIN",
		},
		{
			name:    "never answered",
			first:   Observation{Domain: "example.test", At: t0, Status: ServFail},
			second:  Observation{Domain: "example.test", At: t0.Add(time.Minute), Status: Failed, Error: "timeout"},
			verdict: VerdictError, reason: "SERVFAIL, error (timeout)",
		},
		{
			name:    "one resolution failed: scored on the other",
			first:   answer(0, 120, bots(0, 20, 10)),
			second:  Observation{Domain: "example.test", At: t0.Add(2 * time.Minute), Status: Failed, Error: "timeout"},
			verdict: VerdictFlux, score: 69.42, ips: 20, asns: 10, reason: "only 1 of 2 resolutions answered",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Triage(c.first, c.second, tab, c.allow)
			if got.Verdict != c.verdict {
				t.Errorf("verdict %s, want %s (%s)", got.Verdict, c.verdict, got.Reason)
			}
			if d := got.Score - c.score; d > 1e-9 || d < -1e-9 {
				t.Errorf("score %.2f, want %.2f", got.Score, c.score)
			}
			if got.Features.IPs != c.ips || got.Features.ASNs != c.asns {
				t.Errorf("features %+v, want %d IPs in %d ASNs", got.Features, c.ips, c.asns)
			}
			if !strings.Contains(got.Reason, c.reason) {
				t.Errorf("reason %q, want it to say %q", got.Reason, c.reason)
			}
		})
	}
}

func TestTriageFeatures(t *testing.T) {
	tab := testTable(t)
	first := answer(0, 120, append(bots(0, 6, 6), netip.MustParseAddr("2a00::1")), ns("ns1.example.test", bots(50, 1, 6)...))
	second := answer(90*time.Second, 60, bots(6, 6, 6), ns("ns2.example.test", bots(51, 2, 6)...))
	got := Triage(first, second, tab, nil).Features
	want := Features{
		Answers: 2, IPs: 12, IPv6: 1, ASNs: 6, Prefixes: 6, Countries: 6, Unrouted: 0,
		MinTTL: 60, Candidate: true, NSNames: 2, NSAddrs: 3, NSASNs: 3, NSChanged: true,
	}
	d, ad := got.Diversity, got.AnswerDiversity
	got.Diversity, got.AnswerDiversity = 0, 0
	if got != want {
		t.Errorf("features\n%+v, want\n%+v", got, want)
	}
	// 12 addresses, 2 in each of 6 /16s: D = log2 6 / log2 12; each answer has 6 in 6.
	if wantD := 2.584963 / 3.584963; d < wantD-1e-5 || d > wantD+1e-5 || ad != 1 {
		t.Errorf("diversity %.5f (want %.5f), per answer %.5f (want 1)", d, wantD, ad)
	}
	if first.A[0].ASN != 0 {
		t.Error("Triage annotated the caller's observation")
	}
}

// Without a table, Triage uses the observations' own annotations.
func TestTriageUsesAnnotations(t *testing.T) {
	tab := testTable(t)
	first, second := answer(0, 120, bots(0, 10, 10)), answer(2*time.Minute, 120, bots(10, 10, 10))
	first.Annotate(tab)
	second.Annotate(tab)
	got := Triage(first, second, nil, nil)
	if got.Verdict != VerdictFlux || got.Features.ASNs != 10 || got.Features.Countries != 8 {
		t.Fatalf("%+v", got)
	}
	if bare := Triage(answer(0, 120, bots(0, 10, 10)), answer(2*time.Minute, 120, bots(10, 10, 10)), nil, nil); bare.Features.ASNs != 0 || bare.Features.Unrouted != 20 {
		t.Fatalf("unannotated: %+v", bare.Features)
	}
}

// Observations resolved without an ASN table say so: triage computes no score,
// calls benign only what no ASNs could make flux, and leaves the rest to a later
// triage with the reason. A table given to Triage annotates them after all.
func TestTriageWithoutASNs(t *testing.T) {
	const why = "ASN table unavailable: asn table http://192.0.2.1/ip2asn.tsv: connection refused"
	noASN := func(o Observation) Observation { o.NoASN = why; return o }
	cases := []struct {
		name          string
		first, second Observation
		verdict       Verdict
		reason        string
	}{
		{"10 bots rotating: flux with ASNs", answer(0, 120, bots(0, 5, 7)), answer(2*time.Minute, 120, bots(5, 5, 7)),
			VerdictError, "flux or not depends on the origin ASNs, unknown: 10 IPs and 7 /16s, min TTL 120 s; " + why},
		{"3 addresses: never flux", answer(0, 120, bots(0, 3, 3)), answer(2*time.Minute, 120, bots(0, 3, 3)),
			VerdictBenign, "score not computed, but the Holz score of 3 IPs is ≤ 0 in any number of ASNs and the answers do not rotate"},
		{"long TTLs", answer(0, 86400, bots(0, 5, 7)), answer(2*time.Minute, 86400, bots(5, 5, 7)),
			VerdictBenign, "TTLs fail FluxBuster's prefilter; score not computed"},
		{"gone", answer(0, 120, bots(0, 5, 7)), Observation{Domain: "example.test", Status: NXDomain},
			VerdictNXDomain, "the name does not exist"},
	}
	for _, c := range cases {
		got := Triage(noASN(c.first), noASN(c.second), nil, nil)
		if got.Verdict != c.verdict || !strings.Contains(got.Reason, c.reason) || got.Scored() || got.Score != 0 {
			t.Errorf("%s: %s (scored %v, %.1f) %q; want %s %q", c.name, got.Verdict, got.Scored(), got.Score, got.Reason, c.verdict, c.reason)
		}
		if f := got.Features; f.Answers > 0 && (f.NoASN != why || f.ASNs+f.Countries+f.Unrouted+f.NSASNs != 0) {
			t.Errorf("%s: features %+v", c.name, f)
		}
	}
	withTable := Triage(noASN(cases[0].first), noASN(cases[0].second), testTable(t), nil)
	if withTable.Verdict != VerdictFlux || !withTable.Scored() || withTable.Features.NoASN != "" || withTable.Features.ASNs != 7 {
		t.Errorf("annotated by Triage: %+v", withTable)
	}
}

// Behind a caching resolver every TTL is what remains of a cached copy: the
// second resolution comes once the longest of them has run out, the name
// servers' and the AAAA records' included, with a margin, at most maxWait.
func TestResolveAgainAfter(t *testing.T) {
	v6 := netip.MustParseAddr("2a00::1")
	withAAAA := answer(0, 60, append(bots(0, 3, 3), v6))
	withAAAA.AAAA[0].TTL = 240
	dflux := answer(0, 30, bots(0, 5, 5), NameServer{Name: "ns1.example.test", TTL: 90, Addrs: []Record{{Addr: bots(9, 1, 1)[0], TTL: 120}}})
	cases := []struct {
		name    string
		obs     []Observation
		maxWait time.Duration
		want    Wait
		says    string
	}{
		{"the longest A TTL of the batch", []Observation{answer(0, 30, bots(0, 3, 3)), answer(0, 240, bots(3, 3, 3))}, 10 * time.Minute,
			Wait{For: 242 * time.Second, Longest: 240}, "waited 4m2s: the answers' TTLs (max 240 s) ran out"},
		{"an AAAA TTL longer than the A's", []Observation{withAAAA}, 10 * time.Minute,
			Wait{For: 242 * time.Second, Longest: 240}, "(max 240 s) ran out"},
		{"the name servers' addresses outlive the A records", []Observation{dflux}, 10 * time.Minute,
			Wait{For: 122 * time.Second, Longest: 120}, "(max 120 s) ran out"},
		{"an hour's TTL: the maximum, said so", []Observation{answer(0, 3600, bots(0, 3, 3))}, 10 * time.Minute,
			Wait{For: 10 * time.Minute, Longest: 3600, Capped: true},
			"waited the maximum 10m0s; TTLs of 3600 s had not run out: the answer may come from the resolver's cache"},
		{"nothing answered", []Observation{{Status: NXDomain}, {Status: Failed}}, 10 * time.Minute,
			Wait{For: TTLMargin}, "waited 2s: the answers held no TTLs"},
		{"no wait allowed", []Observation{answer(0, 30, bots(0, 3, 3))}, 0, Wait{Longest: 30, Capped: true}, "waited the maximum 0s"},
	}
	for _, c := range cases {
		got := ResolveAgainAfter(c.obs, c.maxWait)
		if got != c.want || !strings.Contains(got.String(), c.says) {
			t.Errorf("%s: %+v %q, want %+v %q", c.name, got, got, c.want, c.says)
		}
	}
}

// smallFlux is a flux domain's bots two at a time with a 30 s TTL: the first two
// answers span 3 ASNs (one short of MinRotationASNs), the third brings a fourth.
var smallFlux = []netip.Addr{
	netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1"),
	netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("10.3.0.1"),
	netip.MustParseAddr("10.4.0.1"), netip.MustParseAddr("10.2.1.1"),
}

// A benign verdict near flux gets a third resolution; what one more answer
// cannot change does not.
func TestLookAgain(t *testing.T) {
	tab := testTable(t)
	at := func(o Observation) Observation { o.Annotate(tab); return o }
	small := func(after time.Duration, k int) Observation { return at(answer(after, 30, smallFlux[k:k+2])) }
	cases := []struct {
		name          string
		first, second Observation
		maxWait       time.Duration
		verdict       Verdict
		want          bool
	}{
		{"two small answers rotating over 3 ASNs: a third may make 4", small(0, 0), small(2*time.Minute, 2), 10 * time.Minute, VerdictBenign, true},
		{"a round-robin set: nothing new", at(answer(0, 60, bots(0, 4, 4))), at(answer(2*time.Minute, 60, bots(0, 4, 4))), 10 * time.Minute, VerdictBenign, false},
		{"a CDN rotating in one network", at(answer(0, 20, cdnAddrs(0, 30))), at(answer(time.Minute, 20, cdnAddrs(30, 30))), 10 * time.Minute, VerdictBenign, false},
		{"already flux", at(answer(0, 60, bots(0, 5, 10))), at(answer(2*time.Minute, 60, bots(5, 5, 10))), 10 * time.Minute, VerdictFlux, false},
		{"the cached copy (TTL 900 s, 10 minutes later), its rest within the wait",
			at(answer(0, 900, bots(0, 3, 3))), at(answer(10*time.Minute, 300, bots(0, 3, 3))), 10 * time.Minute, VerdictBenign, true},
		{"the cached copy, its rest past the wait", at(answer(0, 3600, bots(0, 3, 3))), at(answer(10*time.Minute, 3000, bots(0, 3, 3))), 10 * time.Minute, VerdictBenign, false},
		{"the same answer after its TTL: the zone's, not a cache's", at(answer(0, 60, bots(0, 3, 3))), at(answer(2*time.Minute, 60, bots(0, 3, 3))), 10 * time.Minute, VerdictBenign, false},
		{"long TTLs fail the prefilter", at(answer(0, 86400, bots(0, 2, 3))), at(answer(2*time.Minute, 86400, bots(2, 2, 3))), 10 * time.Minute, VerdictBenign, false},
	}
	for _, c := range cases {
		a := Triage(c.first, c.second, nil, nil)
		if a.Verdict != c.verdict {
			t.Fatalf("%s: verdict %s (%s), want %s", c.name, a.Verdict, a.Reason, c.verdict)
		}
		if got := LookAgain(a, c.first, c.second, c.maxWait); got != c.want {
			t.Errorf("%s: LookAgain %v, want %v (%s)", c.name, got, c.want, a.Reason)
		}
	}
	// The third answer decides: the small rotation spans 4 ASNs and is flux.
	third := TriageAll([]Observation{small(0, 0), small(2*time.Minute, 2), small(4*time.Minute, 4)}, nil, nil)
	if third.Verdict != VerdictFlux || third.Features.Answers != 3 || third.Features.ASNs < MinRotationASNs {
		t.Errorf("three small answers: %s (%s)", third.Verdict, third.Reason)
	}
}

// Three resolutions: the NXDOMAIN rule and the name servers' rotation read the
// last, the features pool all three.
func TestTriageAllThreeLooks(t *testing.T) {
	tab := testTable(t)
	gone := Observation{Domain: "example.test", At: t0.Add(4 * time.Minute), Status: NXDomain}
	if got := TriageAll([]Observation{answer(0, 60, bots(0, 5, 10)), answer(2*time.Minute, 60, bots(5, 5, 10)), gone}, tab, nil); got.Verdict != VerdictNXDomain {
		t.Errorf("taken down at the third look: %s (%s)", got.Verdict, got.Reason)
	}
	first := answer(0, 30, smallFlux[0:2], ns("ns1.example.test", bots(50, 1, 3)...))
	second := answer(2*time.Minute, 30, smallFlux[2:4], ns("ns1.example.test", bots(50, 1, 3)...))
	third := answer(4*time.Minute, 30, smallFlux[4:6], ns("ns2.example.test", bots(51, 1, 3)...))
	got := TriageAll([]Observation{first, second, third}, tab, nil)
	if got.Verdict != VerdictDoubleFlux || got.Features.IPs != 6 || got.Features.Answers != 3 || got.Features.Jaccard != 0 {
		t.Errorf("three looks: %s %+v (%s)", got.Verdict, got.Features, got.Reason)
	}
	if got := TriageAll(nil, tab, nil); got.Verdict != VerdictError {
		t.Errorf("no looks: %+v", got)
	}
}
