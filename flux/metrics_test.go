package flux

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSet(t *testing.T) {
	var s Set[uint32]
	for _, c := range []struct {
		v   uint32
		new bool
	}{{5, true}, {1, true}, {5, false}, {3, true}, {9, true}, {1, false}, {9, false}, {3, false}} {
		if got := s.Add(c.v, 3); got != c.new {
			t.Errorf("Add(%d) = %v, want %v", c.v, got, c.new)
		}
	}
	// Full at 3: 9 went to the sketch, once.
	if got := s.Items; !reflect.DeepEqual(got, []uint32{1, 3, 5}) || !s.Full() || s.Len() != 4 || !s.Has(3) || s.Has(9) {
		t.Errorf("set %+v, len %d", s, s.Len())
	}
}

func TestSketchAccuracy(t *testing.T) {
	var s Sketch
	// How far Count falls short, and how far Len is off, at most.
	checks := map[int]struct{ count, len float64 }{
		100: {0, 0}, 1000: {0.001, 0.001}, 2000: {0.003, 0.003}, 5000: {0.02, 0.005},
		10000: {0.10, 0.01}, 25000: {0.5, 0.01}, 50000: {1, 0.05},
	}
	for i := 1; i <= 50000; i++ {
		a := netip.AddrFrom4([4]byte{byte(1 + i%200), byte(i >> 8), byte(i), byte(i * 7)})
		s.Add(a, IPSketchBits)
		if s.Add(a, IPSketchBits) {
			t.Fatalf("%s new twice", a)
		}
		if limit, ok := checks[i]; ok {
			short, off := 1-float64(s.Count)/float64(i), math.Abs(float64(s.Len())/float64(i)-1)
			t.Logf("%5d distinct addresses: Count %d (%.2f %% short), Len %d (%.2f %% off)", i, s.Count, 100*short, s.Len(), 100*off)
			if short > limit.count || off > limit.len {
				t.Errorf("%d distinct: Count %.2f %% short, Len %.2f %% off; want at most %.1f %% and %.1f %%", i, 100*short, 100*off, 100*limit.count, 100*limit.len)
			}
		}
	}
	if len(s.Bits) != IPSketchBits/8 || s.Len() < s.Count {
		t.Errorf("sketch grew to %d bytes", len(s.Bits))
	}
	if !s.Has(netip.AddrFrom4([4]byte{2, 0, 1, 7})) || (&Sketch{}).Has(netip.MustParseAddr("1.1.1.1")) {
		t.Error("Has")
	}
	// Mapped and plain IPv4 are one address; IPv6 is another.
	var m Sketch
	if !m.Add(netip.MustParseAddr("1.2.3.4"), 64) || m.Add(netip.MustParseAddr("::ffff:1.2.3.4"), 64) || !m.Add(netip.MustParseAddr("2a00::1"), 64) {
		t.Errorf("families: %+v", m)
	}
}

