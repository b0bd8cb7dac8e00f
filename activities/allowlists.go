package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// RefreshAllowlists fetches the catalog's allowlists that are due (conditional GET,
// raw content kept in S3 like a feed's; a local file is read from disk at every
// refresh and reloaded when its content changed) and replaces the entries of those that
// changed, each in one transaction. A list that cannot be fetched or parsed keeps
// its previous entries and records the problem: accuracy is then measured against
// slightly older references, which is better than failing the refresh.
func (a *Blacklist) RefreshAllowlists(ctx context.Context) ([]contract.AllowlistResult, error) {
	if a.Catalog == "" {
		return nil, nil
	}
	c, err := catalog.Load(a.Catalog, KnownFormat)
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
	if err := a.Store.SyncAllowlists(ctx, rows); err != nil {
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
			if rerr := a.Store.AllowlistChecked(ctx, l.Name, r.Error); rerr != nil {
				return out, rerr
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func (a *Blacklist) refreshAllowlist(ctx context.Context, l catalog.Source) (contract.AllowlistResult, error) {
	r := contract.AllowlistResult{Name: l.Name}
	row, err := a.Store.Allowlist(ctx, l.Name)
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
			return r, a.Store.AllowlistChecked(ctx, l.Name, "")
		}
		return a.loadAllowlist(ctx, l, row, io.LimitReader(f, l.SizeLimit), "", "", sha)
	}
	if row.CheckedAt != nil && row.Error == "" && l.Interval > 0 && time.Since(*row.CheckedAt) < l.Interval*9/10 {
		r.Status = contract.FetchNotDue
		return r, nil
	}
	var f contract.FetchResult
	if err := a.Downloads.fetch(ctx, l, validators{row.ETag, row.LastMod, row.SHA256}, &f); err != nil {
		return r, err
	}
	switch f.Status {
	case contract.FetchUnchanged:
		r.Status = contract.FetchUnchanged
		return r, a.Store.AllowlistChecked(ctx, l.Name, "")
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
func (a *Blacklist) loadAllowlist(ctx context.Context, l catalog.Source, row storage.AllowlistRow, body io.Reader,
	etag, lastModified, sha string) (contract.AllowlistResult, error) {
	r := contract.AllowlistResult{Name: l.Name, Entries: row.Entries}
	opts := ParserOptions(l)
	opts.KeepPublicSuffix = true // akamaized.net or blogspot.com serve benign pages too
	entries, skipped, err := a.Store.LoadAllowlist(ctx, l.Name, storage.AllowlistContent{Format: l.Format, Options: opts, Body: body,
		Type: row.Type, Top: l.Top, Validators: storage.Validators{ETag: etag, LastModified: lastModified, SHA256: sha},
		Progress: func(rows int) { heartbeat(ctx, rows) }})
	if err != nil {
		return r, err
	}
	r.Entries, r.Skipped, r.Status = entries, skipped, contract.RunLoaded
	return r, nil
}
