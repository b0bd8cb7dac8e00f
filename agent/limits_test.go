package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"
)

// limitedAgent serves a folder of one batch within lim, with a token of scope
// raw; its log is kept.
type limitedAgent struct {
	addr, fingerprint, token string
	srv                      *Server
	log                      *syncBuffer
}

func newLimitedAgent(t testing.TB, lim Limits) *limitedAgent {
	t.Helper()
	dir := t.TempDir()
	writeTestBatches(t, dir, 1)
	token, _, err := OpenTokens(dir).Add("alice", ScopeRaw, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := &limitedAgent{token: token, log: &syncBuffer{}}
	var u string
	u, a.fingerprint, a.srv = serveTestAgent(t, dir, lim, slog.New(slog.NewTextHandler(a.log, nil)))
	a.addr = strings.TrimPrefix(u, "https://")
	return a
}

// dial opens a TLS connection from the loopback address from (127.0.0.0/8 is
// all loopback, so each stands for another client).
func (a *limitedAgent) dial(from string, protos ...string) (*tls.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	conf, err := (&Client{Fingerprint: a.fingerprint}).TLSConfig()
	if err != nil {
		return nil, err
	}
	conf.NextProtos = protos
	return tls.DialWithDialer(&d, "tcp", a.addr, conf)
}

// get sends GET /v1/latest on c, keeping it open, and returns the status.
func get(c net.Conn, token string) (int, error) {
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := fmt.Fprintf(c, "GET /v1/latest HTTP/1.1\r\nHost: agent\r\n%s\r\n", auth); err != nil {
		return 0, err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// closedByServer says whether the server closed c: reading what it sent ends
// in an error other than the deadline.
func closedByServer(c net.Conn, wait time.Duration) bool {
	buf := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(wait))
		if _, err := c.Read(buf); err != nil {
			return !errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
}

func TestConnectionLimits(t *testing.T) {
	a := newLimitedAgent(t, Limits{MaxConns: 4, MaxConnsPerClient: 2, AuthTimeout: time.Minute})
	dial := func(from string) *tls.Conn {
		t.Helper()
		c, err := a.dial(from)
		if err != nil {
			t.Fatalf("a connection from %s: %v", from, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Two connections per client address; a third is closed at once.
	first := dial("127.0.0.2")
	dial("127.0.0.2")
	if c, err := a.dial("127.0.0.2"); err == nil {
		if !closedByServer(c, 10*time.Second) {
			t.Fatal("a third connection from one address is kept")
		}
		c.Close()
	}
	// At MaxConns, a new connection closes the oldest that has not
	// authenticated.
	dial("127.0.0.3")
	dial("127.0.0.3")
	dial("127.0.0.4")
	if !closedByServer(first, 10*time.Second) {
		t.Fatal("at max_conns, the oldest unauthenticated connection is kept")
	}
	// Authenticated connections are never closed to make room: with four
	// of them open, a new connection is refused.
	var authed []*tls.Conn
	for _, from := range []string{"127.0.0.5", "127.0.0.5", "127.0.0.6", "127.0.0.6"} {
		c := dial(from)
		if code, err := get(c, a.token); code != http.StatusOK {
			t.Fatalf("the token holder from %s: %d, %v", from, code, err)
		}
		authed = append(authed, c)
	}
	if c, err := a.dial("127.0.0.7"); err == nil {
		if !closedByServer(c, 10*time.Second) {
			t.Fatal("a connection over max_conns is kept while every open one has authenticated")
		}
		c.Close()
	}
	for _, c := range authed {
		if code, err := get(c, a.token); code != http.StatusOK {
			t.Fatalf("an authenticated connection after the others were refused: %d, %v", code, err)
		}
	}
	open, peak := a.srv.conns.Load().counts()
	ev := a.srv.ev.conns
	if open != 4 || peak != 4 || testutil.ToFloat64(ev.WithLabelValues(connRefusedPerClient)) != 1 ||
		testutil.ToFloat64(ev.WithLabelValues(connRefusedMax)) != 1 || testutil.ToFloat64(ev.WithLabelValues(connEvicted)) < 4 {
		t.Errorf("open %d, peak %d, refused per client %v, refused at max %v, evicted %v", open, peak,
			testutil.ToFloat64(ev.WithLabelValues(connRefusedPerClient)), testutil.ToFloat64(ev.WithLabelValues(connRefusedMax)), testutil.ToFloat64(ev.WithLabelValues(connEvicted)))
	}
}

// A connection that carries no authenticated request is closed auth_timeout
// after it opened, whether it sends nothing or only requests without a token;
// one that authenticated stays.
func TestUnauthenticatedConnectionsClosed(t *testing.T) {
	a := newLimitedAgent(t, Limits{AuthTimeout: 200 * time.Millisecond})
	idle, err := a.dial("127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	refused, err := a.dial("127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	if code, err := get(refused, ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d, %v", code, err)
	}
	h2, err := a.dial("127.0.0.2", "h2")
	if err != nil || h2.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("HTTP/2: %v", err)
	}
	defer h2.Close()
	io.WriteString(h2, http2.ClientPreface)
	fr := http2.NewFramer(h2, h2)
	fr.WriteSettings()
	authed, err := a.dial("127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	defer authed.Close()
	if code, err := get(authed, a.token); code != http.StatusOK {
		t.Fatalf("token holder: %d, %v", code, err)
	}
	// A token holder on HTTP/2.
	conf, err := (&Client{Fingerprint: a.fingerprint}).TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}).DialContext}
	defer tr.CloseIdleConnections()
	getH2 := func() (reused bool) {
		t.Helper()
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+a.addr+"/v1/latest", nil)
		req.Header.Set("Authorization", "Bearer "+a.token)
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("token holder on HTTP/2: %v, %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return reused
	}
	getH2()
	// Reading waits for the server to close them.
	for name, c := range map[string]net.Conn{"idle": idle, "refused": refused} {
		if !closedByServer(c, time.Minute) {
			t.Errorf("the %s connection is not closed", name)
		}
	}
	h2.SetReadDeadline(time.Now().Add(time.Minute))
	for {
		if _, err := fr.ReadFrame(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Error("the idle HTTP/2 connection is not closed")
			}
			break
		}
	}
	// Past the auth_timeout of every connection opened above.
	time.Sleep(2 * a.srv.lim.AuthTimeout)
	if code, err := get(authed, a.token); code != http.StatusOK {
		t.Fatalf("the authenticated connection after auth_timeout: %d, %v", code, err)
	}
	if !getH2() {
		t.Error("the authenticated HTTP/2 connection was closed")
	}
	if n := testutil.ToFloat64(a.srv.ev.conns.WithLabelValues(connAuthTimeout)); n != 3 {
		t.Errorf("%v connections closed for auth_timeout, want 3", n)
	}
}

// The server announces a bound on concurrent HTTP/2 streams.
func TestHTTP2StreamsBounded(t *testing.T) {
	a := newLimitedAgent(t, Limits{})
	c, err := a.dial("127.0.0.1", "h2")
	if err != nil || c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("HTTP/2: %v", err)
	}
	defer c.Close()
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != maxHTTP2Streams {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d (%v), want %d", v, ok, maxHTTP2Streams)
	}
}

// Requests that do not authenticate are limited per client address before
// the token is looked at; requests that authenticate do not count, and other
// addresses are not limited by one's flood.
func TestClientRateLimit(t *testing.T) {
	// One unauthenticated request per address, then one per 100 s.
	a := newLimitedAgent(t, Limits{ClientRate: MinRate, Rate: 1000})
	conn := func(from string) *tls.Conn {
		t.Helper()
		c, err := a.dial(from)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	holder := conn("127.0.0.3")
	for i := range 50 {
		if code, err := get(holder, a.token); code != http.StatusOK {
			t.Fatalf("token holder, request %d: %d, %v", i, code, err)
		}
	}
	if code, err := get(holder, ""); code != http.StatusUnauthorized {
		t.Fatalf("no token after 50 authenticated requests: %d, %v, want 401", code, err)
	}
	if code, err := get(holder, ""); code != http.StatusTooManyRequests {
		t.Fatalf("a second request without a token: %d, %v, want 429", code, err)
	}
	flood := conn("127.0.0.2")
	codes := map[int]int{}
	for range 20 {
		code, err := get(flood, "tipa_"+strings.Repeat("x", 43))
		if err != nil {
			t.Fatal(err)
		}
		codes[code]++
	}
	if codes[http.StatusUnauthorized] != 1 || codes[http.StatusTooManyRequests] != 19 {
		t.Fatalf("20 requests with an unknown token: %v, want one 401, then 429", codes)
	}
	// Past its limit, the address is refused whatever it sends; others not.
	if code, _ := get(conn("127.0.0.2"), a.token); code != http.StatusTooManyRequests {
		t.Errorf("a token from the flooding address: %d, want 429", code)
	}
	other := conn("127.0.0.4")
	for range 20 {
		if code, err := get(other, a.token); code != http.StatusOK {
			t.Fatalf("a token from another address: %d, %v", code, err)
		}
	}
}

func TestClientOf(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:443":                     "192.0.2.7/32",
		"[::ffff:192.0.2.7]:443":            "192.0.2.7/32",
		"[2001:db8:1:2:3:4:5:6]:443":        "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:ffff:ffff:1]:1": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:443":                "fe80::/64",
		"@":                                 "invalid Prefix",
	} {
		if got := clientOf(in).String(); got != want {
			t.Errorf("clientOf(%q) = %s, want %s", in, got, want)
		}
	}
}

// The buckets of client addresses are bounded: past the bound, full buckets
// are forgotten first.
func TestRateLimitsBounded(t *testing.T) {
	now := time.Unix(0, 0)
	l := newRateLimits[netip.Prefix](1, 100, func() time.Time { return now })
	hot := netip.MustParsePrefix("192.0.2.1/32")
	l.allow(hot)
	l.allow(hot)
	for i := range 10_000 {
		l.allow(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
		if len(l.buckets) > 100 {
			t.Fatalf("%d buckets", len(l.buckets))
		}
	}
	now = now.Add(10 * time.Second)
	for range 200 {
		l.allow(netip.MustParsePrefix("198.51.100.1/32"))
	}
	if len(l.buckets) > 100 {
		t.Fatalf("%d buckets", len(l.buckets))
	}
}

// Refusals are counted every one and logged sampled: the first few of each
// kind in a minute in full, then the counts once the minute is over.
func TestEventsSampled(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	src, err := OpenStore(t.TempDir(), testAgentID)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(src, OpenTokens(t.TempDir()), Limits{}.withDefaults(), slog.New(slog.NewTextHandler(&buf, nil)))
	srv.ev.now = func() time.Time { return now }
	srv.ev.start = now
	for range 1000 {
		srv.ev.note(refusedNoToken, slog.LevelWarn, "agent: refused", slog.String("remote", "192.0.2.1:1"))
	}
	for range 3 {
		srv.ev.note(refusedScope, slog.LevelWarn, "agent: refused")
	}
	lines := strings.Count(buf.String(), "\n")
	if lines != eventSamples+3 || strings.Count(buf.String(), "sampled=") != 1 {
		t.Fatalf("%d lines logged for 1003 refusals, want %d:\n%s", lines, eventSamples+3, buf.String())
	}
	now = now.Add(eventInterval)
	srv.ev.note(refusedScope, slog.LevelWarn, "agent: refused")
	if summary := fmt.Sprintf("unlogged=%d no_token=1000 scope=3\n", 1000-eventSamples); !strings.Contains(buf.String(), summary) {
		t.Fatalf("no summary %q of the minute:\n%s", summary, buf.String())
	}
	// A minute whose refusals were all logged has no summary.
	buf.Reset()
	now = now.Add(eventInterval)
	srv.ev.flush()
	if buf.Len() != 0 {
		t.Fatalf("a summary of a minute with nothing unlogged: %s", buf.String())
	}
}

// The metrics listener serves the counters in Prometheus's text format.
func TestServeMetrics(t *testing.T) {
	a := newLimitedAgent(t, Limits{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.srv.ServeMetrics(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c, err := a.dial("127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		get(c, "")
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`tip_agent_requests_refused_total{reason="no_token"} 3`, "tip_agent_requests_total 3", "tip_agent_connections_open 1",
		`tip_agent_connections_refused_total{reason="max_conns"} 0`, "tip_agent_latest_version 1", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
