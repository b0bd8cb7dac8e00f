package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// The reads of `tip serve api` beyond its tokens: what /v1/sources adds to a
// source's health (SourcesHealth), and the version of what the exports hold,
// behind their ETag and Last-Modified.

// SourceState is what a source's health line does not hold: its last success
// and its last attempt, and the weight its listings count with in scores.
type SourceState struct {
	Name        string
	LastSuccess *time.Time // the last run that fetched the feed; nil: never
	// LastAttempt is when TIP last sent the feed's host a request, and
	// LastAttemptError what went wrong with it ("" when it went well).
	LastAttempt      *time.Time
	LastAttemptError string
	// Weight is what scores use: the computed weight, or the prior until
	// metrics exist (MetricsAt nil).
	Weight    float64
	MetricsAt *time.Time
}

// SourceStates lists every known source's state, by name.
func (db *DB) SourceStates(ctx context.Context) ([]SourceState, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT s.name, s.last_success, s.last_attempt, s.last_attempt_error, coalesce(m.weight, s.prior), m.computed_at
		  FROM sources s LEFT JOIN source_metrics m ON m.source = s.name
		 ORDER BY s.name`)
	if err != nil {
		return nil, fmt.Errorf("source states: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SourceState, error) {
		var s SourceState
		return s, r.Scan(&s.Name, &s.LastSuccess, &s.LastAttempt, &s.LastAttemptError, &s.Weight, &s.MetricsAt)
	})
	if err != nil {
		return nil, fmt.Errorf("source states: %w", err)
	}
	return out, nil
}

// ExportVersion names what the exports hold now.
type ExportVersion struct {
	// Key changes with every listing change recorded (a load, a weights
	// change, an override or allowlist change: listing_changes), also one
	// committed after a later-numbered one, and with every analyst override
	// that expires.
	Key string
	// Seq is the latest listing change it holds.
	Seq int64
	// Modified is when an API replica first saw this version, to the second:
	// later than every older version's, so If-Modified-Since never hides a
	// change.
	Modified time.Time
}

// exportVersionLock serialises the recording of new versions ("tipexpv").
const exportVersionLock int64 = 0x7469706578707600

// ExportVersion reads the version the exports are at, recording it with its
// time when no replica has yet. Versions older than 30 days are forgotten.
func (db *DB) ExportVersion(ctx context.Context) (ExportVersion, error) {
	var v ExportVersion
	var count, expired int64
	var sum string
	err := db.pool.QueryRow(ctx, `
		SELECT coalesce(max(seq), 0), count(*), coalesce(sum(seq), 0)::text,
		       (SELECT count(*) FROM overrides WHERE removed_at IS NULL AND expires_at <= now())
		  FROM listing_changes`).Scan(&v.Seq, &count, &sum, &expired)
	if err != nil {
		return v, fmt.Errorf("export version: %w", err)
	}
	// The sum tells a late commit of an earlier number apart from a newer
	// one pruning an old change: both keep the count.
	v.Key = strconv.FormatInt(v.Seq, 10) + "." + strconv.FormatInt(count, 10) + "." + sum + "." + strconv.FormatInt(expired, 10)
	err = db.pool.QueryRow(ctx, `SELECT modified FROM api_export_versions WHERE key = $1`, v.Key).Scan(&v.Modified)
	if err == nil {
		v.Modified = v.Modified.UTC()
		return v, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("export version: %w", err)
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, exportVersionLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM api_export_versions WHERE modified < now() - interval '30 days'`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `
			WITH ins AS (
			    INSERT INTO api_export_versions (key, seq, modified)
			    SELECT $1, $2, greatest(date_trunc('second', now()), (SELECT max(modified) + interval '1 second' FROM api_export_versions))
			    ON CONFLICT (key) DO NOTHING RETURNING modified)
			SELECT modified FROM ins UNION ALL SELECT modified FROM api_export_versions WHERE key = $1`, v.Key, v.Seq).Scan(&v.Modified)
	})
	if err != nil {
		return v, fmt.Errorf("export version: record %s: %w", v.Key, err)
	}
	v.Modified = v.Modified.UTC()
	return v, nil
}
