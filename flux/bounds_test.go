package flux

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// hostile is an answer no flux network gives: n A and n AAAA records (each
// address twice), nsHosts name servers with nsAddrs addresses each, in a shuffled
// order, and a long detail.
func hostile(seed uint64, n, nsHosts, nsAddrs int) Observation {
	o := Observation{Domain: "hostile.example", At: t0, Status: NoError, Error: strings.Repeat("warning; ", 2000)}
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(1 + i%40), byte(i >> 8), byte(i)})
		o.A = append(o.A, Record{Addr: a, TTL: 60}, Record{Addr: a, TTL: 60})
		o.AAAA = append(o.AAAA, Record{Addr: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}), TTL: 60})
	}
	for i := range nsHosts {
		h := NameServer{Name: fmt.Sprintf("ns%04d.a-long-name-server-name.hostile.example", i), TTL: 60}
		for k := range nsAddrs {
			h.Addrs = append(h.Addrs, Record{Addr: netip.AddrFrom4([4]byte{172, 16, byte(i), byte(k)})})
		}
		o.NS = append(o.NS, h)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	r.Shuffle(len(o.A), func(i, j int) { o.A[i], o.A[j] = o.A[j], o.A[i] })
	r.Shuffle(len(o.NS), func(i, j int) { o.NS[i], o.NS[j] = o.NS[j], o.NS[i] })
	return o
}

func TestBound(t *testing.T) {
	// 4,000 distinct A records sent twice each, 2,000 AAAA, 300 NS hosts of 20
	// addresses: kept within the bounds, the rest counted, whatever the order.
	o := hostile(1, 2000, 300, 20)
	o.A = append(o.A, o.A[:2000]...) // 4,000 distinct and 2,000 repeated
	for i := 2000; i < 4000; i++ {
		o.A = append(o.A, Record{Addr: netip.AddrFrom4([4]byte{11, 0, byte(i >> 8), byte(i)}), TTL: 60})
	}
	sent := len(o.A) + len(o.AAAA) + 300*21
	o.Bound()
	if len(o.A) != MaxRecords || len(o.AAAA) != MaxRecords || len(o.NS) != MaxNameServers {
		t.Fatalf("kept %d A, %d AAAA, %d NS", len(o.A), len(o.AAAA), len(o.NS))
	}
	kept := len(o.A) + len(o.AAAA) + len(o.NS)
	for _, ns := range o.NS {
		if len(ns.Addrs) != MaxNSAddrs {
			t.Fatalf("NS %s keeps %d addresses", ns.Name, len(ns.Addrs))
		}
		kept += len(ns.Addrs)
	}
	if kept+o.Dropped != sent {
		t.Errorf("kept %d and dropped %d of %d records", kept, o.Dropped, sent)
	}
	if !slices.IsSortedFunc(o.A, func(a, b Record) int { return a.Addr.Compare(b.Addr) }) || o.A[0].Addr != netip.MustParseAddr("10.1.0.0") {
		t.Errorf("not the lowest addresses: %v", o.A[:3])
	}
	if len(o.Error) > MaxDetail {
		t.Errorf("detail of %d bytes", len(o.Error))
	}
	// The same answer in another order keeps the same records.
	again := hostile(2, 2000, 300, 20)
	again.Bound()
	first := hostile(1, 2000, 300, 20)
	first.Bound()
	if !slices.Equal(again.A, first.A) || !slices.EqualFunc(again.NS, first.NS, func(a, b NameServer) bool { return a.Name == b.Name }) {
		t.Error("the records kept depend on the order they came in")
	}
	// An answer within the bounds is kept as received.
	small := answer(0, 60, []netip.Addr{netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.2.0.1")}, ns("ns1.example", netip.MustParseAddr("10.3.0.1")))
	want := small.clone()
	small.Bound()
	if !slices.Equal(small.A, want.A) || small.Dropped != 0 {
		t.Errorf("a small answer changed: %+v", small)
	}
}

// A batch of 100 of the most hostile answers the bounds allow stays under the
// bound in JSON; the ordinary observations among them stay whole.
func TestShedBatch(t *testing.T) {
	const bound = 512 << 10
	var batch []Observation
	var bounded []int // Dropped by Bound
	for i := range 100 {
		o := hostile(uint64(i), 2000, 300, 20)
		if i%10 == 0 {
			o = answer(0, 60, bots(i, 12, 8), ns("ns1.example", netip.MustParseAddr("10.3.0.1")))
		}
		o.Bound()
		batch, bounded = append(batch, o), append(bounded, o.Dropped)
	}
	before, _ := json.Marshal(batch)
	n := ShedBatch(batch, bound)
	after, _ := json.Marshal(batch)
	t.Logf("100 observations: %d KB of JSON within the bounds of one observation, %d KB after %d shed", len(before)>>10, len(after)>>10, n)
	if len(after) > bound {
		t.Fatalf("%d bytes, bound %d", len(after), bound)
	}
	for i, o := range batch {
		switch {
		case i%10 == 0 && (len(o.A) != 12 || len(o.NS) != 1 || o.Dropped != 0):
			t.Errorf("ordinary observation %d shed: %+v", i, o)
		case i%10 != 0 && (len(o.A) == 0 || !strings.HasPrefix(o.Error, fmt.Sprintf("%d records shed", o.Dropped-bounded[i]))):
			t.Errorf("hostile observation %d: %d A, dropped %d, detail %.80q", i, len(o.A), o.Dropped, o.Error)
		}
	}
	// A batch within the bound is left alone.
	small := []Observation{answer(0, 60, bots(0, 5, 5))}
	if ShedBatch(small, bound) != 0 || len(small[0].A) != 5 {
		t.Error("a small batch shed")
	}
}
