package activities

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/safehttp"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// Downloads makes every download from outside TIP (feeds, allowlists, spam
// archives) into the blob store: through safehttp's clients, which refuse
// private destinations unless a catalog allows them, and within the download
// slots per host that every worker sharing the database counts against.
type Downloads struct {
	Blobs Blobs
	// Slots are the shared per-host download slots (storage.DB); PerHost of
	// them per host, 0: no bound. Holder names this worker in them.
	Slots   UpstreamSlots
	PerHost int
	Holder  string

	once    sync.Once
	clients [2]*http.Client // [0] public addresses only, [1] private ones too
}

// userAgent names TIP to feed operators.
const userAgent = "TIP-blacklist-collector/1 (+https://github.com/tip-project/tip)"

// upstreamLease is how long a download holds its slot of a host between
// renewals: the slot of a worker that died frees itself after it.
const upstreamLease = time.Minute

// hold waits for one of the PerHost slots of rawURL's host, which
// every worker sharing the database counts against, so adding workers does not
// add downloads in flight to one server. It returns the function that frees the
// slot. While it waits, an activity heartbeats (saying what it waits for); while
// it holds the slot, the lease is renewed. With no bound configured it returns at
// once.
func (d *Downloads) hold(ctx context.Context, rawURL string) (release func(), err error) {
	if d.PerHost <= 0 || d.Slots == nil {
		return func() {}, nil
	}
	host := upstreamHost(rawURL)
	holder := d.Holder + "/" + randomHex(6)
	waited := time.Duration(0)
	for {
		slot, ok, err := d.Slots.AcquireUpstream(ctx, host, d.PerHost, holder, upstreamLease)
		if err != nil {
			return nil, err
		}
		if ok {
			if waited > 0 {
				slog.Debug("upstream slot taken after a wait", "host", host, "slot", slot, "waited", waited)
			}
			return d.keepLease(ctx, host, slot, holder), nil
		}
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, fmt.Sprintf("waiting for one of %d download slots of %s", d.PerHost, host))
		}
		// Half a second to a second: waiters do not poll the table in step.
		pause := 500*time.Millisecond + rand.N(500*time.Millisecond)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a download slot of %s (%d in use by other downloads) for %s: %w",
				host, d.PerHost, waited.Round(time.Second), ctx.Err())
		case <-time.After(pause):
			waited += pause
		}
	}
}

// keepLease renews a held slot until the returned release frees it.
func (d *Downloads) keepLease(ctx context.Context, host string, slot int, holder string) func() {
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
				kept, err := d.Slots.RenewUpstream(rctx, host, slot, holder, upstreamLease)
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
		_ = d.Slots.ReleaseUpstream(rctx, host, slot, holder)
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

// validators identify the content last loaded from a URL.
type validators struct{ etag, lastModified, sha256 string }

// fetch makes the conditional GET of src with the validators v and streams a
// changed body into the blob store, filling res. Network errors and 5xx answers
// are returned as errors so Temporal retries them; answers that retrying cannot
// change (404, other 4xx, too large) are outcomes in res.
func (d *Downloads) fetch(ctx context.Context, src catalog.Source, v validators, res *contract.FetchResult) error {
	// One of the host's download slots first: the source's timeout is the
	// download's, not the wait's.
	release, err := d.hold(ctx, src.URL)
	if err != nil {
		return err
	}
	defer release()
	if src.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, src.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("fetch %s: %v", src.Name, err), "BadURL", err)
	}
	req.Header.Set("User-Agent", userAgent)
	if v.etag != "" {
		req.Header.Set("If-None-Match", v.etag)
	}
	if v.lastModified != "" {
		req.Header.Set("If-Modified-Since", v.lastModified)
	}
	resp, err := d.client(src.AllowPrivate).Do(req)
	var refused *safehttp.RefusedError
	switch {
	case errors.As(err, &refused):
		// A destination TIP does not download from: retrying cannot change it.
		res.Status, res.Error = contract.FetchFailed, refusal(src.URL, refused)
		return nil
	case err != nil:
		return fmt.Errorf("fetch %s: %w", src.Name, err)
	}
	defer resp.Body.Close()
	res.HTTPStatus = resp.StatusCode
	switch {
	case resp.StatusCode == http.StatusNotModified:
		res.Status, res.ETag, res.LastModified, res.SHA256 = contract.FetchUnchanged, v.etag, v.lastModified, v.sha256
		return nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		res.Status, res.Error = contract.FetchDead, fmt.Sprintf("%s answers %s: the feed is gone", src.URL, resp.Status)
		return nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("fetch %s: %s answers %s", src.Name, src.URL, resp.Status)
	case resp.StatusCode != http.StatusOK:
		res.Status, res.Error = contract.FetchFailed, fmt.Sprintf("%s answers %s", src.URL, resp.Status)
		return nil
	}

	body := &progressReader{r: resp.Body, ctx: ctx}
	limit := src.SizeLimit
	if limit <= 0 {
		limit = 1 << 40
	}
	blob, err := d.Blobs.Put(ctx, io.LimitReader(body, limit+1), storage.PutOptions{ContentType: resp.Header.Get("Content-Type"),
		Tags: map[string]string{storage.RawTag: storage.RawDownload}}) // fetched again when needed: expires (retention.snapshots_days)
	if err != nil {
		return fmt.Errorf("fetch %s: store: %w", src.Name, err)
	}
	res.Bytes = blob.Size
	if blob.Size > limit {
		res.Status, res.Error = contract.FetchFailed, fmt.Sprintf("%s is larger than its size limit of %d bytes", src.URL, limit)
		return nil
	}
	res.SHA256, res.ETag, res.LastModified = blob.SHA256, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	res.Status = contract.FetchChanged
	if blob.SHA256 == v.sha256 {
		res.Status = contract.FetchUnchanged // no validators upstream, but the same bytes
	}
	return nil
}

// client is the HTTP client of a download: allowPrivate (its catalog's
// allow_private) lets it connect to loopback and private addresses.
func (d *Downloads) client(allowPrivate bool) *http.Client {
	d.once.Do(func() {
		d.clients = [2]*http.Client{safehttp.NewClient(safehttp.Options{}), safehttp.NewClient(safehttp.Options{AllowPrivate: true})}
	})
	if allowPrivate {
		return d.clients[1]
	}
	return d.clients[0]
}

// refusal says why the download of rawURL was not made, and how a catalog
// allows it when the destination may be on the operator's own network.
func refusal(rawURL string, refused *safehttp.RefusedError) string {
	msg := rawURL + ": " + refused.Reason
	if refused.Private {
		msg += " (allow_private in the catalog lets a source reach loopback and private addresses)"
	}
	return msg
}

// progressReader heartbeats the bytes read so far, at most once a second.
type progressReader struct {
	r    io.Reader
	ctx  context.Context
	n    int64
	last time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if time.Since(p.last) > time.Second {
		p.last = time.Now()
		if activity.IsActivity(p.ctx) {
			activity.RecordHeartbeat(p.ctx, p.n)
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return n, fmt.Errorf("body ended early after %d bytes: %w", p.n, err)
	}
	return n, err
}
