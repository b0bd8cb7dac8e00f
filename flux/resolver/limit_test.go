package resolver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock moves only when someone sleeps on it (unless frozen), and records each
// sleep.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	frozen bool // sleeps return at once without moving the clock
	slept  []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	if !c.frozen {
		c.now = c.now.Add(d)
	}
	return nil
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.slept)
}

func testLimiter(rate float64, burst int) (*limiter, *fakeClock) {
	c := &fakeClock{now: time.Unix(1e9, 0)}
	l := newLimiter(rate, burst)
	l.now, l.sleep = c.Now, c.Sleep
	return l, c
}

const ms = time.Millisecond

func TestLimiterWaits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
		// steps: a server to query, or "+d" to let time pass.
		steps []string
		want  []time.Duration // the sleeps, in order
	}{
		{"no limit", 0, 0, []string{"a", "a", "a", "a"}, nil},
		{"burst then rate", 10, 3, []string{"a", "a", "a", "a", "a"}, []time.Duration{100 * ms, 100 * ms}},
		{"servers are separate", 10, 1, []string{"a", "b", "a"}, []time.Duration{100 * ms}},
		{"idle time refills", 10, 2, []string{"a", "a", "+1s", "a", "a", "a"}, []time.Duration{100 * ms}},
		{"refill stops at burst", 4, 1, []string{"a", "+10s", "a", "a"}, []time.Duration{250 * ms}},
		{"a partial refill shortens the wait", 10, 1, []string{"a", "+40ms", "a"}, []time.Duration{60 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, c := testLimiter(tc.rate, tc.burst)
			for _, s := range tc.steps {
				if d, err := time.ParseDuration(s); err == nil {
					c.advance(d)
					continue
				}
				if err := l.wait(context.Background(), s); err != nil {
					t.Fatal(err)
				}
			}
			if got := c.sleeps(); !slices.Equal(got, tc.want) {
				t.Errorf("slept %v, want %v", got, tc.want)
			}
		})
	}
}

// Callers that come at the same moment queue: each gets the next turn, one
// interval after the one before, in the order they asked.
func TestLimiterQueues(t *testing.T) {
	l, c := testLimiter(10, 1)
	c.frozen = true
	for i := 0; i < 5; i++ {
		if err := l.wait(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Duration{100 * ms, 200 * ms, 300 * ms, 400 * ms}
	if got := c.sleeps(); !slices.Equal(got, want) {
		t.Errorf("slept %v, want %v", got, want)
	}

	// Concurrent callers get distinct turns, whatever order they run in.
	l, c = testLimiter(10, 1)
	c.frozen = true
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.wait(context.Background(), "a")
		}()
	}
	wg.Wait()
	got := c.sleeps()
	slices.Sort(got)
	for i, d := range got {
		if d != time.Duration(i+1)*100*ms {
			t.Fatalf("turns %v, want 100ms apart", got)
		}
	}
}

// A turn that would come after ctx's deadline fails at once, and a wait cut short
// gives its turn back: neither delays the callers after it.
func TestLimiterContext(t *testing.T) {
	l, c := testLimiter(10, 1)
	_ = l.wait(context.Background(), "a") // the burst

	ctx, cancel := context.WithDeadline(context.Background(), c.Now().Add(50*ms))
	defer cancel()
	if err := l.wait(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("turn after the deadline: %v", err)
	}
	if got := c.sleeps(); len(got) != 0 {
		t.Errorf("slept %v before failing", got)
	}

	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := l.wait(canceled, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled wait: %v", err)
	}

	if err := l.wait(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if got := c.sleeps(); !slices.Equal(got, []time.Duration{100 * ms}) {
		t.Errorf("slept %v, want one 100ms turn: the failed waits took none", got)
	}
}

func TestLimiterPrunesIdleServers(t *testing.T) {
	l, c := testLimiter(10, 1)
	for i := 0; i < maxBuckets; i++ {
		_ = l.wait(context.Background(), fmt.Sprint(i))
	}
	c.advance(time.Second)
	_ = l.wait(context.Background(), "busy")
	_ = l.wait(context.Background(), "busy")
	_ = l.wait(context.Background(), "new")
	if len(l.buckets) != 2 {
		t.Errorf("%d buckets, want 2: the idle ones were dropped", len(l.buckets))
	}
}

// A worker's share of the rate changes as workers come and go: the turns after
// the change are spaced at the new rate.
func TestLimiterSetRate(t *testing.T) {
	l, c := testLimiter(10, 1)
	c.frozen = true
	for range 3 {
		if err := l.wait(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := c.sleeps(), []time.Duration{100 * ms, 200 * ms}; !slices.Equal(got, want) {
		t.Fatalf("at 10/s slept %v, want %v", got, want)
	}
	// A second worker joins: this one's share halves. Its bucket is two turns in
	// debt, now 200 ms each: the next turns come 600 and 800 ms from now.
	l.setRate(5, 1)
	for range 2 {
		if err := l.wait(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := c.sleeps()[2:], []time.Duration{600 * ms, 800 * ms}; !slices.Equal(got, want) {
		t.Errorf("at 5/s slept %v, want %v", got, want)
	}
	// No limit at all.
	l.setRate(0, 1)
	if err := l.wait(context.Background(), "a"); err != nil || len(c.sleeps()) != 4 {
		t.Errorf("with no limit: %v, sleeps %v", err, c.sleeps())
	}
}
