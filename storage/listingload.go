package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/workflows/contract"
)

// Validators identify the content a source last loaded: a conditional GET
// sends them, and content with the same SHA-256 is not loaded again.
type Validators struct {
	ETag, LastModified, SHA256 string
}

// SourceRun is one run of a source, as source_runs records it under its run
// key: what the fetch got and what the load made of it. A run key is recorded
// once: a retry of a recorded run changes nothing.
type SourceRun struct {
	RunKey string
	Fetch  contract.FetchResult // when the run started, the HTTP status, the bytes and blob fetched
	Result contract.LoadResult  // the run's status, counts and error
}

// validators are the validators of the content the run fetched.
func (r SourceRun) validators() Validators {
	return Validators{ETag: r.Fetch.ETag, LastModified: r.Fetch.LastModified, SHA256: r.Fetch.SHA256}
}

// ListingLoad is a load of a blacklist source's list in progress: a
// transaction whose staging table (type, value, registrable) receives the new
// list (CopyParsed), is merged into the listings (Merge), and is committed with
// the source's validators and the run's record (Commit). Nothing of it is seen
// by others before Commit; Rollback abandons it.
type ListingLoad struct {
	tx     pgx.Tx
	source string
	// withContext: some copied row carries context (a category, malware, port,
	// reference or listing time), which Merge then writes to the listings the
	// source still lists where it changed.
	withContext bool
}

// BeginListingLoad starts a load of source's list.
func (db *DB) BeginListingLoad(ctx context.Context, source string) (*ListingLoad, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	l := &ListingLoad{tx: tx, source: source}
	if err := l.createStaging(ctx); err != nil {
		l.Rollback(ctx)
		return nil, fmt.Errorf("staging: %w", err)
	}
	return l, nil
}

func (l *ListingLoad) createStaging(ctx context.Context) error {
	_, err := l.tx.Exec(ctx, `CREATE TEMP TABLE staging (type text, value text, registrable text,
		listed_at timestamptz, category text, malware text, port text, ref text) ON COMMIT DROP`)
	return err
}

// CopyParsed parses body in format and copies every indicator into the staging
// table, streaming: memory stays constant whatever the feed's size. progress,
// unless nil, is called every 100,000 rows with the rows copied so far. Parse
// errors and copy errors come back separately: the first may be the feed's
// fault, the second is the database's.
func (l *ListingLoad) CopyParsed(ctx context.Context, format string, opts feeds.Options, body io.Reader,
	progress func(rows int)) (copied int64, stats feeds.Stats, parseErr, copyErr error) {
	return copyParsed(ctx, l.tx, "staging", stagingColumns, format, opts, body, func(ind feeds.Indicator) []any {
		if ind.Category == "" && ind.Malware == "" && ind.Port == "" && ind.Ref == "" && ind.Listed.IsZero() {
			return []any{string(ind.Type), ind.Value, ind.Registrable, nil, nil, nil, nil, nil}
		}
		l.withContext = true
		var listed any
		if !ind.Listed.IsZero() {
			listed = ind.Listed
		}
		return []any{string(ind.Type), ind.Value, ind.Registrable, listed, orNull(ind.Category), orNull(ind.Malware), orNull(ind.Port), orNull(ind.Ref)}
	}, progress)
}

// stagingColumns are the staging table's columns, as CopyParsed fills them.
var stagingColumns = []string{"type", "value", "registrable", "listed_at", "category", "malware", "port", "ref"}