// A sparse sketch sets the same bits as the bitmap did, so every count and every
// JSON a workflow carried is the same: checked against a plain bitmap filter
// (the sketch before sparse ones), across the switch to the bitmap and through
// JSON round trips (continue-as-new) on the way.
func TestSketchSparseIsTheBitmapsTwin(t *testing.T) {
	for _, bits := range []int{IPSketchBits, NSAddrSketchBits, 64} {
		var s Sketch
		ref := make([]byte, bits/8)
		refCount, refOnes := 0, 0
		for i := 1; i <= 3000; i++ {
			a := netip.AddrFrom4([4]byte{byte(1 + i%200), byte(i >> 8), byte(i), byte(i * 7)})
			if i%3 == 0 {
				a = netip.AddrFrom4([4]byte{byte(1 + (i/2)%200), byte((i / 2) >> 8), byte(i / 2), byte(i / 2 * 7)}) // seen before
			}
			b := a.As16()
			h1, h2 := keyHash(b[:])
			refNew := false
			for k := uint64(0); k < sketchHashes; k++ {
				bit := (h1 + k*h2) % uint64(bits)
				if ref[bit/8]&(1<<(bit%8)) == 0 {
					ref[bit/8] |= 1 << (bit % 8)
					refOnes++
					refNew = true
				}
			}
			if refNew {
				refCount++
			}
			if got := s.Add(a, bits); got != refNew {
				t.Fatalf("%d bits, add %d (%s): new %v, the bitmap says %v", bits, i, a, got, refNew)
			}
			if s.Count != refCount || s.Ones != refOnes || !bytes.Equal(s.bitmap(), ref) || !s.Has(a) {
				t.Fatalf("%d bits, after %d adds: count %d ones %d, the bitmap's %d and %d", bits, i, s.Count, s.Ones, refCount, refOnes)
			}
			if i%97 == 0 { // through JSON, as across continue-as-new
				data, err := json.Marshal(s)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := json.Marshal(struct {
					Bits  []byte `json:"bits,omitempty"`
					Count int    `json:"count,omitempty"`
					Ones  int    `json:"ones,omitempty"`
				}{ref, refCount, refOnes})
				if !bytes.Equal(data, want) {
					t.Fatalf("%d bits, after %d adds: JSON %.80s…, want the bitmap's %.80s…", bits, i, data, want)
				}
				var back Sketch
				if err := json.Unmarshal(data, &back); err != nil {
					t.Fatal(err)
				}
				s = back
			}
		}
		if s.Bits == nil || len(s.Bits) != bits/8 {
			t.Errorf("%d bits: still sparse after 3,000 addresses (%d positions)", bits, len(s.pos))
		}
	}
	// Few addresses stay small: 20 addresses, 80 positions, not 4 KiB.
	var s Sketch
	for i := range 20 {
		s.Add(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), IPSketchBits)
	}
	if s.Bits != nil || len(s.pos) != s.Ones || s.Len() != 20 {
		t.Errorf("20 addresses: bitmap %d bytes, %d positions, %d ones, len %d", len(s.Bits), len(s.pos), s.Ones, s.Len())
	}
	var bad Sketch
	if err := json.Unmarshal([]byte(`{"bits":"`+strings.Repeat("AAAA", 3000)+`"}`), &bad); err == nil {
		t.Error("a 9,000-byte sketch decoded")
	}
}

// obs builds an annotated observation at t0+after: addresses "a.b.c.d" in AS
// 100*a+b's country cc.
func obs(after time.Duration, status Status, ttl uint32, ips []netip.Addr, nsNames []string, nsAddrs []netip.Addr) Observation {
	o := answer(after, ttl, ips)
	o.Status = status
	for i, n := range nsNames {
		s := NameServer{Name: n}
		if i < len(nsAddrs) {
			s.Addrs = []Record{{Addr: nsAddrs[i]}}
		}
		o.NS = append(o.NS, s)
	}
	annotate := func(rs []Record) {
		for i := range rs {
			if a := rs[i].Addr; a.Is4() {
				b := a.As4()
				rs[i].ASN, rs[i].Country = 100*uint32(b[0])+uint32(b[1]), string(rune('A'+b[0]%4))+"X"
			}
		}
	}
	annotate(o.A)
	for i := range o.NS {
		annotate(o.NS[i].Addrs)
	}
	return o
}

