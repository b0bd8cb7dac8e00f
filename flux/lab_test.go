package flux_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/lab/world"
)

// resolve is what a resolution of d at lab time at sees, taken from the world's own
// answers (the ones the lab's DNS server serves).
func resolve(w *world.World, d *world.Domain, at time.Time) flux.Observation {
	o := flux.Observation{Domain: d.Name, At: at}
	switch d.StatusAt(at) {
	case world.NXDomain:
		o.Status = flux.NXDomain
		return o
	case world.ServFail:
		o.Status = flux.ServFail
		return o
	case world.Refused:
		o.Status, o.Error = flux.Failed, "REFUSED"
		return o
	}
	o.Status = flux.NoError
	a, ttl := w.A(d, at)
	for _, ip := range a {
		o.A = append(o.A, flux.Record{Addr: ip, TTL: ttl})
	}
	aaaa, ttl6 := w.AAAA(d, at)
	for _, ip := range aaaa {
		o.AAAA = append(o.AAAA, flux.Record{Addr: ip, TTL: ttl6})
	}
	hosts, nsTTL := w.NS(d, at)
	for _, h := range hosts {
		o.NS = append(o.NS, flux.NameServer{Name: h.Name, TTL: nsTTL, Addrs: []flux.Record{{Addr: h.Addr}}})
	}
	return o
}

// resolveTwice is Holz's pair: a resolution at at and another once its TTL expired.
func resolveTwice(w *world.World, d *world.Domain, at time.Time) (flux.Observation, flux.Observation) {
	first := resolve(w, d, at)
	ttl, ok := first.MinTTL()
	if !ok {
		ttl = d.TTL
	}
	return first, resolve(w, d, at.Add(time.Duration(ttl)*time.Second))
}

// labTable loads the world's ASN table through the real iptoasn format.
func labTable(t testing.TB, w *world.World) *ipasn.Table {
	t.Helper()
	var buf bytes.Buffer
	if err := ipasn.Write(&buf, w.ASNTable()); err != nil {
		t.Fatal(err)
	}
	tab, _, err := ipasn.Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// Triage against the lab's ground truth, without DNS: every flux and double-flux
// domain is detected (double flux as such), nothing else is flagged, with and
// without the lab's CDN edge ranges as an allowlist.
func TestTriageLabAccuracy(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		w := world.NewWorld(seed)
		tab := labTable(t, w)
		cdnRanges, err := flux.ParseAllowlist(strings.NewReader(w.CDNRangesText()))
		if err != nil {
			t.Fatal(err)
		}
		for _, cfg := range []struct {
			name  string
			allow *flux.Allowlist
		}{{"no allowlist", nil}, {"CDN ranges", cdnRanges}} {
			t.Run(fmt.Sprintf("seed %d, %s", seed, cfg.name), func(t *testing.T) {
				var tp, fp, fn, tn, wrongKind, holzOnly int
				verdicts := map[world.Class]map[flux.Verdict]int{}
				// Six triage times over the first two lab days, before any takedown.
				for k := 0; k < 6; k++ {
					at := w.Start.Add(time.Duration(k)*7*time.Hour + 13*time.Minute)
					for _, d := range w.Domains {
						first, second := resolveTwice(w, d, at)
						got := flux.Triage(first, second, tab, cfg.allow)
						if verdicts[d.Class] == nil {
							verdicts[d.Class] = map[flux.Verdict]int{}
						}
						verdicts[d.Class][got.Verdict]++
						switch {
						case d.Class.IsFlux() && got.Verdict.Fluxy():
							tp++
							if got.Score > 0 {
								holzOnly++
							}
							if (d.Class == world.DoubleFlux) != (got.Verdict == flux.VerdictDoubleFlux) {
								wrongKind++
								t.Errorf("%s (%s, %s) called %s: %s", d.Name, d.Class, d.Network, got.Verdict, got.Reason)
							}
						case d.Class.IsFlux():
							fn++
							t.Errorf("missed %s (%s, %s, %d a answer) at %s: %s: %s", d.Name, d.Class, d.Network, d.Answer, at, got.Verdict, got.Reason)
						case got.Verdict.Fluxy():
							fp++
							t.Errorf("flagged %s (%s) at %s: %s", d.Name, d.Class, at, got.Reason)
						default:
							tn++
						}
						if d.Class == world.CDNDomain && cfg.allow != nil && got.Verdict != flux.VerdictCDN {
							t.Errorf("%s on the CDN's ranges not allowlisted: %s", d.Name, got.Reason)
						}
						if d.Class == world.Lame && got.Verdict != flux.VerdictError {
							t.Errorf("lame %s: %s", d.Name, got.Verdict)
						}
					}
				}
				precision, recall := float64(tp)/float64(max(tp+fp, 1)), float64(tp)/float64(max(tp+fn, 1))
				t.Logf("precision %.3f, recall %.3f (%d flux triages detected, %d missed, %d false alarms, %d others benign, %d flux of the wrong kind); the Holz score alone: recall %.3f",
					precision, recall, tp, fn, fp, tn, wrongKind, float64(holzOnly)/float64(max(tp+fn, 1)))
				for _, c := range []world.Class{world.SingleFlux, world.DoubleFlux, world.CDNDomain, world.RoundRobin, world.Static, world.Malicious, world.Lame} {
					t.Logf("  %-11s %v", c, verdicts[c])
				}
			})
		}
	}
}

