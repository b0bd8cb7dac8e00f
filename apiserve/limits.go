package apiserve

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// tokenLimits is a token bucket per API token: rate requests a second, burst
// at once. Each replica keeps its own, so N replicas behind a balancer let a
// token make up to N times as many.
type tokenLimits struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*tokenBucket
	swept   time.Time
}

type tokenBucket struct {
	lim  *rate.Limiter
	used time.Time
}

func newTokenLimits(perSecond float64, burst int) *tokenLimits {
	return &tokenLimits{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*tokenBucket{}}
}

// allow takes one request of the token's bucket at now; when it is empty it
// says how long until it holds one.
func (l *tokenLimits) allow(token string, now time.Time) (bool, time.Duration) {
	if l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// A bucket unused this long is full again: forgetting it changes nothing.
	idle := max(time.Minute, time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)))
	if now.Sub(l.swept) > idle {
		for name, b := range l.buckets {
			if now.Sub(b.used) > idle {
				delete(l.buckets, name)
			}
		}
		l.swept = now
	}
	b := l.buckets[token]
	if b == nil {
		b = &tokenBucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[token] = b
	}
	b.used = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limitListener closes at once a connection past MaxConns open ones, or
// past MaxConnsPerClient of its client address.
type limitListener struct {
	net.Listener
	max, perClient int
	m              *metrics
	refused        *refusals

	mu     sync.Mutex
	open   int
	client map[netip.Addr]int
}

func newLimitListener(ln net.Listener, maxConns, perClient int, m *metrics, refused *refusals) *limitListener {
	return &limitListener{Listener: ln, max: maxConns, perClient: perClient, m: m, refused: refused, client: map[netip.Addr]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := addrOf(c.RemoteAddr())
		reason := ""
		l.mu.Lock()
		switch {
		case l.max > 0 && l.open >= l.max:
			reason = "max_conns"
		case l.perClient > 0 && l.client[addr] >= l.perClient:
			reason = "max_conns_per_client"
		default:
			l.open++
			l.client[addr]++
		}
		l.mu.Unlock()
		if reason != "" {
			l.m.refused.WithLabelValues(reason).Inc()
			c.Close()
			l.refused.note(addr.String(), reason, "api: connection refused")
			continue
		}
		l.m.conns.Inc()
		return &limitedConn{Conn: c, l: l, addr: addr}, nil
	}
}

func (l *limitListener) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.client[addr]--; l.client[addr] <= 0 {
		delete(l.client, addr)
	}
	l.m.conns.Dec()
}

// limitedConn gives its place back when closed.
type limitedConn struct {
	net.Conn
	l    *limitListener
	addr netip.Addr
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr) })
	return err
}

// addrOf is the client address of a connection.
func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// clientOf is the client address of a request's RemoteAddr.
func clientOf(remote string) string {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().String()
	}
	return remote
}
