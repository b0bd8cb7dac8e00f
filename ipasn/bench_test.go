package ipasn_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/tip-project/tip/ipasn"
)

// BenchmarkLoadRealSize loads a table the size of iptoasn.com's
// ip2asn-combined (500,000 ranges of 80,000 origins) and reports the heap the
// loaded table holds.
func BenchmarkLoadRealSize(b *testing.B) {
	ranges := make([]ipasn.Range, 0, 500_000)
	for i := range 500_000 {
		first := netip.AddrFrom4([4]byte{byte(1 + i>>16), byte(i >> 8), byte(i), 0})
		last := netip.AddrFrom4([4]byte{byte(1 + i>>16), byte(i >> 8), byte(i), 255})
		o := i % 80_000
		ranges = append(ranges, ipasn.Range{First: first, Last: last, AS: ipasn.AS{Number: uint32(64_000 + o), Country: "ZZ", Description: fmt.Sprintf("EXAMPLE-NET-%d Example Networks", o)}})
	}
	var body bytes.Buffer
	if err := ipasn.Write(&body, ranges); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(body.Len()))
	var held uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t, _, err := ipasn.Load(bytes.NewReader(body.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(t)
	}
	b.ReportMetric(float64(held), "heap-bytes")
}