// orNull is s, or NULL when empty: a feed that does not say leaves a NULL.
func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Merged is what a merge changed: Entries distinct indicators in the new list,
// Added listings that started (new or re-listed), Removed listings that stopped,
// Updated listings that go on with new context.
type Merged struct {
	Entries, Added, Removed int
	// Updated counts listings still listed whose context changed.
	Updated int
}

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// Merge folds the staging table into indicators and the source's listings in
// one set-based statement sized for feeds of millions of lines, writing only
// what changed: new indicators, listings that start being active (new or
// re-listed) and listings that stop (their last_seen becomes the source's
// previous successful load). A listing still listed is not touched: while
// active, its last_seen is the source's last_success, which Commit sets.
func (l *ListingLoad) Merge(ctx context.Context) (Merged, error) {
	tx := l.tx
	// temporary tables are never analysed automatically; without statistics the
	// planner takes a million rows for a few
	if _, err := tx.Exec(ctx, `ANALYZE staging`); err != nil {
		return Merged{}, err
	}
	// The row lock makes loads of one source take turns; last_success is when the
	// source last saw what it listed until now.
	var sourceID int32
	var lastSuccess *time.Time
	err := tx.QueryRow(ctx, `SELECT id, last_success FROM sources WHERE name = $1 FOR NO KEY UPDATE`, l.source).Scan(&sourceID, &lastSuccess)
	if errors.Is(err, pgx.ErrNoRows) {
		return Merged{}, fmt.Errorf("source %s is not recorded", l.source)
	}
	if err != nil {
		return Merged{}, err
	}
	// A million rows sort and hash in memory rather than in temporary files.
	if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '256MB'`); err != nil {
		return Merged{}, err
	}
	// The rows this merge changes carry its change number (listing_changes).
	var seq int64
	if err := tx.QueryRow(ctx, `SELECT nextval('listing_change_seq')`).Scan(&seq); err != nil {
		return Merged{}, err
	}
	// The feed, deduplicated, carries the id of each indicator that existed before
	// the statement (its snapshot). Those are listed unless they are already; the
	// others are inserted, about in index order, and listed with no conflict check:
	// no source lists them yet. (Sorted by value first: a feed has one or two
	// types, and a sort whose first key is all ties takes several times longer.)
	// An indicator that another load inserted and committed meanwhile makes the
	// insert fail (then it runs again, skipping conflicts) or is skipped; the
	// counts tell, and a second statement, which sees it, lists it.
	var entries, known, fresh, added, removed, updated int
	mergeOnce := func(onConflict string) error {
		return tx.QueryRow(ctx, `
		WITH feed AS MATERIALIZED (
		    SELECT DISTINCT ON (s.value, s.type) s.type, s.value, coalesce(s.registrable, '') AS registrable, i.id,
		           s.listed_at, s.category, s.malware, s.port, s.ref
		      FROM staging s LEFT JOIN indicators i ON i.type = s.type AND i.value = s.value
		     ORDER BY s.value, s.type),
		known AS (SELECT id, listed_at, category, malware, port, ref FROM feed WHERE id IS NOT NULL),
		fresh AS (
		    INSERT INTO indicators (type, value, registrable, first_seen)
		    SELECT type, value, registrable, now() FROM feed WHERE id IS NULL
		    `+onConflict+`
		    RETURNING id, type, value),
		listed_fresh AS (
		    INSERT INTO source_listings (source_id, indicator_id, first_seen, changed_seq, listed_at, category, malware, port, ref)
		    SELECT $1, fr.id, now(), $3, f.listed_at, f.category, f.malware, f.port, f.ref
		      FROM fresh fr JOIN feed f ON f.type = fr.type AND f.value = fr.value
		    RETURNING 1),
		listed_known AS (
		    INSERT INTO source_listings (source_id, indicator_id, first_seen, changed_seq, listed_at, category, malware, port, ref)
		    SELECT $1, k.id, now(), $3, k.listed_at, k.category, k.malware, k.port, k.ref FROM known k
		     WHERE NOT EXISTS (SELECT FROM source_listings l WHERE l.indicator_id = k.id AND l.source_id = $1 AND l.active)
		    ON CONFLICT (indicator_id, source_id) DO UPDATE SET active = true, last_seen = NULL, removed_at = NULL, changed_seq = $3,
		        listed_at = excluded.listed_at, category = excluded.category, malware = excluded.malware, port = excluded.port, ref = excluded.ref
		    RETURNING 1),
		recontext AS (
		    -- a listing still listed whose context the feed now gives otherwise
		    -- (only when the feed gives some: $4)
		    UPDATE source_listings l SET listed_at = k.listed_at, category = k.category, malware = k.malware, port = k.port, ref = k.ref,
		           changed_seq = $3
		      FROM known k
		     WHERE $4 AND l.indicator_id = k.id AND l.source_id = $1 AND l.active
		       AND (l.listed_at, l.category, l.malware, l.port, l.ref) IS DISTINCT FROM (k.listed_at, k.category, k.malware, k.port, k.ref)
		    RETURNING 1),
		removed AS (
		    UPDATE source_listings l SET active = false, last_seen = coalesce($2, now()), removed_at = now(), changed_seq = $3
		     WHERE l.source_id = $1 AND l.active AND NOT EXISTS (SELECT FROM known k WHERE k.id = l.indicator_id)
		    RETURNING 1)
		SELECT (SELECT count(*) FROM feed), (SELECT count(*) FROM known), (SELECT count(*) FROM listed_fresh),
		       (SELECT count(*) FROM listed_known), (SELECT count(*) FROM removed), (SELECT count(*) FROM recontext)`,
			sourceID, lastSuccess, seq, l.withContext).
			Scan(&entries, &known, &fresh, &added, &removed, &updated)
	}
	if _, err := tx.Exec(ctx, `SAVEPOINT merge`); err != nil {
		return Merged{}, err
	}
	if err := mergeOnce(""); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != uniqueViolation || pgErr.TableName != "indicators" {
			return Merged{}, err
		}
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT merge`); err != nil {
			return Merged{}, err
		}
		if err := mergeOnce(`ON CONFLICT (type, value) DO NOTHING`); err != nil {
			return Merged{}, err
		}
	}
	added += fresh
	if known+fresh < entries {
		tag, err := tx.Exec(ctx, `
			INSERT INTO source_listings (source_id, indicator_id, first_seen, changed_seq, listed_at, category, malware, port, ref)
			SELECT $1, i.id, now(), $2, f.listed_at, f.category, f.malware, f.port, f.ref
			  FROM (SELECT DISTINCT ON (value, type) * FROM staging ORDER BY value, type) f
			  JOIN indicators i ON i.type = f.type AND i.value = f.value
			 WHERE NOT EXISTS (SELECT FROM source_listings l WHERE l.indicator_id = i.id AND l.source_id = $1)`, sourceID, seq)
		if err != nil {
			return Merged{}, err
		}
		added += int(tag.RowsAffected())
	}
	if added > 0 || removed > 0 || updated > 0 {
		if err := recordListingChange(ctx, tx, seq, ChangeListings, sourceID); err != nil {
			return Merged{}, err
		}
	}
	return Merged{Entries: entries, Added: added, Removed: removed, Updated: updated}, nil
}

