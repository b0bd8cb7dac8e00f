package agent

import (
	"container/list"
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Limits, and of agent.yaml.
const (
	DefaultRate              = 20.0
	DefaultClientRate        = 5.0
	DefaultMaxConns          = 256
	DefaultMaxConnsPerClient = 16
	DefaultAuthTimeout       = 10 * time.Second
)

// The bounds of Limits. A rate outside them is a slip (or .nan, .inf) rather
// than a setting: below MinRate a client waits minutes between requests, above
// MaxRate the limit limits nothing.
const (
	MinRate        = 0.01
	MaxRate        = 1e6
	MaxConnsLimit  = 1 << 16
	MaxAuthTimeout = 10 * time.Minute
)

const (
	// maxHTTP2Streams bounds the requests one HTTP/2 connection has under way
	// at once; a collector sends one at a time.
	maxHTTP2Streams = 16
	// maxClientBuckets bounds the rate buckets of client addresses kept at once.
	maxClientBuckets = 10_000
	// maxRetryAfter bounds the Retry-After of a 429.
	maxRetryAfter = time.Hour
)

// Limits bound what the clients of a Server take of it (docs/agent-protocol.md).
// A zero field takes its default.
type Limits struct {
	// Rate is each token's requests per second, in a bucket holding twice that
	// (at least one).
	Rate float64
	// ClientRate is each client address's requests per second that do not
	// authenticate (no token, an unknown, expired or revoked one, a method
	// other than GET and HEAD), in a bucket holding twice that. It is applied
	// before the token is looked at: an address past it gets 429 whatever it
	// sends. A client address is an IPv4 address or an IPv6 /64.
	ClientRate float64
	// MaxConns bounds the open connections. At the bound, a new connection
	// closes the oldest connection that has not authenticated yet, or is itself
	// closed when every open one has.
	MaxConns int
	// MaxConnsPerClient bounds the open connections of one client address;
	// past it a new connection is closed at once.
	MaxConnsPerClient int
	// AuthTimeout is how long after it opened a connection must have carried
	// an authenticated request; one that has not is closed. A connection that
	// has keeps the server's idle timeout (two minutes).
	AuthTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.Rate == 0 {
		l.Rate = DefaultRate
	}
	if l.ClientRate == 0 {
		l.ClientRate = DefaultClientRate
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxConnsPerClient == 0 {
		l.MaxConnsPerClient = min(DefaultMaxConnsPerClient, l.MaxConns)
	}
	if l.AuthTimeout == 0 {
		l.AuthTimeout = DefaultAuthTimeout
	}
	return l
}

// Check validates the limits; errors name agent.yaml's keys.
func (l Limits) Check() error {
	if err := checkRate("rate_limit", l.Rate); err != nil {
		return err
	}
	if err := checkRate("client_rate_limit", l.ClientRate); err != nil {
		return err
	}
	switch {
	case l.MaxConns < 1 || l.MaxConns > MaxConnsLimit:
		return fmt.Errorf("max_conns %d: want 1 to %d", l.MaxConns, MaxConnsLimit)
	case l.MaxConnsPerClient < 1 || l.MaxConnsPerClient > l.MaxConns:
		return fmt.Errorf("max_conns_per_client %d: want 1 to max_conns (%d)", l.MaxConnsPerClient, l.MaxConns)
	case l.AuthTimeout <= 0 || l.AuthTimeout > MaxAuthTimeout:
		return fmt.Errorf("auth_timeout %s: want a positive duration up to %s", l.AuthTimeout, MaxAuthTimeout)
	}
	return nil
}

// checkRate says why a number of requests per second is not a rate; NaN and
// the infinities fail the comparisons too.
func checkRate(key string, r float64) error {
	if !(r >= MinRate && r <= MaxRate) {
		return fmt.Errorf("%s %g: want a number of requests per second from %g to %g", key, r, MinRate, MaxRate)
	}
	return nil
}

// clientOf is the client address a remote address (host:port) counts
// against: the IPv4 address, or the /64 of an IPv6 address, since an IPv6 host
// commonly holds a whole /64. Addresses that do not parse share the zero
// Prefix.
func clientOf(remote string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// connLimiter is a listener that holds the open connections to Limits: at most
// MaxConns in all, MaxConnsPerClient per client address, and each closed unless
// it authenticates within AuthTimeout.
type connLimiter struct {
	net.Listener
	lim Limits
	ev  *events

	mu     sync.Mutex
	open   int
	peak   int
	per    map[netip.Prefix]int
	unauth list.List // of *trackedConn not yet authenticated, oldest first
	gauge  *atomic.Int64
}

func newConnLimiter(ln net.Listener, lim Limits, ev *events, gauge *atomic.Int64) *connLimiter {
	return &connLimiter{Listener: ln, lim: lim, ev: ev, per: map[netip.Prefix]int{}, gauge: gauge}
}

// trackedConn is a connection the limiter counts.
type trackedConn struct {
	net.Conn
	l      *connLimiter
	client netip.Prefix
	authed atomic.Bool

	// Guarded by l.mu.
	elem     *list.Element // in l.unauth until authenticated or released
	timer    *time.Timer
	released bool
}

// Accept returns the next connection within the limits; connections over them
// are closed as they arrive.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := l.admit(c); tc != nil {
			return tc, nil
		}
	}
}

