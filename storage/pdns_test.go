package storage_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// TestPassiveDNS: the checks' answers come back as passive-DNS records, one a
// name and answer however many checks saw it: every address a domain used and
// every name server it was delegated to, every domain an address served, and
// for a name server its addresses and the domains delegated to it; a name
// server's address is not an answer of the domain.
func TestPassiveDNS(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	const ns = "ns1.flux.example"
	obs := func(d string, at time.Time, nsIP string, ips ...string) flux.Observation {
		o := flux.Observation{Domain: d, At: at, Status: flux.NoError,
			NS: []flux.NameServer{{Name: ns, Addrs: []flux.Record{{Addr: netip.MustParseAddr(nsIP), TTL: 300}}}}}
		for _, ip := range ips {
			r := flux.Record{Addr: netip.MustParseAddr(ip), TTL: 300}
			if r.Addr.Is4() {
				o.A = append(o.A, r)
			} else {
				o.AAAA = append(o.AAAA, r)
			}
		}
		return o
	}
	for _, d := range []string{"a.example", "b.example"} {
		if err := db.SetFluxMonitor(ctx, d, contract.MonitorWatching, nil, t0); err != nil {
			t.Fatal(err)
		}
	}
	min := func(m int) int64 { return t0.Add(time.Duration(m) * time.Minute).Unix() }
	if err := db.RecordFluxChecks(ctx, []storage.FluxWrite{
		{Obs: obs("a.example", t0, "192.0.2.53", "198.51.100.1", "2001:db8::1")},
		{Obs: obs("a.example", t0.Add(5*time.Minute), "192.0.2.53", "198.51.100.1", "198.51.100.2")},
		{Obs: obs("b.example", t0.Add(time.Minute), "192.0.2.54", "198.51.100.1")},
	}); err != nil {
		t.Fatal(err)
	}
	// a second batch: the aggregates are updated, not appended to
	if err := db.RecordFluxChecks(ctx, []storage.FluxWrite{
		{Obs: obs("a.example", t0.Add(10*time.Minute), "192.0.2.54", "198.51.100.1")},
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		q    string
		want []storage.PDNSRecord // most recently seen first
	}{
		{"a.example", []storage.PDNSRecord{
			{RRName: "a.example", RRType: "A", RData: "198.51.100.1", TimeFirst: min(0), TimeLast: min(10), Count: 3},
			{RRName: "a.example", RRType: "NS", RData: ns, TimeFirst: min(0), TimeLast: min(10), Count: 3},
			{RRName: "a.example", RRType: "A", RData: "198.51.100.2", TimeFirst: min(5), TimeLast: min(5), Count: 1},
			{RRName: "a.example", RRType: "AAAA", RData: "2001:db8::1", TimeFirst: min(0), TimeLast: min(0), Count: 1},
		}},
		{"198.51.100.1", []storage.PDNSRecord{
			{RRName: "a.example", RRType: "A", RData: "198.51.100.1", TimeFirst: min(0), TimeLast: min(10), Count: 3},
			{RRName: "b.example", RRType: "A", RData: "198.51.100.1", TimeFirst: min(1), TimeLast: min(1), Count: 1},
		}},
		{ns, []storage.PDNSRecord{
			{RRName: "a.example", RRType: "NS", RData: ns, TimeFirst: min(0), TimeLast: min(10), Count: 3},
			{RRName: ns, RRType: "A", RData: "192.0.2.54", TimeFirst: min(1), TimeLast: min(10), Count: 2},
			{RRName: ns, RRType: "A", RData: "192.0.2.53", TimeFirst: min(0), TimeLast: min(5), Count: 2},
			{RRName: "b.example", RRType: "NS", RData: ns, TimeFirst: min(1), TimeLast: min(1), Count: 1},
		}},
		{"192.0.2.54", []storage.PDNSRecord{
			{RRName: ns, RRType: "A", RData: "192.0.2.54", TimeFirst: min(1), TimeLast: min(10), Count: 2},
		}},
		{"unknown.example", nil},
	} {
		got, err := db.PassiveDNS(ctx, c.q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: %+v, want %+v", c.q, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s record %d: %+v, want %+v", c.q, i, got[i], c.want[i])
			}
		}
	}
}