// Commit ends the load: the run's fetch validators become the source's (its
// last success is now, its failures none), the run is recorded, and the
// merged listings become visible with them.
func (l *ListingLoad) Commit(ctx context.Context, run SourceRun) error {
	if err := l.record(ctx, run); err != nil {
		return err
	}
	if err := l.tx.Commit(ctx); err != nil {
		return fmt.Errorf("load %s: commit: %w", l.source, err)
	}
	return nil
}

// record writes the validators and the run in the load's transaction.
func (l *ListingLoad) record(ctx context.Context, run SourceRun) error {
	if err := setValidators(ctx, l.tx, l.source, run.validators()); err != nil {
		return err
	}
	return insertRun(ctx, l.tx, l.source, run)
}

// Rollback abandons the load, if it is not over; deferred, it ends a load that
// did not commit. It runs even when ctx is cancelled.
func (l *ListingLoad) Rollback(ctx context.Context) {
	_ = l.tx.Rollback(context.WithoutCancel(ctx))
}

// RecordedRun returns the outcome recorded for a run of source under runKey,
// and whether there is one. Its error names the load it was for.
func (db *DB) RecordedRun(ctx context.Context, source, runKey string) (contract.LoadResult, bool, error) {
	r := contract.LoadResult{Source: source}
	err := db.pool.QueryRow(ctx, `SELECT status, entries, added, removed, bad_lines, dropped, error
		FROM source_runs WHERE source = $1 AND run_key = $2`, source, runKey).
		Scan(&r.Status, &r.Entries, &r.Added, &r.Removed, &r.Bad, &r.Dropped, &r.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("load %s: read run: %w", source, err)
	}
	return r, true, nil
}

// RecordRunOutcome records a run of src that loads nothing, in one
// transaction: the source's row (UpsertSource), its health and the run. An
// unchanged run is a success (everything listed is still listed, and seen
// now); any other status (dead, failed, malformed) one more consecutive
// failure.
func (db *DB) RecordRunOutcome(ctx context.Context, src SourceRow, run SourceRun) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := upsertSource(ctx, tx, src); err != nil {
			return err
		}
		q := `UPDATE sources SET consecutive_failures = consecutive_failures + 1 WHERE name = $1`
		if run.Result.Status == contract.RunUnchanged {
			q = `UPDATE sources SET last_success = now(), consecutive_failures = 0 WHERE name = $1`
		}
		if _, err := tx.Exec(ctx, q, src.Name); err != nil {
			return err
		}
		return insertRun(ctx, tx, src.Name, run)
	})
}

// insertRun records a run of source, unless its run key is recorded already.
func insertRun(ctx context.Context, tx pgx.Tx, source string, run SourceRun) error {
	f, res := run.Fetch, run.Result
	_, err := tx.Exec(ctx, `
		INSERT INTO source_runs (source, run_key, started_at, status, http_status, bytes, blob_sha256,
		                         entries, added, removed, bad_lines, dropped, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (source, run_key) DO NOTHING`,
		source, run.RunKey, f.StartedAt, res.Status, f.HTTPStatus, f.Bytes, f.SHA256,
		res.Entries, res.Added, res.Removed, res.Bad, res.Dropped, ErrorText(res.Error))
	if err != nil {
		return fmt.Errorf("record run of %s: %w", source, err)
	}
	return nil
}
