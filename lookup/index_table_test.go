package lookup

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/storage"
)

// TestCoveringFindsBlocksOfEveryLength lists, for one IPv4 and one IPv6
// address, a block of every prefix length holding it, and random blocks
// besides; every address and block looked up must find exactly the listed
// blocks holding it (itself excepted), as PostgreSQL's >>= does.
func TestCoveringFindsBlocksOfEveryLength(t *testing.T) {
	tb := newTable()
	tb.setSources([]storage.LookupSource{{ID: 1, Name: "s"}})
	var blocks []netip.Prefix
	add := func(p netip.Prefix) {
		p = p.Masked()
		if slices.Contains(blocks, p) {
			return
		}
		blocks = append(blocks, p)
		tb.apply(&storage.LookupListing{Type: "cidr", Value: p.String(), SourceID: 1, Active: true, FirstSeen: time.Unix(1, 0)})
	}
	v4, v6 := netip.MustParseAddr("45.8.4.7"), netip.MustParseAddr("2a0f:10:20::5")
	for _, a := range []netip.Addr{v4, v6} {
		for bits := 0; bits <= a.BitLen(); bits++ {
			add(netip.PrefixFrom(a, bits))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	randAddr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			b[0] = 0x2a // most under one /8, so random blocks nest
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{45, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
	}
	for range 2000 {
		a := randAddr(r.IntN(2) == 1)
		add(netip.PrefixFrom(a, r.IntN(a.BitLen()+1)))
	}
	var queries []netip.Prefix
	for _, a := range []netip.Addr{v4, v6, netip.MustParseAddr("45.8.4.6"), netip.MustParseAddr("2a0f:10:20::4")} {
		queries = append(queries, netip.PrefixFrom(a, a.BitLen()))
	}
	queries = append(queries, blocks...)
	for range 2000 {
		a := randAddr(r.IntN(2) == 1)
		queries = append(queries, netip.PrefixFrom(a, a.BitLen()), netip.PrefixFrom(a, r.IntN(a.BitLen()+1)).Masked())
	}
	for _, q := range queries {
		ind := feeds.Indicator{Type: feeds.CIDR, Value: q.String()}
		if q.IsSingleIP() {
			ind = feeds.Indicator{Type: feeds.IPv4, Value: q.Addr().String()}
			if q.Addr().Is6() {
				ind.Type = feeds.IPv6
			}
		}
		var want []string
		for _, b := range blocks {
			if b.Bits() <= q.Bits() && b.Contains(q.Addr()) && b.String() != ind.Value {
				want = append(want, b.String())
			}
		}
		var got []string
		for _, l := range tb.lookup(Query{Indicator: ind, Host: ind.Value}) {
			if l.Match == "cidr" {
				got = append(got, l.Value)
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: covering blocks %v, want %v", ind.Value, got, want)
		}
	}
	if got := len(tb.lookup(Query{Indicator: feeds.Indicator{Type: feeds.IPv4, Value: v4.String()}})); got != v4.BitLen()+1 {
		t.Errorf("%s: %d listings, want one per prefix length, %d", v4, got, v4.BitLen()+1)
	}
}

// TestApplyKeepsOneListingPerSource applies the states a listing goes
// through: listed with context, its context changed, removed, listed again.
func TestApplyKeepsOneListingPerSource(t *testing.T) {
	tb := newTable()
	tb.setSources([]storage.LookupSource{{ID: 7, Name: "feodo", Category: "c2", TLP: "clear"}, {ID: 8, Name: "ips", Category: ""}})
	first := time.Date(2026, 7, 1, 0, 0, 0, 123456000, time.Local)
	listed := time.Date(2026, 6, 30, 12, 0, 0, 0, time.Local)
	q := Query{Indicator: feeds.Indicator{Type: feeds.IPv4, Value: "45.8.4.7"}, Host: "45.8.4.7"}
	steps := []struct {
		name string
		l    storage.LookupListing
		want string
	}{
		{"listed", storage.LookupListing{Active: true, Malware: "Emotet", Port: "443", ListedAt: listed},
			"feodo active=true category=c2 malware=Emotet port=443 ref= listed=true removed=false"},
		{"new context", storage.LookupListing{Active: true, Malware: "QakBot", Category: "", OwnCategory: true},
			"feodo active=true category= malware=QakBot port= ref= listed=false removed=false"},
		{"removed", storage.LookupListing{Active: false, LastSeen: first.Add(time.Hour), RemovedAt: first.Add(2 * time.Hour), Malware: "QakBot", Category: "", OwnCategory: true},
			"feodo active=false category= malware=QakBot port= ref= listed=false removed=true"},
		{"listed again", storage.LookupListing{Active: true, Ref: "https://x/1"},
			"feodo active=true category=c2 malware= port= ref=https://x/1 listed=false removed=false"},
	}
	for _, s := range steps {
		l := s.l
		l.Type, l.Value, l.SourceID, l.FirstSeen = "ipv4", "45.8.4.7", 7, first
		tb.apply(&l)
		ls := tb.lookup(q)
		if len(ls) != 1 {
			t.Fatalf("%s: %d listings, want 1", s.name, len(ls))
		}
		g := ls[0]
		got := fmt.Sprintf("%s active=%t category=%s malware=%s port=%s ref=%s listed=%t removed=%t",
			g.Source, g.Active, g.Category, g.Malware, g.Port, g.Ref, g.Listed != nil, g.RemovedAt != nil)
		if got != s.want || !g.FirstSeen.Equal(first) {
			t.Errorf("%s: %s first seen %s\nwant %s first seen %s", s.name, got, g.FirstSeen, s.want, first)
		}
	}
	if tb.active != 1 || len(tb.ls) != 1 || tb.staleSaid != 2 {
		t.Errorf("after the steps: %d active of %d listings, %d stale contexts; want 1 of 1, 2", tb.active, len(tb.ls), tb.staleSaid)
	}
	// A source not (or no longer) in the sources table is not shown.
	tb.apply(&storage.LookupListing{Type: "ipv4", Value: "45.8.4.7", SourceID: 9, Active: true, FirstSeen: first})
	if ls := tb.lookup(q); len(ls) != 1 {
		t.Errorf("a listing of an unknown source shown: %+v", ls)
	}
}
