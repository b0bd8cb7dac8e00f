package storage

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// AllowlistRow is what the database keeps about one allowlist.
type AllowlistRow struct {
	Name      string     `json:"name"`
	URL       string     `json:"url"`
	Format    string     `json:"format"`
	Type      string     `json:"type"` // domain or cidr
	ETag      string     `json:"-"`
	LastMod   string     `json:"-"`
	SHA256    string     `json:"sha256,omitempty"`
	Entries   int        `json:"entries"`
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	LoadedAt  *time.Time `json:"loaded_at,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// AllowlistType maps an indicator type to how an allowlist stores it.
func AllowlistType(indicatorType string) string {
	if indicatorType == "domain" {
		return "domain"
	}
	return "cidr"
}

// SyncAllowlists records the catalog's allowlists and forgets the ones no longer in
// it (with their entries), so a list removed from the catalog stops counting.
func (db *DB) SyncAllowlists(ctx context.Context, lists []AllowlistRow) error {
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		names := make([]string, 0, len(lists))
		for _, l := range lists {
			names = append(names, l.Name)
			if _, err := tx.Exec(ctx, `
				INSERT INTO allowlists (name, url, format, type) VALUES ($1, $2, $3, $4)
				ON CONFLICT (name) DO UPDATE SET url = excluded.url, format = excluded.format, type = excluded.type,
				    etag = CASE WHEN allowlists.url = excluded.url AND allowlists.format = excluded.format THEN allowlists.etag ELSE '' END,
				    last_modified = CASE WHEN allowlists.url = excluded.url AND allowlists.format = excluded.format THEN allowlists.last_modified ELSE '' END,
				    content_sha256 = CASE WHEN allowlists.url = excluded.url AND allowlists.format = excluded.format THEN allowlists.content_sha256 ELSE '' END,
				    checked_at = CASE WHEN allowlists.url = excluded.url AND allowlists.format = excluded.format THEN allowlists.checked_at END`,
				l.Name, l.URL, l.Format, l.Type); err != nil {
				return fmt.Errorf("record allowlist %s: %w", l.Name, err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM allowlists WHERE name <> ALL($1)`, names); err != nil {
			return fmt.Errorf("forget allowlists: %w", err)
		}
		return nil
	})
}