func TestMetrics(t *testing.T) {
	var m Metrics
	nsA, nsB := []string{"ns1.example.test", "ns2.example.test"}, []string{"ns2.example.test", "ns5.example.test"}
	steps := []Observation{
		obs(0, NoError, 300, addrs("1.1.0.1", "1.1.0.2", "2.1.0.1", "2a00::1"), nsA, addrs("9.9.0.1", "9.9.0.2")),
		// 5 minutes later: one address kept, two new; same NS.
		obs(5*time.Minute, NoError, 120, addrs("1.1.0.1", "3.1.0.1", "3.2.0.1"), nsA, addrs("9.9.0.1", "9.9.0.2")),
		// 2 hours later: all new, NS rotated (names and addresses).
		obs(2*time.Hour, NoError, 60, addrs("4.1.0.1", "4.1.0.2", "5.5.0.1"), nsB, addrs("9.9.0.3", "9.9.0.4")),
		// Taken down: NXDOMAIN, then SERVFAIL keeps the run going.
		obs(3*time.Hour, NXDomain, 0, nil, nil, nil),
		obs(27*time.Hour, ServFail, 0, nil, nil, nil),
	}
	for _, o := range steps[:3] {
		m.Add(o)
	}
	s := m.Summary(t0.Add(2 * time.Hour))
	want := Summary{
		Domain: "example.test", FirstSeen: t0, LastSeen: t0.Add(2 * time.Hour), LastObserved: t0.Add(2 * time.Hour),
		Observations: 3, Answered: 3, IPs: 9, IPv6: 1, ASNs: 6, Prefixes: 6, Countries: 4,
		NSNames: 3, NSAddrs: 4, NSASNs: 1, NSChurn: 0.5, MinTTL: 60, MedianTTL: 120,
		NewIPsPerHour: 9.0 / 2, Jaccard: 0, MeanJaccard: (1.0 / 6) / 2, Score: HolzScore(6, 5), MaxScore: HolzScore(6, 5),
		DoubleFlux: true,
	}
	d := s.Diversity
	s.Diversity = 0
	if !reflect.DeepEqual(s, want) {
		t.Errorf("summary\n%+v, want\n%+v", s, want)
	}
	// 8 IPv4 addresses seen within 12 h, in 6 /16s (2, 1, 1, 1, 2, 1).
	if wantD := (2*(2.0/8)*math.Log2(8.0/2) + 4*(1.0/8)*3) / 3; math.Abs(d-wantD) > 1e-9 {
		t.Errorf("window diversity %.4f, want %.4f", d, wantD)
	}
	if got := m.Hourly; len(got) != 2 || got[0].NewIPs != 6 || got[0].IPs != 6 || got[1].NewIPs != 3 || got[1].IPs != 9 || got[1].ASNs != 6 || got[0].Observations != 2 {
		t.Errorf("hourly %+v", got)
	}

	m.Add(steps[3])
	m.Add(steps[4])
	if !m.NXDomainSince.Equal(t0.Add(3*time.Hour)) || !m.FailingSince.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("NXDOMAIN since %s, failing since %s", m.NXDomainSince, m.FailingSince)
	}
	if got := m.NXDomainFor(t0.Add(51 * time.Hour)); got != 48*time.Hour {
		t.Errorf("NXDOMAIN for %s, want 48h", got)
	}
	if m.NXDomains != 1 || m.ServFails != 1 || m.LastSeen != t0.Add(2*time.Hour) || !m.LastObserved.Equal(t0.Add(27*time.Hour)) {
		t.Errorf("after the takedown: %+v", m)
	}
	if s := m.Summary(t0.Add(27 * time.Hour)); s.NewIPsPerHour != 0 || len(m.Daily) != 2 || m.Daily[0].Observations != 4 {
		t.Errorf("a day later: %.2f new IPs/h, daily %+v", s.NewIPsPerHour, m.Daily)
	}
	// An answer ends the run.
	m.Add(obs(28*time.Hour, NoError, 60, addrs("4.1.0.1"), nil, nil))
	if m.NXDomainFor(t0.Add(30*time.Hour)) != 0 || !m.FailingSince.IsZero() {
		t.Errorf("an answer did not end the NXDOMAIN run: %s", m.NXDomainSince)
	}
	// A failure that is not NXDOMAIN starts a failing run only.
	m.Add(obs(29*time.Hour, Failed, 0, nil, nil, nil))
	if !m.NXDomainSince.IsZero() || !m.FailingSince.Equal(t0.Add(29*time.Hour)) || m.Failures != 1 {
		t.Errorf("after an error: NXDOMAIN since %s, failing since %s", m.NXDomainSince, m.FailingSince)
	}
}

