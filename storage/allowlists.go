package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tip-project/tip/feeds"
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
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
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
		tag, err := tx.Exec(ctx, `DELETE FROM allowlists WHERE name <> ALL($1)`, names)
		if err != nil {
			return fmt.Errorf("forget allowlists: %w", err)
		}
		if tag.RowsAffected() > 0 {
			return recordListingChange(ctx, tx, 0, ChangeSuppressions, 0)
		}
		return nil
	})
}

// Allowlists lists the recorded allowlists by name.
func (db *DB) Allowlists(ctx context.Context) ([]AllowlistRow, error) {
	rows, err := db.pool.Query(ctx, `SELECT name, url, format, type, etag, last_modified, content_sha256, entries,
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
	rows, err := db.pool.Query(ctx, `SELECT DISTINCT net FROM allowlist_nets ORDER BY net`)
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
	if _, err := db.pool.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("allowlist %s: %w", name, err)
	}
	return nil
}

// AllowlistContent is new content of an allowlist to load: the feed to parse,
// what of it to keep, and the validators it was fetched with.
type AllowlistContent struct {
	Format  string
	Options feeds.Options
	Body    io.Reader
	// Type is the kind of entries the list holds (AllowlistType: domain or
	// cidr); the feed's entries of the other kind are skipped.
	Type string
	// Top keeps the first Top entries of that kind; 0 keeps them all.
	Top int
	Validators
	// Progress, unless nil, is called every 100,000 entries parsed with their count.
	Progress func(rows int)
}

// LoadAllowlist replaces the entries of allowlist name by those parsed from c,
// and records c's validators, in one transaction: a feed that does not parse
// leaves the list as it was. An entry's rank is its position among the entries
// kept, or the rank the feed gives it (a ranking's). It returns how many
// entries the list holds now and how many of the other kind were skipped.
func (db *DB) LoadAllowlist(ctx context.Context, name string, c AllowlistContent) (entries, skipped int, err error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE allow_staging (value text, rank integer, kind text) ON COMMIT DROP`); err != nil {
		return 0, 0, err
	}
	n := 0
	_, _, parseErr, copyErr := copyParsed(ctx, tx, "allow_staging", []string{"value", "rank", "kind"},
		c.Format, c.Options, c.Body, func(ind feeds.Indicator) []any {
			kind := AllowlistType(string(ind.Type))
			if kind != c.Type {
				skipped++
				return []any{ind.Value, 0, kind} // deleted below: a nil row would stop the parse
			}
			n++
			if c.Top > 0 && n > c.Top {
				return nil
			}
			rank := n
			if v, err := strconv.Atoi(ind.Ref); err == nil && v > 0 {
				rank = v // a ranking's own rank
			}
			return []any{ind.Value, rank, kind}
		}, c.Progress)
	switch {
	case parseErr != nil: // a malformed feed's error quotes its bad lines
		return 0, 0, fmt.Errorf("parse %s: %w", name, parseErr)
	case copyErr != nil:
		return 0, 0, fmt.Errorf("load %s: %w", name, copyErr)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM allow_staging WHERE kind <> $1`, c.Type); err != nil {
		return 0, 0, fmt.Errorf("load %s: %w", name, err)
	}
	if entries, err = replaceAllowlist(ctx, tx, name, c.Validators); err != nil {
		return 0, 0, fmt.Errorf("load %s: %w", name, err)
	}
	if err := recordListingChange(ctx, tx, 0, ChangeSuppressions, 0); err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("load %s: %w", name, err)
	}
	return entries, skipped, nil
}

// replaceAllowlist swaps an allowlist's entries for those in the temporary table
// allow_staging (value text, rank integer) of tx, and records the new validators.
func replaceAllowlist(ctx context.Context, tx pgx.Tx, name string, v Validators) (int, error) {
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
		checked_at = now(), loaded_at = now(), error = '' WHERE name = $1`, name, v.ETag, v.LastModified, v.SHA256, n); err != nil {
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
		rows, err = db.pool.Query(ctx, `SELECT list, domain, rank FROM allowlist_domains
			WHERE domain IN ($1, $2, $3) ORDER BY list, rank`, value, host, registrable)
	case "ipv4", "ipv6", "cidr":
		rows, err = db.pool.Query(ctx, `SELECT list, net::text, 0 FROM allowlist_nets
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