// Taken-down flux domains triage as nxdomain, and as error once their zone is gone.
func TestTriageLabTakedowns(t *testing.T) {
	w := world.NewWorld(1)
	tab := labTable(t, w)
	downs := 0
	for _, d := range w.DomainsOf(world.SingleFlux, world.DoubleFlux) {
		if d.TakedownAt.IsZero() {
			continue
		}
		downs++
		cases := []struct {
			at   time.Time
			want flux.Verdict
		}{
			{d.TakedownAt.Add(-time.Duration(d.TTL/2) * time.Second), flux.VerdictNXDomain}, // down between the two
			{d.TakedownAt.Add(time.Hour), flux.VerdictNXDomain},
			{d.ServfailAt.Add(time.Hour), flux.VerdictError},
		}
		for _, c := range cases {
			first, second := resolveTwice(w, d, c.at)
			if got := flux.Triage(first, second, tab, nil); got.Verdict != c.want {
				t.Errorf("%s at %s: %s (%s), want %s", d.Name, c.at, got.Verdict, got.Reason, c.want)
			}
		}
	}
	if downs == 0 {
		t.Fatal("the lab has no takedowns")
	}
}

// A month of monitoring a lab flux domain every 5 minutes: the metrics track the
// truth (every address the domain handed out), stay bounded, see the name servers
// of double-flux domains rotate and not those of single flux, and a taken-down
// domain's NXDOMAIN run starts at its takedown.
func TestMetricsOnTheLab(t *testing.T) {
	w := world.NewWorld(1)
	tab := labTable(t, w)
	var double, down *world.Domain
	for _, d := range w.DomainsOf(world.DoubleFlux) {
		if double == nil || len(d.Pool) > len(double.Pool) {
			double = d
		}
	}
	down = w.DomainsOf(world.SingleFlux)[0]
	single := w.DomainsOf(world.SingleFlux)[len(w.DomainsOf(world.SingleFlux))-1]
	cdn := w.DomainsOf(world.CDNDomain)[0]

	for _, d := range []*world.Domain{double, single, cdn, down} {
		var m flux.Metrics
		truth := map[string]bool{}
		end := w.Start.Add(30 * 24 * time.Hour)
		for at := w.Start; at.Before(end); at = at.Add(5 * time.Minute) {
			o := resolve(w, d, at)
			o.Annotate(tab)
			for _, ip := range o.Addrs() {
				truth[ip.String()] = true
			}
			m.Add(o)
		}
		s := m.Summary(end)
		size := len(mustJSON(t, &m))
		t.Logf("%s (%s, pool %d): %d IPs (truth %d), %d ASNs, %d /16s, %d countries, NS %d names %d addrs churn %.2f, TTL min %d median %d, %.1f new IPs/h, Jaccard %.2f, D %.2f, score %.1f (max %.1f); state %d bytes of JSON",
			d.Name, d.Class, len(d.Pool), s.IPs, len(truth), s.ASNs, s.Prefixes, s.Countries, s.NSNames, s.NSAddrs, s.NSChurn, s.MinTTL, s.MedianTTL, s.NewIPsPerHour, s.MeanJaccard, s.Diversity, s.Score, s.MaxScore, size)
		if s.IPs > len(truth) || float64(s.IPs) < 0.99*float64(len(truth)) {
			t.Errorf("%s: %d IPs counted, %d handed out", d.Name, s.IPs, len(truth))
		}
		if size > 24<<10 {
			t.Errorf("%s: state of %d bytes", d.Name, size)
		}
		switch d {
		case double:
			if !s.DoubleFlux || s.NSChurn < 0.9 || s.MaxScore <= 0 {
				t.Errorf("double flux %s: %+v", d.Name, s)
			}
		case single:
			if s.DoubleFlux || s.MaxScore <= 0 || s.Diversity < flux.MinWindowDiversity {
				t.Errorf("single flux %s: %+v", d.Name, s)
			}
		case cdn:
			if s.DoubleFlux || s.ASNs > 2 || s.MaxScore > 0 {
				t.Errorf("CDN %s: %+v", d.Name, s)
			}
		case down:
			if !s.NXDomainSince.Equal(d.TakedownAt.Truncate(5*time.Minute).Add(5*time.Minute)) && !s.NXDomainSince.Equal(d.TakedownAt) {
				t.Errorf("%s taken down at %s: NXDOMAIN since %s", d.Name, d.TakedownAt, s.NXDomainSince)
			}
			if s.LastSeen.After(d.TakedownAt) {
				t.Errorf("%s answered after its takedown, at %s", d.Name, s.LastSeen)
			}
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
