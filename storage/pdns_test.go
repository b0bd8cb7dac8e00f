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
// domain and address however many checks saw it: every address a domain
// used, every domain an address served; a name server's address is not an
// answer of the domain.
func TestPassiveDNS(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	obs := func(d string, at time.Time, ips ...string) flux.Observation {
		o := flux.Observation{Domain: d, At: at, Status: flux.NoError,
			NS: []flux.NameServer{{Name: "ns1." + d, Addrs: []flux.Record{{Addr: netip.MustParseAddr("192.0.2.53"), TTL: 300}}}}}
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
	if err := db.RecordFluxChecks(ctx, []storage.FluxWrite{
		{Obs: obs("a.example", t0, "198.51.100.1", "2001:db8::1")},
		{Obs: obs("a.example", t0.Add(5*time.Minute), "198.51.100.1", "198.51.100.2")},
		{Obs: obs("a.example", t0.Add(10*time.Minute), "198.51.100.1")},
		{Obs: obs("b.example", t0.Add(time.Minute), "198.51.100.1")},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := db.PassiveDNS(ctx, "a.example")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]storage.PDNSRecord{
		"198.51.100.1": {RRName: "a.example", RRType: "A", RData: "198.51.100.1", TimeFirst: t0.Unix(), TimeLast: t0.Add(10 * time.Minute).Unix(), Count: 3},
		"198.51.100.2": {RRName: "a.example", RRType: "A", RData: "198.51.100.2", TimeFirst: t0.Add(5 * time.Minute).Unix(), TimeLast: t0.Add(5 * time.Minute).Unix(), Count: 1},
		"2001:db8::1":  {RRName: "a.example", RRType: "AAAA", RData: "2001:db8::1", TimeFirst: t0.Unix(), TimeLast: t0.Unix(), Count: 1},
	}
	if len(got) != len(want) || got[0].RData != "198.51.100.1" {
		t.Fatalf("a.example: %+v; want %d records, the most recent first", got, len(want))
	}
	for _, r := range got {
		if r != want[r.RData] {
			t.Errorf("record %+v, want %+v", r, want[r.RData])
		}
	}
	byIP, err := db.PassiveDNS(ctx, "198.51.100.1")
	if err != nil || len(byIP) != 2 || byIP[0].RRName != "a.example" || byIP[1].RRName != "b.example" || byIP[1].Count != 1 {
		t.Errorf("198.51.100.1: %+v, %v; want a.example then b.example", byIP, err)
	}
	if ns, err := db.PassiveDNS(ctx, "192.0.2.53"); err != nil || len(ns) != 0 {
		t.Errorf("a name server's address: %+v, %v; want none", ns, err)
	}
}