func TestMetricsTTLMedianStaysClose(t *testing.T) {
	var m Metrics
	// 100 distinct TTLs 10, 20, ..., 1000, each once: the exact median is 500.
	for i := 1; i <= 100; i++ {
		ttl := uint32(10 * ((i*37)%100 + 1))
		m.Add(obs(time.Duration(i)*time.Minute, NoError, ttl, addrs("1.1.1.1"), nil, nil))
	}
	if len(m.TTLs) != MaxTTLValues || m.MinTTL != 10 {
		t.Fatalf("%d TTL values kept, min %d", len(m.TTLs), m.MinTTL)
	}
	if med := m.MedianTTL(); med < 400 || med > 600 {
		t.Errorf("median %d, want near 500", med)
	}
}

func TestMetricsWindowIsBounded(t *testing.T) {
	var m Metrics
	for i := 0; i < 200; i++ {
		m.Add(obs(time.Duration(i)*time.Minute, NoError, 60, bots(i*10, 10, 40), nil, nil))
	}
	if len(m.Recent) != MaxRecent {
		t.Errorf("window of %d addresses, want %d", len(m.Recent), MaxRecent)
	}
	// 13 hours later only the new answer is in the window.
	m.Add(obs(200*time.Minute+13*time.Hour, NoError, 60, bots(0, 3, 40), nil, nil))
	if len(m.Recent) != 3 {
		t.Errorf("window of %d addresses after 13 h, want 3", len(m.Recent))
	}
	if len(m.Hourly) > MaxHourly || len(m.Daily) > MaxDaily {
		t.Errorf("%d hourly, %d daily buckets", len(m.Hourly), len(m.Daily))
	}
}

// A monitor's state survives JSON (continue-as-new, workflow state) and goes on
// counting exactly as if it had not been serialised.
func TestMetricsJSONRoundTrip(t *testing.T) {
	var m Metrics
	for i := 0; i < 50; i++ {
		m.Add(obs(time.Duration(i)*5*time.Minute, NoError, 300, bots(i*3, 6, 20), []string{"ns1.x.test"}, bots(500+i, 1, 20)))
	}
	m.Add(obs(5*time.Hour, NXDomain, 0, nil, nil, nil))
	b, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	var back Metrics
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	next := obs(6*time.Hour, NoError, 60, bots(1000, 8, 20), []string{"ns2.x.test"}, bots(900, 1, 20))
	m.Add(next)
	back.Add(next)
	if !reflect.DeepEqual(m.Summary(t0.Add(6*time.Hour)), back.Summary(t0.Add(6*time.Hour))) {
		t.Errorf("after a round trip:\n%+v\nvs\n%+v", back.Summary(t0.Add(6*time.Hour)), m.Summary(t0.Add(6*time.Hour)))
	}
	b1, _ := json.Marshal(&m)
	b2, _ := json.Marshal(&back)
	if string(b1) != string(b2) {
		t.Error("the states differ after a round trip")
	}
}

