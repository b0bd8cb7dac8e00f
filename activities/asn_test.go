package activities

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/tip-project/tip/ipasn"
)

// A table server that fails is asked once per asnRetry, not on every call; one
// that answers is asked once, and its table served from memory after.
func TestASNTableAsksOnceAndRemembersAFailure(t *testing.T) {
	var failing, serving atomic.Int32
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		failing.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		serving.Add(1)
		ipasn.Write(w, []ipasn.Range{{First: netip.MustParseAddr("192.0.2.0"), Last: netip.MustParseAddr("192.0.2.255"), AS: ipasn.AS{Number: 64500, Country: "ZZ", Description: "TEST"}}})
	}))
	defer up.Close()
	a := &Activities{}
	ctx := context.Background()
	for range 3 {
		if tb, err := a.ASNTable(ctx, down.URL); err == nil || tb != nil {
			t.Fatalf("a table from a server that is down: %v, %v", tb, err)
		}
		tb, err := a.ASNTable(ctx, up.URL)
		if err != nil {
			t.Fatal(err)
		}
		if as, ok := tb.Lookup(netip.MustParseAddr("192.0.2.7")); !ok || as.Number != 64500 {
			t.Fatalf("lookup: %+v, %v", as, ok)
		}
	}
	if failing.Load() != 1 || serving.Load() != 1 {
		t.Errorf("3 calls each asked the failing server %d times and the good one %d times, want 1 and 1", failing.Load(), serving.Load())
	}
}
