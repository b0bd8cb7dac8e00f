package resolver

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// limiter is a token bucket per server address: each server gets rate queries per
// second on average and at most burst at once. A query takes a token now and, when
// the bucket is empty, waits for its turn; turns are handed out in call order, so
// concurrent callers queue rather than race.
type limiter struct {
	rate  float64 // tokens per second; <= 0 means no limit
	burst float64

	// now and sleep are the clock; tests replace them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64 // may go negative: turns already promised to waiting callers
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{
		rate:    rate,
		burst:   float64(max(burst, 1)),
		now:     time.Now,
		sleep:   sleepCtx,
		buckets: map[string]*bucket{},
	}
}

// wait blocks until server may be sent a query, or fails at once when ctx ends
// before that turn would come.
func (l *limiter) wait(ctx context.Context, server string) error {
	l.mu.Lock()
	if l.rate <= 0 {
		l.mu.Unlock()
		return nil
	}
	now := l.now()
	b, ok := l.buckets[server]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[server] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.last = now
	}
	b.tokens--
	var delay time.Duration
	if b.tokens < 0 {
		delay = time.Duration(math.Round(-b.tokens / l.rate * float64(time.Second)))
	}
	if deadline, ok := ctx.Deadline(); ok && delay > 0 && now.Add(delay).After(deadline) {
		b.tokens++
		l.mu.Unlock()
		return fmt.Errorf("resolver: rate limit for %s: next turn in %v, after the deadline: %w", server, delay, context.DeadlineExceeded)
	}
	l.mu.Unlock()
	if delay == 0 {
		return nil
	}
	if err := l.sleep(ctx, delay); err != nil {
		l.mu.Lock()
		b.tokens++ // the turn is not used: give it back
		l.mu.Unlock()
		return fmt.Errorf("resolver: rate limit for %s: %w", server, err)
	}
	return nil
}

// setRate changes the rate and burst for every server from now on: what each
// bucket earned so far at the old rate is kept, up to the new burst.
func (l *limiter) setRate(rate float64, burst int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, b := range l.buckets {
		if elapsed := now.Sub(b.last); elapsed > 0 && l.rate > 0 {
			b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		}
		b.last = now
		b.tokens = min(b.tokens, float64(max(burst, 1)))
	}
	l.rate, l.burst = rate, float64(max(burst, 1))
}

// maxBuckets bounds the map before idle buckets are dropped: iterative resolution of
// double-flux zones meets ever new name-server addresses.
const maxBuckets = 4096

// prune drops the buckets that have refilled: forgetting them changes nothing.
func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
