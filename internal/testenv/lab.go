package testenv

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/lab/dnsd"
	"github.com/tip-project/tip/lab/world"
)

// LabDNS serves the lab world's zones on a free loopback port, UDP and TCP, until
// the test ends, and returns its address.
func LabDNS(t testing.TB, w *world.World, clock *world.Clock) string {
	t.Helper()
	udp, tcp := DNSListeners(t)
	srv := dnsd.New(w, clock, slog.New(slog.DiscardHandler))
	go srv.Serve(udp, tcp)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return udp.LocalAddr().String()
}

// DNSListeners opens a UDP socket and a TCP listener on one free loopback port,
// for a DNS server of a test. The UDP port found free may be taken for TCP (by an
// outgoing connection to the test stack, say): then another.
func DNSListeners(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for try := 0; ; try++ {
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			return udp, tcp
		}
		udp.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
}

// LabASNTable serves the lab world's iptoasn table on loopback until the test
// ends and returns its URL.
func LabASNTable(t testing.TB, w *world.World) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		ipasn.Write(rw, w.ASNTable())
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/ip2asn-combined.tsv"
}

// FreeAddr is a loopback host:port that was free a moment ago, for a server a
// test starts as a process of its own.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ports, err := devstack.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
}
