package dnsserve

import (
	"net/netip"
	"sync"
	"time"
)

// limiter bounds the queries of each client address: a token bucket of rate
// tokens a second, holding at most one second's worth.
type limiter struct {
	rate    float64
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(rate float64) *limiter {
	return &limiter{rate: rate, buckets: map[netip.Addr]*bucket{}, swept: time.Now()}
}

// allow takes a token of the client's bucket; false when it is empty.
func (l *limiter) allow(client netip.Addr) bool {
	if l.rate <= 0 {
		return true
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute { // forget the clients gone quiet
		for a, b := range l.buckets {
			if now.Sub(b.at) > time.Minute {
				delete(l.buckets, a)
			}
		}
		l.swept = now
	}
	b := l.buckets[client]
	if b == nil {
		b = &bucket{tokens: l.rate, at: now}
		l.buckets[client] = b
	}
	b.tokens = min(l.rate, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