func (l *connLimiter) admit(c net.Conn) *trackedConn {
	remote := c.RemoteAddr().String()
	client := clientOf(remote)
	var evicted *trackedConn
	reason := ""
	l.mu.Lock()
	switch {
	case l.per[client] >= l.lim.MaxConnsPerClient:
		reason = connRefusedPerClient
	case l.open >= l.lim.MaxConns:
		if e := l.unauth.Front(); e != nil {
			evicted = e.Value.(*trackedConn)
			l.release(evicted)
		} else {
			reason = connRefusedMax
		}
	}
	// Each event is recorded before its connection is closed: the client
	// sees the close, and whoever reads the events after it finds them.
	if reason != "" {
		l.mu.Unlock()
		l.ev.connEvent(reason, remote)
		c.Close()
		return nil
	}
	tc := &trackedConn{Conn: c, l: l, client: client}
	l.open++
	l.peak = max(l.peak, l.open)
	l.per[client]++
	l.gauge.Store(int64(l.open))
	tc.elem = l.unauth.PushBack(tc)
	tc.timer = time.AfterFunc(l.lim.AuthTimeout, tc.authTimeout)
	l.mu.Unlock()
	if evicted != nil {
		l.ev.connEvent(connEvicted, evicted.RemoteAddr().String())
		evicted.Conn.Close()
	}
	return tc
}

// release stops counting tc. Called with mu held.
func (l *connLimiter) release(tc *trackedConn) {
	if tc.released {
		return
	}
	tc.released = true
	tc.timer.Stop()
	if tc.elem != nil {
		l.unauth.Remove(tc.elem)
		tc.elem = nil
	}
	l.open--
	if l.per[tc.client]--; l.per[tc.client] <= 0 {
		delete(l.per, tc.client)
	}
	l.gauge.Store(int64(l.open))
}

// counts are the open connections and the most there were at once.
func (l *connLimiter) counts() (open, peak int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.peak
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	c.l.release(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// authenticated marks the connection as one that carried an authenticated
// request: it is no longer closed for want of one, nor to make room.
func (c *trackedConn) authenticated() {
	if c.authed.Swap(true) {
		return
	}
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if c.elem != nil {
		c.l.unauth.Remove(c.elem)
		c.elem = nil
		c.timer.Stop()
	}
}

func (c *trackedConn) authTimeout() {
	c.l.mu.Lock()
	if c.elem == nil || c.released {
		c.l.mu.Unlock()
		return
	}
	c.l.release(c)
	c.l.mu.Unlock()
	c.l.ev.connEvent(connAuthTimeout, c.RemoteAddr().String())
	c.Conn.Close()
}

type connKey struct{}

// connContext hands the request handlers their connection, so an
// authenticated request can mark it.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*trackedConn); ok {
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

func connOf(r *http.Request) *trackedConn {
	tc, _ := r.Context().Value(connKey{}).(*trackedConn)
	return tc
}

// rateLimits are token buckets by key: rate per second, holding burst. At most
// max buckets are kept; a full bucket is the same as none, so those go first
// when there are too many, then any.
type rateLimits[K comparable] struct {
	rate, burst float64
	max         int
	now         func() time.Time

	mu      sync.Mutex
	buckets map[K]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// newRateLimits keeps rate within MinRate and MaxRate, whatever a caller
// passes: a NaN or infinite rate would make every wait meaningless.
func newRateLimits[K comparable](rate float64, maxBuckets int, now func() time.Time) *rateLimits[K] {
	if !(rate >= MinRate) {
		rate = MinRate
	}
	rate = min(rate, MaxRate)
	return &rateLimits[K]{rate: rate, burst: max(2*rate, 1), max: maxBuckets, now: now, buckets: map[K]*bucket{}}
}

// allow takes one request from the bucket of key, or says how long until the
// bucket holds one again.
func (l *rateLimits[K]) allow(key K) (time.Duration, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.shrink(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
}

// refund gives back the request allow took.
func (l *rateLimits[K]) refund(key K) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil {
		b.tokens = min(l.burst, b.tokens+1)
	}
}

func (l *rateLimits[K]) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
}

// shrink makes room for a quarter of max: first by forgetting full buckets,
// then any. Called with mu held.
func (l *rateLimits[K]) shrink(now time.Time) {
	target := l.max - max(l.max/4, 1)
	for k, b := range l.buckets {
		if len(l.buckets) <= target {
			return
		}
		if l.refill(b, now); b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) <= target {
			return
		}
		delete(l.buckets, k)
	}
}

// retryAfter is a 429's Retry-After: whole seconds, at least one, at most an
// hour.
func retryAfter(wait time.Duration) string {
	wait = min(max(wait, time.Second), maxRetryAfter)
	return strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10)
}
