package activities

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/flux/resolver"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/workflows/contract"
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
	a := NewASNTables(true, ipasn.Limits{})
	ctx := context.Background()
	for range 3 {
		if tb, err := a.Table(ctx, down.URL); err == nil || tb != nil {
			t.Fatalf("a table from a server that is down: %v, %v", tb, err)
		}
		tb, err := a.Table(ctx, up.URL)
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

// A table server that trickles its answer holds nobody but the download: the
// other callers get the copy held at once (or give up with their own context
// when none is held), and the download ends at asnFetchTimeout.
func TestASNTableSlowServerHoldsNobody(t *testing.T) {
	defer func(d time.Duration) { asnFetchTimeout = d }(asnFetchTimeout)
	asnFetchTimeout = 2 * time.Second
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseAll()
	var requests atomic.Int32
	trickling := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			ipasn.Write(w, []ipasn.Range{{First: netip.MustParseAddr("192.0.2.0"), Last: netip.MustParseAddr("192.0.2.255"), AS: ipasn.AS{Number: 64500, Country: "ZZ", Description: "TEST"}}})
			return
		}
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "192.0.2.0\t")
		w.(http.Flusher).Flush()
		trickling <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer srv.CloseClientConnections()
	a := NewASNTables(true, ipasn.Limits{})
	if _, err := a.Table(context.Background(), srv.URL); err != nil {
		t.Fatal(err)
	}
	asnTables.mu.Lock()
	asnTables.tables[srv.URL].loaded = time.Now().Add(-2 * asnTableTTL)
	asnTables.mu.Unlock()

	downloaded := make(chan error, 1)
	go func() {
		_, err := a.Table(context.Background(), srv.URL)
		downloaded <- err
	}()
	<-trickling
	got := make(chan *ipasn.Table, 1)
	go func() {
		tb, _ := a.Table(context.Background(), srv.URL)
		got <- tb
	}()
	select {
	case tb := <-got:
		if _, ok := tb.Lookup(netip.MustParseAddr("192.0.2.7")); !ok {
			t.Error("a caller during the download did not get the copy held")
		}
	case <-time.After(30 * time.Second):
		t.Error("a caller waited on the trickling download instead of getting the copy held")
		releaseAll()
	}
	select {
	case err := <-downloaded:
		if err != nil {
			t.Errorf("the download's caller: %v, want the copy held", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the trickling download went on past asnFetchTimeout (%s)", asnFetchTimeout)
		releaseAll()
	}
	asnTables.mu.Lock()
	err := asnTables.tables[srv.URL].err
	asnTables.mu.Unlock()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the failed download recorded %v, want its deadline", err)
	}

	// With no copy held, a caller waits for the download or its own context.
	fresh := srv.URL + "/none"
	freshDone := make(chan struct{})
	go func() {
		defer close(freshDone)
		_, _ = a.Table(context.Background(), fresh)
	}()
	<-trickling
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	waited := make(chan error, 1)
	go func() {
		_, err := a.Table(ctx, fresh)
		waited <- err
	}()
	select {
	case err := <-waited:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a caller with no copy held: %v, want its own deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("a caller with no copy held outlived its own context")
	}
	releaseAll()
	<-freshDone
}

// warnings is a slog handler that keeps the warnings logged through it.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler           { return w }
func (w *warnings) WithGroup(string) slog.Handler                { return w }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	w.msgs = append(w.msgs, msg)
	return nil
}

func (w *warnings) count(prefix string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// closedURL is an ASN table URL nobody listens at.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return "http://" + ln.Addr().String() + "/ip2asn-combined.tsv.gz"
}

