package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/safehttp"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// userAgent names TIP to feed operators.
const userAgent = "TIP-blacklist-collector/1 (+https://github.com/tip-project/tip)"

// FetchSource downloads a source with a conditional GET (the validators of the last
// loaded content) and streams a changed body into the blob store under its SHA-256.
// Network errors and 5xx answers are returned as errors so Temporal retries them;
// answers that retrying cannot change (404, other 4xx, too large) are results.
func (a *Activities) FetchSource(ctx context.Context, src catalog.Source) (contract.FetchResult, error) {
	res := contract.FetchResult{Source: src.Name, StartedAt: time.Now().UTC()}
	if err := a.DB.UpsertSource(ctx, storage.SourceRow{Name: src.Name, URL: src.URL, Format: src.Format, Type: src.Type, Prior: src.Prior, Enabled: src.Enabled}); err != nil {
		return res, err
	}
	row, err := a.DB.Source(ctx, src.Name)
	if err != nil {
		return res, err
	}
	// A refresh runs every source, but each is fetched only as often as its catalog
	// interval allows (with 10 % slack, since refreshes start after the last ended).
	if !row.LastSuccess.IsZero() && src.Interval > 0 && time.Since(row.LastSuccess) < src.Interval*9/10 {
		res.Status = contract.FetchNotDue
		return res, nil
	}
	// The rate limit spaces every request, retries included: upstreams that ask
	// for one request per N minutes mean it, and ban clients that do not listen.
	if src.RateLimit > 0 {
		ok, next, lastErr, err := a.DB.ClaimFetch(ctx, src.Name, src.RateLimit)
		if err != nil {
			return res, err
		}
		if !ok {
			wait := fmt.Sprintf("rate limit %s: no request before %s", src.RateLimit, next.UTC().Format(time.RFC3339))
			if activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt > 1 {
				// a retry after a failure: the failure stands
				res.Status, res.Error = contract.FetchFailed, lastErr+"; "+wait
				return res, nil
			}
			res.Status, res.Error = contract.FetchRateLimited, wait
			return res, nil
		}
	}
	err = a.download(ctx, src, validators{row.ETag, row.LastModified, row.ContentSHA256}, &res)
	if err != nil && src.RateLimit > 0 {
		if rerr := a.DB.FetchAttemptFailed(ctx, src.Name, err.Error()); rerr != nil {
			return res, errors.Join(err, rerr)
		}
	}
	return res, err
}

// validators identify the content last loaded from a URL.
type validators struct{ etag, lastModified, sha256 string }

// download makes the conditional GET of src with the validators v and streams a
// changed body into the blob store, filling res. Network errors and 5xx answers
// are returned as errors so Temporal retries them; answers that retrying cannot
// change (404, other 4xx, too large) are outcomes in res.
func (a *Activities) download(ctx context.Context, src catalog.Source, v validators, res *contract.FetchResult) error {
	// One of the host's download slots first: the source's timeout is the
	// download's, not the wait's.
	release, err := a.holdUpstream(ctx, src.URL)
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
	resp, err := a.client(src.AllowPrivate).Do(req)
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
	blob, err := a.Blobs.Put(ctx, io.LimitReader(body, limit+1), storage.PutOptions{ContentType: resp.Header.Get("Content-Type")})
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
func (a *Activities) client(allowPrivate bool) *http.Client {
	a.httpOnce.Do(func() {
		a.httpClients = [2]*http.Client{safehttp.NewClient(safehttp.Options{}), safehttp.NewClient(safehttp.Options{AllowPrivate: true})}
	})
	if allowPrivate {
		return a.httpClients[1]
	}
	return a.httpClients[0]
}

// httpClient is the client of the ASN tables (flux.asn_table, a spam catalog's
// asn_table), which one worker-wide cache holds by URL: their allowance is
// TIP's configuration's (flux.asn_table_allow_private), not a catalog's.
func (a *Activities) httpClient() *http.Client { return a.client(a.ASNTableAllowPrivate) }

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
