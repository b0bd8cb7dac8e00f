package apiserve

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tip-project/tip/storage"
)

func TestTokenBucket(t *testing.T) {
	l := newTokenLimits(2, 3) // 2 a second, 3 at once
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if ok, _ := l.allow("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.allow("a", now)
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("past the burst: %v, wait %s; want a refusal for at most half a second", ok, wait)
	}
	if ok, _ := l.allow("b", now); !ok {
		t.Fatal("another token shares the bucket")
	}
	if ok, _ := l.allow("a", now.Add(wait)); !ok {
		t.Fatal("refused after the wait it was told")
	}
	if ok, _ := l.allow("a", now.Add(wait)); ok {
		t.Fatal("a second request in the same instant")
	}
	// An idle token is forgotten, and comes back with a full bucket.
	later := now.Add(2 * time.Minute)
	l.allow("c", later)
	if _, kept := l.buckets["a"]; kept {
		t.Error("an idle bucket is kept")
	}
	for i := range 3 {
		if ok, _ := l.allow("a", later); !ok {
			t.Fatalf("request %d after a rest refused", i+1)
		}
	}
	if ok, _ := newTokenLimits(0, 0).allow("a", now); !ok {
		t.Fatal("rate 0 bounds")
	}
}

// TestRateLimitAnswers429WithRetryAfter, and each token has its own bucket.
func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	f := newFakeStore()
	s := testServer(t, Config{RatePerToken: 0.5, Burst: 2}, f)
	a, b := f.addToken("a", storage.ScopeAll), f.addToken("b", storage.ScopeAll)
	for range 2 {
		if w := do(s.Handler(), "GET", "/v1/sources", a); w.Code != http.StatusOK {
			t.Fatalf("within the burst: %d", w.Code)
		}
	}
	w := do(s.Handler(), "GET", "/v1/sources", a)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("past the burst: %d %s", w.Code, w.Body)
	}
	if secs, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || secs < 1 || secs > 2 {
		t.Errorf("Retry-After %q: want 1 or 2 seconds at half a request a second", w.Header().Get("Retry-After"))
	}
	assertJSONError(t, w)
	if w := do(s.Handler(), "GET", "/v1/sources", b); w.Code != http.StatusOK {
		t.Errorf("another token: %d", w.Code)
	}
	if got := testutil.ToFloat64(s.m.refused.WithLabelValues("rate")); got != 1 {
		t.Errorf("tip_api_refused_total{reason=rate} = %v", got)
	}
}

// TestConnectionLimits: past MaxConnsPerClient connections of one address,
// or MaxConns in all, a new connection is closed at once; a closed one gives
// its place back.
func TestConnectionLimits(t *testing.T) {
	for _, c := range []struct {
		name            string
		total, perClien int
		reason          string
	}{
		{"per client", 0, 2, "max_conns_per_client"},
		{"overall", 2, 0, "max_conns"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeStore()
			s := testServer(t, Config{MaxConns: c.total, MaxConnsPerClient: c.perClien}, f)
			addr := serveOnLoopback(t, s)
			tok := f.addToken("x", storage.ScopeAll)
			open := func() net.Conn {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				return conn
			}
			get := func(conn net.Conn) (string, error) {
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(conn, "GET /v1/sources HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\n\r\n"); err != nil {
					return "", err
				}
				buf := make([]byte, 64)
				n, err := conn.Read(buf)
				return string(buf[:n]), err
			}
			first, second := open(), open()
			for _, conn := range []net.Conn{first, second} {
				if line, err := get(conn); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
					t.Fatalf("within the limit: %q, %v", line, err)
				}
			}
			if line, err := get(open()); err == nil {
				t.Fatalf("a third connection was answered: %q", line)
			}
			if got := testutil.ToFloat64(s.m.refused.WithLabelValues(c.reason)); got != 1 {
				t.Errorf("tip_api_refused_total{reason=%s} = %v", c.reason, got)
			}
			if got := testutil.ToFloat64(s.m.conns); got != 2 {
				t.Errorf("tip_api_open_connections = %v, want 2", got)
			}
			first.Close()
			deadline := time.Now().Add(5 * time.Second)
			for testutil.ToFloat64(s.m.conns) > 1 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if line, err := get(open()); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
				t.Fatalf("after one closed: %q, %v", line, err)
			}
		})
	}
}

// serveOnLoopback runs s on a loopback port until the test ends.
func serveOnLoopback(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// TestRefusalsLogOneLineAClientAnInterval: a flood of refused requests logs
// a line per client, reason and interval, which counts those left out.
func TestRefusalsLogOneLineAClientAnInterval(t *testing.T) {
	var buf bytes.Buffer
	r := newRefusals(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	for range 1000 {
		r.note("192.0.2.1", "unknown_token", "api: request refused")
	}
	r.note("192.0.2.2", "unknown_token", "api: request refused")
	r.note("192.0.2.1", "rate", "api: request refused")
	if n := strings.Count(buf.String(), "\n"); n != 3 {
		t.Fatalf("%d lines for 1002 refusals of 2 clients and 2 reasons:\n%s", n, buf.String())
	}
	buf.Reset()
	now = now.Add(61 * time.Second)
	r.note("192.0.2.1", "unknown_token", "api: request refused")
	if !strings.Contains(buf.String(), "repeats_not_logged=999") {
		t.Fatalf("the next interval's line does not count the 999 left out: %s", buf.String())
	}
}