// Whatever a domain does, its state stays within the documented bounds: here every
// set overflows (5,000 ASNs, thousands of /16s, 400 NS names, 97 TTLs) over four
// months of hourly observations.
func TestMetricsWorstCaseIsBounded(t *testing.T) {
	var m Metrics
	for i := 0; i < 3000; i++ {
		o := Observation{Domain: "x.example", At: t0.Add(time.Duration(i) * time.Hour), Status: NoError}
		for j := 0; j < 8; j++ {
			n := i*8 + j
			o.A = append(o.A, Record{Addr: netip.AddrFrom4([4]byte{byte(n), byte(n >> 8), byte(n >> 16), 1}), TTL: uint32(n % 97),
				ASN: uint32(1 + n%5000), Country: string(rune('A'+n%26)) + string(rune('A'+n/26%26))})
		}
		o.NS = []NameServer{{Name: fmt.Sprintf("ns%d.a-rather-long-name-server-host.example", i%400),
			Addrs: []Record{{Addr: netip.AddrFrom4([4]byte{9, byte(i), byte(i >> 8), 1}), ASN: uint32(1 + i%3000)}}}}
		m.Add(o)
	}
	b, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Summary(m.LastObserved)
	t.Logf("state of %d bytes of JSON; summary %+v", len(b), s)
	if len(b) > 50_000 {
		t.Errorf("state of %d bytes", len(b))
	}
	if len(m.ASNs.Items) != MaxASNs || len(m.Prefixes.Items) != MaxPrefixes || len(m.NSNames.Items) != MaxNSNames ||
		len(m.TTLs) != MaxTTLValues || len(m.Daily) != MaxDaily || len(m.Hourly) != MaxHourly || len(m.Recent) > MaxRecent || !s.Approximate {
		t.Errorf("bounds not kept: %d ASNs, %d /16s, %d NS names, %d TTLs, %d days, %d hours, %d recent, saturated %v",
			len(m.ASNs.Items), len(m.Prefixes.Items), len(m.NSNames.Items), len(m.TTLs), len(m.Daily), len(m.Hourly), len(m.Recent), s.Approximate)
	}
}

// Answers without ASNs are counted as such and leave the score alone: a pair
// with one of them is not scored, rather than scored as if in no ASN.
func TestMetricsWithoutASNs(t *testing.T) {
	var m Metrics
	m.Add(obs(0, NoError, 60, addrs("10.1.0.1", "10.2.0.1", "10.3.0.1"), nil, nil))
	m.Add(obs(time.Minute, NoError, 60, addrs("10.4.0.1", "10.5.0.1", "10.6.0.1"), nil, nil))
	scored := m.Score
	blind := obs(2*time.Minute, NoError, 60, addrs("10.7.0.1", "10.8.0.1", "10.9.0.1"), nil, nil)
	for i := range blind.A {
		blind.A[i].ASN, blind.A[i].Country = 0, ""
	}
	blind.NoASN = "ASN table unavailable: flux.asn_table is not set"
	m.Add(blind)
	m.Add(obs(3*time.Minute, NoError, 60, addrs("10.10.0.1", "10.11.0.1", "10.12.0.1"), nil, nil))
	if m.Score != scored || m.MaxScore != scored || m.NoASN != 1 || m.Unscored != 2 || m.JaccardN != 3 {
		t.Errorf("score %.1f, max %.1f (want %.1f both); %d answers without ASNs, %d pairs unscored of %d", m.Score, m.MaxScore, scored, m.NoASN, m.Unscored, m.JaccardN)
	}
	m.Add(obs(4*time.Minute, NoError, 60, addrs("10.13.0.1", "10.14.0.1", "10.15.0.1", "10.16.0.1"), nil, nil))
	if s := m.Summary(m.LastObserved); s.NoASN != 1 || s.ASNs != 13 || m.Score != HolzScore(7, 7) {
		t.Errorf("summary %+v, score %.1f", s, m.Score)
	}
	// A monitor whose first pair goes unscored still takes its first scored
	// pair's score as the highest, however low.
	var late Metrics
	late.Add(blind)
	late.Add(obs(5*time.Minute, NoError, 60, addrs("10.1.0.1"), nil, nil))
	late.Add(obs(6*time.Minute, NoError, 60, addrs("10.2.0.1"), nil, nil))
	if late.MaxScore != late.Score || late.Score >= 0 {
		t.Errorf("score %.1f, max %.1f", late.Score, late.MaxScore)
	}
}
