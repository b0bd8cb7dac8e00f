package feeds_test

import (
	"bytes"
	"fmt"
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

var feodoJSON = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(3, 4))
	var b bytes.Buffer
	b.WriteString("[\n")
	for i := range 13_600 {
		if i > 0 {
			b.WriteString(",\n")
		}
		a := netip.AddrFrom4([4]byte{byte(1 + r.IntN(222)), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
		fmt.Fprintf(&b, `{"ip_address": %q, "port": %d, "status": "online", "hostname": null, "as_number": %d, "as_name": "AS-EXAMPLE hosting", "country": "US", "first_seen": "2026-11-01 10:00:00", "last_online": "2026-12-01", "malware": "QakBot"}`,
			a.String(), 443+r.IntN(8000), 1+r.IntN(60000))
	}
	b.WriteString("\n]\n")
	return b.Bytes()
})

// BenchmarkParseFeodoJSON parses a Feodo Tracker JSON blocklist of 13,600 C2s,
// through the bounded streaming reader.
func BenchmarkParseFeodoJSON(b *testing.B) {
	body := feodoJSON()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := feeds.Parse("feodo-json", bytes.NewReader(body), feeds.Options{}, func(feeds.Indicator) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
