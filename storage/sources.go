package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SourceRow is what the database keeps about a catalog source between runs.
type SourceRow struct {
	Name, URL, Format, Type string
	Prior                   float64
	Enabled                 bool
	// What the source lists and the terms it shares it under (catalog.Source's
	// Category, Licence and TLP; an empty TLP is catalog.DefaultTLP).
	Category, Licence, TLP string
	// Validators of the content last loaded: a conditional GET sends them.
	ETag, LastModified, ContentSHA256 string
	LastSuccess                       time.Time
	ConsecutiveFailures               int
}

// UpsertSource records a catalog source, keeping its validators and health.
func (db *DB) UpsertSource(ctx context.Context, s SourceRow) error {
	return upsertSource(ctx, db.pool, s)
}

// execer runs a statement: the pool, or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// upsertSource is UpsertSource on the pool or in a transaction.
func upsertSource(ctx context.Context, q execer, s SourceRow) error {
	_, err := q.Exec(ctx, `
		INSERT INTO sources (name, url, format, type, prior, enabled, category, licence, tlp)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce(nullif($9, ''), 'clear'))
		ON CONFLICT (name) DO UPDATE SET
		    url = excluded.url, format = excluded.format, type = excluded.type,
		    prior = excluded.prior, enabled = excluded.enabled, updated_at = now(),
		    category = excluded.category, licence = excluded.licence, tlp = excluded.tlp,
		    -- a source pointed elsewhere must not send the old validators
		    etag = CASE WHEN sources.url = excluded.url THEN sources.etag ELSE '' END,
		    last_modified = CASE WHEN sources.url = excluded.url THEN sources.last_modified ELSE '' END`,
		s.Name, s.URL, s.Format, s.Type, s.Prior, s.Enabled, s.Category, s.Licence, s.TLP)
	if err != nil {
		return fmt.Errorf("upsert source %s: %w", s.Name, err)
	}
	return nil
}

// Source reads a source's row, or ErrNotFound.
func (db *DB) Source(ctx context.Context, name string) (SourceRow, error) {
	var s SourceRow
	var last *time.Time
	err := db.pool.QueryRow(ctx, `
		SELECT name, url, format, type, prior, enabled, category, licence, tlp, etag, last_modified, content_sha256, last_success, consecutive_failures
		  FROM sources WHERE name = $1`, name).
		Scan(&s.Name, &s.URL, &s.Format, &s.Type, &s.Prior, &s.Enabled, &s.Category, &s.Licence, &s.TLP, &s.ETag, &s.LastModified, &s.ContentSHA256, &last, &s.ConsecutiveFailures)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("%w: source %s", ErrNotFound, name)
	}
	if err != nil {
		return s, fmt.Errorf("read source %s: %w", name, err)
	}
	if last != nil {
		s.LastSuccess = *last
	}
	return s, nil
}

// setValidators stores the validators of content that was loaded, so the next
// fetch can ask for it conditionally, and counts the load as the source's last
// success. It runs in the transaction that loads the content, so validators
// never run ahead of the data.
func setValidators(ctx context.Context, tx pgx.Tx, name string, v Validators) error {
	_, err := tx.Exec(ctx, `UPDATE sources SET etag = $2, last_modified = $3, content_sha256 = $4,
		last_success = now(), consecutive_failures = 0 WHERE name = $1`, name, v.ETag, v.LastModified, v.SHA256)
	if err != nil {
		return fmt.Errorf("set validators of %s: %w", name, err)
	}
	return nil
}

// ClaimFetch records that a request for a source is about to be sent, unless the
// source's rate limit (the least time between two requests) forbids one now. It is
// one atomic statement, so two workers never both get the claim. Refused, it says
// when the next request is allowed and why the last attempt failed, if it did.
func (db *DB) ClaimFetch(ctx context.Context, name string, minGap time.Duration) (ok bool, next time.Time, lastErr string, err error) {
	tag, err := db.pool.Exec(ctx, `UPDATE sources SET last_attempt = now(), last_attempt_error = ''
		WHERE name = $1 AND (last_attempt IS NULL OR last_attempt <= now() - $2::interval)`, name, minGap)
	if err != nil {
		return false, next, "", fmt.Errorf("claim fetch of %s: %w", name, err)
	}
	if tag.RowsAffected() == 1 {
		return true, next, "", nil
	}
	var last time.Time
	if err := db.pool.QueryRow(ctx, `SELECT last_attempt, last_attempt_error FROM sources WHERE name = $1`, name).Scan(&last, &lastErr); err != nil {
		return false, next, "", fmt.Errorf("claim fetch of %s: %w", name, err)
	}
	return false, last.Add(minGap), lastErr, nil
}

// FetchAttemptFailed records why the last request for a source failed.
func (db *DB) FetchAttemptFailed(ctx context.Context, name, why string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE sources SET last_attempt_error = $2 WHERE name = $1`, name, ErrorText(why)); err != nil {
		return fmt.Errorf("record fetch error of %s: %w", name, err)
	}
	return nil
}
