package activities

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
)

// upstreamLease is how long a download holds its slot of a host between
// renewals: the slot of a worker that died frees itself after it.
const upstreamLease = time.Minute

// holdUpstream waits for one of the FetchesPerHost slots of rawURL's host, which
// every worker sharing the database counts against, so adding workers does not
// add downloads in flight to one server. It returns the function that frees the
// slot. While it waits, an activity heartbeats (saying what it waits for); while
// it holds the slot, the lease is renewed. With no bound configured it returns at
// once.
func (a *Activities) holdUpstream(ctx context.Context, rawURL string) (release func(), err error) {
	if a.FetchesPerHost <= 0 || a.DB == nil {
		return func() {}, nil
	}
	host := upstreamHost(rawURL)
	holder := a.Identity + "/" + randomHex(6)
	waited := time.Duration(0)
	for {
		slot, ok, err := a.DB.AcquireUpstream(ctx, host, a.FetchesPerHost, holder, upstreamLease)
		if err != nil {
			return nil, err
		}
		if ok {
			if waited > 0 {
				slog.Debug("upstream slot taken after a wait", "host", host, "slot", slot, "waited", waited)
			}
			return a.keepLease(ctx, host, slot, holder), nil
		}
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, fmt.Sprintf("waiting for one of %d download slots of %s", a.FetchesPerHost, host))
		}
		// Half a second to a second: waiters do not poll the table in step.
		pause := 500*time.Millisecond + rand.N(500*time.Millisecond)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a download slot of %s (%d in use by other downloads) for %s: %w",
				host, a.FetchesPerHost, waited.Round(time.Second), ctx.Err())
		case <-time.After(pause):
			waited += pause
		}
	}
}

// keepLease renews a held slot until the returned release frees it.
func (a *Activities) keepLease(ctx context.Context, host string, slot int, holder string) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(upstreamLease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), upstreamLease/3)
				kept, err := a.DB.RenewUpstream(rctx, host, slot, holder, upstreamLease)
				cancel()
				if err == nil && !kept {
					// The lease expired (the database was unreachable for longer
					// than it lasts) and another download may have the slot: the
					// download goes on, one over the bound until it ends.
					slog.Warn("upstream slot lost while downloading", "host", host, "slot", slot)
					return
				}
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		// A release that fails leaves the lease to expire.
		_ = a.DB.ReleaseUpstream(rctx, host, slot, holder)
	}
}

// upstreamHost is what slots are counted per: a URL's host name, lower case,
// with its port when not the scheme's default.
func upstreamHost(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return rawURL
	}
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && !(u.Scheme == "http" && p == "80") && !(u.Scheme == "https" && p == "443") {
		host += ":" + p
	}
	return host
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
