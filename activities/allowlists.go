package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/storage"
)

// AllowlistResult is what a refresh did with one allowlist.
type AllowlistResult struct {
	Name    string `json:"name"`
	Status  string `json:"status"` // loaded, unchanged, not-due, failed
	Entries int    `json:"entries"`
	Error   string `json:"error,omitempty"`
}

// RefreshAllowlists fetches the catalog's allowlists that are due (conditional GET,
// raw content kept in S3 like a feed's) and replaces the entries of those that
// changed, each in one transaction. A list that cannot be fetched or parsed keeps
// its previous entries and records the problem: accuracy is then measured against
// slightly older references, which is better than failing the refresh.
func (a *Activities) RefreshAllowlists(ctx context.Context) ([]AllowlistResult, error) {
	if a.CatalogPath == "" {
		return nil, nil
	}
	c, err := catalog.Load(a.CatalogPath, KnownFormat)
	if err != nil {
		return nil, fmt.Errorf("source catalog: %w", err)
	}
	var rows []storage.AllowlistRow
	var lists []catalog.Source
	for _, l := range c.Allowlists {
		if l.Enabled {
			lists = append(lists, l)
			rows = append(rows, storage.AllowlistRow{Name: l.Name, URL: l.URL, Format: l.Format, Type: storage.AllowlistType(l.Type)})
		}
	}
	if err := a.DB.SyncAllowlists(ctx, rows); err != nil {
		return nil, err
	}
	out := make([]AllowlistResult, 0, len(lists))
	for _, l := range lists {
		r, err := a.refreshAllowlist(ctx, l)
		if err != nil && ctx.Err() != nil {
			return out, err
		}
		if err != nil {
			r.Status, r.Error = "failed", err.Error()
			if rerr := a.DB.AllowlistChecked(ctx, l.Name, r.Error); rerr != nil {
				return out, rerr
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func (a *Activities) refreshAllowlist(ctx context.Context, l catalog.Source) (AllowlistResult, error) {
	r := AllowlistResult{Name: l.Name}
	row, err := a.DB.Allowlist(ctx, l.Name)
	if err != nil {
		return r, err
	}
	r.Entries = row.Entries
	if row.CheckedAt != nil && row.Error == "" && l.Interval > 0 && time.Since(*row.CheckedAt) < l.Interval*9/10 {
		r.Status = FetchNotDue
		return r, nil
	}
	var f FetchResult
	if err := a.download(ctx, l, validators{row.ETag, row.LastMod, row.SHA256}, &f); err != nil {
		return r, err
	}
	switch f.Status {
	case FetchUnchanged:
		r.Status = FetchUnchanged
		return r, a.DB.AllowlistChecked(ctx, l.Name, "")
	case FetchChanged:
	default: // dead or failed: keep the old entries
		return r, errors.New(f.Error)
	}
	body, _, err := a.Blobs.Open(ctx, f.SHA256)
	if err != nil {
		return r, err
	}
	defer body.Close()
	tx, err := a.DB.Pool.Begin(ctx)
	if err != nil {
		return r, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE allow_staging (value text, rank integer) ON COMMIT DROP`); err != nil {
		return r, err
	}
	n := 0
	opts := ParserOptions(l)
	opts.KeepPublicSuffix = true // akamaized.net or blogspot.com serve benign pages too
	_, _, parseErr, copyErr := copyParsed(ctx, tx, "allow_staging", []string{"value", "rank"},
		l.Format, opts, body, func(ind feeds.Indicator) []any {
			n++
			if l.Top > 0 && n > l.Top {
				return nil
			}
			rank := n
			if v, err := strconv.Atoi(ind.Ref); err == nil && v > 0 {
				rank = v // a ranking's own rank
			}
			return []any{ind.Value, rank}
		})
	switch {
	case parseErr != nil: // a malformed feed's error quotes its bad lines
		return r, fmt.Errorf("parse %s: %w", l.Name, parseErr)
	case copyErr != nil:
		return r, fmt.Errorf("load %s: %w", l.Name, copyErr)
	}
	if r.Entries, err = storage.ReplaceAllowlist(ctx, tx, l.Name, f.ETag, f.LastModified, f.SHA256); err != nil {
		return r, fmt.Errorf("load %s: %w", l.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return r, fmt.Errorf("load %s: %w", l.Name, err)
	}
	r.Status = RunLoaded
	return r, nil
}