// Allowlists lists the recorded allowlists by name.
func (db *DB) Allowlists(ctx context.Context) ([]AllowlistRow, error) {
	rows, err := db.Pool.Query(ctx, `SELECT name, url, format, type, etag, last_modified, content_sha256, entries,
		checked_at, loaded_at, error FROM allowlists ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("allowlists: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AllowlistRow, error) {
		var a AllowlistRow
		err := r.Scan(&a.Name, &a.URL, &a.Format, &a.Type, &a.ETag, &a.LastMod, &a.SHA256, &a.Entries, &a.CheckedAt, &a.LoadedAt, &a.Error)
		return a, err
	})
}

// AllowlistNets lists the address blocks of every CIDR allowlist (CDN edge
// ranges), each once.
func (db *DB) AllowlistNets(ctx context.Context) ([]netip.Prefix, error) {
	rows, err := db.Pool.Query(ctx, `SELECT DISTINCT net FROM allowlist_nets ORDER BY net`)
	if err != nil {
		return nil, fmt.Errorf("allowlist nets: %w", err)
	}
	nets, err := pgx.CollectRows(rows, pgx.RowTo[netip.Prefix])
	if err != nil {
		return nil, fmt.Errorf("allowlist nets: %w", err)
	}
	return nets, nil
}

// Allowlist reads one allowlist's row, or ErrNotFound.
func (db *DB) Allowlist(ctx context.Context, name string) (AllowlistRow, error) {
	all, err := db.Allowlists(ctx)
	if err != nil {
		return AllowlistRow{}, err
	}
	for _, a := range all {
		if a.Name == name {
			return a, nil
		}
	}
	return AllowlistRow{}, fmt.Errorf("%w: allowlist %s", ErrNotFound, name)
}

// AllowlistChecked records a fetch that found the content unchanged (err empty) or
// failed (err set); the entries stay as they are either way.
func (db *DB) AllowlistChecked(ctx context.Context, name, fetchErr string) error {
	q := `UPDATE allowlists SET checked_at = now(), error = '' WHERE name = $1`
	args := []any{name}
	if fetchErr != "" {
		q = `UPDATE allowlists SET error = $2 WHERE name = $1`
		args = append(args, ErrorText(fetchErr))
	}
	if _, err := db.Pool.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("allowlist %s: %w", name, err)
	}
	return nil
}

// ReplaceAllowlist swaps an allowlist's entries for those in the temporary table
// allow_staging (value text, rank integer) of tx, and records the new validators.
func ReplaceAllowlist(ctx context.Context, tx pgx.Tx, name, etag, lastModified, sha string) (int, error) {
	var typ string
	if err := tx.QueryRow(ctx, `SELECT type FROM allowlists WHERE name = $1 FOR UPDATE`, name).Scan(&typ); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("%w: allowlist %s", ErrNotFound, name)
		}
		return 0, err
	}
	var n int64
	switch typ {
	case "domain":
		if _, err := tx.Exec(ctx, `DELETE FROM allowlist_domains WHERE list = $1`, name); err != nil {
			return 0, err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO allowlist_domains (list, domain, rank)
			SELECT DISTINCT ON (value) $1, value, rank FROM allow_staging ORDER BY value, rank`, name)
		if err != nil {
			return 0, err
		}
		n = tag.RowsAffected()
	default:
		if _, err := tx.Exec(ctx, `DELETE FROM allowlist_nets WHERE list = $1`, name); err != nil {
			return 0, err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO allowlist_nets (list, net)
			SELECT DISTINCT $1, value::cidr FROM allow_staging`, name)
		if err != nil {
			return 0, err
		}
		n = tag.RowsAffected()
	}
	// fresh statistics, or the planner scans a replaced list once per indicator
	if _, err := tx.Exec(ctx, `ANALYZE allowlist_domains`); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `ANALYZE allowlist_nets`); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE allowlists SET etag = $2, last_modified = $3, content_sha256 = $4, entries = $5,
		checked_at = now(), loaded_at = now(), error = '' WHERE name = $1`, name, etag, lastModified, sha, n); err != nil {
		return 0, err
	}
	return int(n), nil
}

// allowlistedSQL is true when the indicator aliased i is on an allowlist: a domain
// whose registrable domain or itself is listed, a URL whose registrable domain or
// host is listed, an address or block overlapping a listed range.
const allowlistedSQL = `(CASE
	WHEN i.type = 'domain' THEN EXISTS (
	    SELECT 1 FROM allowlist_domains d WHERE d.domain IN (i.registrable, i.value))
	WHEN i.type = 'url' THEN EXISTS (
	    SELECT 1 FROM allowlist_domains d
	     WHERE d.domain IN (i.registrable, substring(i.value FROM '^[a-z][a-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#\[\]]+)')))
	WHEN i.type IN ('ipv4', 'ipv6', 'cidr') THEN EXISTS (
	    SELECT 1 FROM allowlist_nets n WHERE n.net && i.value::inet)
	ELSE false END)`

// AllowHit says which allowlist holds an indicator.
type AllowHit struct {
	List  string `json:"list"`
	Entry string `json:"entry"`          // the listed domain or range
	Rank  int    `json:"rank,omitempty"` // a ranking's position
}

// AllowlistHits finds the allowlist entries covering a normalised indicator.
func (db *DB) AllowlistHits(ctx context.Context, typ, value, host, registrable string) ([]AllowHit, error) {
	var rows pgx.Rows
	var err error
	switch typ {
	case "domain", "url":
		rows, err = db.Pool.Query(ctx, `SELECT list, domain, rank FROM allowlist_domains
			WHERE domain IN ($1, $2, $3) ORDER BY list, rank`, value, host, registrable)
	case "ipv4", "ipv6", "cidr":
		rows, err = db.Pool.Query(ctx, `SELECT list, net::text, 0 FROM allowlist_nets
			WHERE net && $1::inet ORDER BY list, net`, value)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("allowlist hits of %s: %w", value, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AllowHit, error) {
		var h AllowHit
		err := r.Scan(&h.List, &h.Entry, &h.Rank)
		return h, err
	})
}
