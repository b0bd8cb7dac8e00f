package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/workflows/contract"
)

// FetchSource downloads a source with a conditional GET (the validators of the last
// loaded content) and streams a changed body into the blob store under its SHA-256.
// Network errors and 5xx answers are returned as errors so Temporal retries them;
// answers that retrying cannot change (404, other 4xx, too large) are results.
func (a *Blacklist) FetchSource(ctx context.Context, src catalog.Source) (contract.FetchResult, error) {
	res := contract.FetchResult{Source: src.Name, StartedAt: time.Now().UTC()}
	if err := a.Store.UpsertSource(ctx, sourceRow(src)); err != nil {
		return res, err
	}
	row, err := a.Store.Source(ctx, src.Name)
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
		ok, next, lastErr, err := a.Store.ClaimFetch(ctx, src.Name, src.RateLimit)
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
	err = a.Downloads.fetch(ctx, src, validators{row.ETag, row.LastModified, row.ContentSHA256}, &res)
	if err != nil && src.RateLimit > 0 {
		if rerr := a.Store.FetchAttemptFailed(ctx, src.Name, err.Error()); rerr != nil {
			return res, errors.Join(err, rerr)
		}
	}
	return res, err
}
