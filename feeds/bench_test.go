package feeds_test

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"

	"github.com/tip-project/tip/feeds"
)

var ipList = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for range 1_000_000 {
		a := netip.AddrFrom4([4]byte{byte(1 + r.IntN(222)), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
		b.WriteString(a.String())
		b.WriteByte('\n')
	}
	return b.Bytes()
})

// BenchmarkParseIPList parses a blocklist.de-style list of a million lines.
func BenchmarkParseIPList(b *testing.B) {
	body := ipList()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	lines := 0
	for b.Loop() {
		st, err := feeds.Parse("ip-list", bytes.NewReader(body), feeds.Options{}, func(feeds.Indicator) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		lines += st.Lines
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}
