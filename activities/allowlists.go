package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// RefreshAllowlists fetches the catalog's allowlists that are due (conditional GET,
// raw content kept in S3 like a feed's; a local file is read from disk at every
// refresh and reloaded when its content changed) and replaces the entries of those that
// changed, each in one transaction. A list that cannot be fetched or parsed keeps
// its previous entries and records the problem: accuracy is then measured against
// slightly older references, which is better than failing the refresh.
func (a *Activities) RefreshAllowlists(ctx context.Context) ([]contract.AllowlistResult, error) {
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
	out := make([]contract.AllowlistResult, 0, len(lists))
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

func (a *Activities) refreshAllowlist(ctx context.Context, l catalog.Source) (contract.AllowlistResult, error) {
	r := contract.AllowlistResult{Name: l.Name}
	row, err := a.DB.Allowlist(ctx, l.Name)
	if err != nil {
		return r, err
	}
	r.Entries = row.Entries
	if path, ok := catalog.LocalPath(l.URL); ok {
		f, sha, err := openLocal(path, l.SizeLimit)
		if err != nil {
			return r, err
		}
		defer f.Close()
		if sha == row.SHA256 && row.Error == "" && row.LoadedAt != nil {
			r.Status = contract.FetchUnchanged
			return r, a.DB.AllowlistChecked(ctx, l.Name, "")
		}
		return a.loadAllowlist(ctx, l, row, io.LimitReader(f, l.SizeLimit), "", "", sha)
	}
	if row.CheckedAt != nil && row.Error == "" && l.Interval > 0 && time.Since(*row.CheckedAt) < l.Interval*9/10 {
		r.Status = contract.FetchNotDue
		return r, nil
	}
	var f contract.FetchResult
	if err := a.download(ctx, l, validators{row.ETag, row.LastMod, row.SHA256}, &f); err != nil {
		return r, err
	}
	switch f.Status {
	case contract.FetchUnchanged:
		r.Status = contract.FetchUnchanged
		return r, a.DB.AllowlistChecked(ctx, l.Name, "")
	case contract.FetchChanged:
	default: // dead or failed: keep the old entries
		return r, errors.New(f.Error)
	}
	body, _, err := a.Blobs.Open(ctx, f.SHA256)
	if err != nil {
		return r, err
	}
	defer body.Close()
	return a.loadAllowlist(ctx, l, row, body, f.ETag, f.LastModified, f.SHA256)
}

// openLocal opens an allowlist file and hashes it, refusing one over the size
// limit (a file is as untrusted a size as a download).
func openLocal(path string, limit int64) (*os.File, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("allowlist file: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("%s is larger than its size_limit of %d bytes", path, limit)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("allowlist file: %w", err)
	}
	return f, hex.EncodeToString(h.Sum(nil)), nil
}

// loadAllowlist parses body and replaces the list's entries in one transaction,
// keeping only the entries of the kind the list holds (domains or ranges).
func (a *Activities) loadAllowlist(ctx context.Context, l catalog.Source, row storage.AllowlistRow, body io.Reader,
	etag, lastModified, sha string) (contract.AllowlistResult, error) {
	r := contract.AllowlistResult{Name: l.Name, Entries: row.Entries}
	tx, err := a.DB.Pool.Begin(ctx)
	if err != nil {
		return r, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE allow_staging (value text, rank integer, kind text) ON COMMIT DROP`); err != nil {
		return r, err
	}
	n, skipped := 0, 0
	opts := ParserOptions(l)
	opts.KeepPublicSuffix = true // akamaized.net or blogspot.com serve benign pages too
	_, _, parseErr, copyErr := copyParsed(ctx, tx, "allow_staging", []string{"value", "rank", "kind"},
		l.Format, opts, body, func(ind feeds.Indicator) []any {
			kind := storage.AllowlistType(string(ind.Type))
			if kind != row.Type {
				skipped++
				return []any{ind.Value, 0, kind} // deleted below: a nil row would stop the parse
			}
			n++
			if l.Top > 0 && n > l.Top {
				return nil
			}
			rank := n
			if v, err := strconv.Atoi(ind.Ref); err == nil && v > 0 {
				rank = v // a ranking's own rank
			}
			return []any{ind.Value, rank, kind}
		})
	switch {
	case parseErr != nil: // a malformed feed's error quotes its bad lines
		return r, fmt.Errorf("parse %s: %w", l.Name, parseErr)
	case copyErr != nil:
		return r, fmt.Errorf("load %s: %w", l.Name, copyErr)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM allow_staging WHERE kind <> $1`, row.Type); err != nil {
		return r, fmt.Errorf("load %s: %w", l.Name, err)
	}
	r.Skipped = skipped
	if r.Entries, err = storage.ReplaceAllowlist(ctx, tx, l.Name, etag, lastModified, sha); err != nil {
		return r, fmt.Errorf("load %s: %w", l.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return r, fmt.Errorf("load %s: %w", l.Name, err)
	}
	r.Status = contract.RunLoaded
	return r, nil
}