// labResolver resolves through the lab's DNS, its clock at noon of the first day.
func labResolver(t *testing.T) (*resolver.Resolver, *world.World) {
	t.Helper()
	w := world.NewWorld(1)
	dns := testenv.LabDNS(t, w, world.NewClock(world.DefaultStart.Add(12*time.Hour), 1))
	r, err := resolver.New(resolver.Config{Recursive: []string{dns}})
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

// Without an ASN table, unreachable or not configured, triage's resolutions go
// on: they answer, say why they carry no ASNs, and the reason is logged once for
// two batches of resolutions.
func TestResolveDomainsWithoutASNTable(t *testing.T) {
	res, w := labResolver(t)
	domains := []string{w.DomainsOf(world.SingleFlux)[0].Name, w.DomainsOf(world.CDNDomain)[0].Name, "nothing-here.invalid"}
	for name, url := range map[string]string{"unreachable": closedURL(t), "not set": ""} {
		t.Run(name, func(t *testing.T) {
			warned := &warnings{}
			logger := slog.New(warned)
			a := &Flux{DNS: &Resolution{Resolver: res, ASN: NewASNTables(true, ipasn.Limits{}), ASNTable: url}}
			for batch := range 2 {
				obs, err := runLogged[[]flux.Observation](t, logger, a, a.ResolveDomains, domains)
				if err != nil {
					t.Fatalf("batch %d: %v", batch, err)
				}
				if len(obs) != len(domains) || !obs[0].Answered() || !obs[1].Answered() {
					t.Fatalf("batch %d: %+v", batch, obs)
				}
				for _, o := range obs[:2] {
					if !strings.HasPrefix(o.NoASN, "ASN table unavailable: ") || o.A[0].ASN != 0 {
						t.Errorf("batch %d: %s says %q of its ASNs", batch, o.Domain, o.NoASN)
					}
				}
			}
			if n := warned.count("ASN table unavailable"); n != 1 {
				t.Errorf("%d warnings, want 1: %q", n, warned.msgs)
			}
		})
	}
}

// A monitor's check goes on without an ASN table too, and says so.
func TestCheckDomainWithoutASNTable(t *testing.T) {
	res, w := labResolver(t)
	base := newActivities(t)
	domain := w.DomainsOf(world.SingleFlux)[1].Name
	for name, url := range map[string]string{"unreachable": closedURL(t), "not set": ""} {
		t.Run(name, func(t *testing.T) {
			warned := &warnings{}
			logger := slog.New(warned)
			a := &Flux{Store: base.DB, DNS: &Resolution{Resolver: res, ASN: NewASNTables(true, ipasn.Limits{}), ASNTable: url}}
			for i := range 3 {
				o, err := runLogged[flux.Observation](t, logger, a, a.CheckDomain, contract.CheckInput{Domain: domain, Due: time.Now().Add(time.Duration(i) * time.Millisecond)})
				if err != nil {
					t.Fatalf("check %d: %v", i, err)
				}
				if !o.Answered() || !strings.HasPrefix(o.NoASN, "ASN table unavailable: ") {
					t.Fatalf("check %d: %+v", i, o)
				}
			}
			if n := warned.count("ASN table unavailable"); n != 1 {
				t.Errorf("%d warnings, want 1: %q", n, warned.msgs)
			}
		})
	}
}

// A table past a limit is refused with a clear error, early when its declared
// length is; the copy held serves on, and the refusal is logged once.
func TestASNTableLimits(t *testing.T) {
	rows := func(n int) []byte {
		var rs []ipasn.Range
		for i := range n {
			a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
			rs = append(rs, ipasn.Range{First: a, Last: a, AS: ipasn.AS{Number: uint32(64500 + i), Country: "ZZ", Description: "TEST"}})
		}
		var b bytes.Buffer
		ipasn.Write(&b, rs)
		return b.Bytes()
	}
	// 4 MB of comment lines in 10 KB of gzip: no row, but too much to read.
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(bytes.Repeat([]byte("# "+strings.Repeat("x", 97)+"\n"), 40_000))
	zw.Close()
	var body atomic.Pointer[[]byte]
	var declared atomic.Int64 // a Content-Length to claim, 0: the body's
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b := *body.Load()
		if n := declared.Load(); n > 0 {
			w.Header().Set("Content-Length", fmt.Sprint(n))
		}
		w.Write(b)
	}))
	defer srv.Close()
	lim := ipasn.Limits{MaxInput: 1 << 20, MaxBytes: 1 << 20, MaxRows: 50}
	warned := &warnings{}
	ctx := context.Background()
	a := NewASNTables(true, lim)
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(warned)) // ASNTable logs through slog outside an activity

	for _, c := range []struct {
		name     string
		body     []byte
		declared int64
		err      string // "" when the table loads
	}{
		{"too many rows", rows(51), 0, "more than 50 rows (ipasn.Limits.MaxRows)"},
		{"a gzip bomb", bomb.Bytes(), 0, "more than 1048576 bytes of TSV after gunzip (ipasn.Limits.MaxBytes)"},
		{"declared too long", rows(1), 2 << 20, "2097152 bytes to download, more than 1048576 (ipasn.Limits.MaxInput)"},
	} {
		b := c.body
		body.Store(&b)
		declared.Store(c.declared)
		tb, _, err := a.fetch(ctx, srv.URL, &asnEntry{})
		if tb != nil || err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.err)
		}
	}

	good := rows(50)
	body.Store(&good)
	declared.Store(0)
	tb, err := a.Table(ctx, srv.URL)
	if err != nil || tb.Len() != 50 {
		t.Fatalf("table within the limits: %v", err)
	}
	asnTables.mu.Lock()
	asnTables.tables[srv.URL].loaded = time.Now().Add(-asnTableTTL) // due for a refresh
	asnTables.mu.Unlock()
	large := rows(60)
	body.Store(&large)
	for range 2 {
		if held, err := a.Table(ctx, srv.URL); err != nil || held != tb {
			t.Fatalf("the table held does not serve on: %v", err)
		}
		asnTables.mu.Lock()
		asnTables.tables[srv.URL].failed = time.Time{} // ask again at once
		asnTables.mu.Unlock()
	}
	if n := warned.count("ASN table unavailable"); n != 1 || !strings.Contains(warned.msgs[0], "more than 50 rows") {
		t.Errorf("%d warnings, want 1 naming the limit: %q", n, warned.msgs)
	}
}
