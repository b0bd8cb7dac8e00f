package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/sdk/activity"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/textcap"
	"github.com/tip-project/tip/workflows/contract"
)

// ParserOptions turns a catalog source's parser settings into feeds.Options.
func ParserOptions(s catalog.Source) feeds.Options {
	o := feeds.Options{CommentPrefix: s.Parser.Comment, Separator: s.Parser.Separator, Header: s.Parser.Header,
		Type: feeds.Type(s.Type), MaxBadShare: s.Parser.MaxBad, AllowUnterminated: s.Parser.AllowUnterminated}
	if s.Parser.Column > 0 {
		o.Column = s.Parser.Column - 1 // the catalog counts columns from 1
	}
	return o
}

// LoadSource parses the fetched content straight from S3 into a staging table with
// COPY and merges it into the listings in one transaction, together with the new
// validators and the run's record. Non-loading outcomes (unchanged, dead, failed)
// are recorded too. A retry of a committed load returns the recorded result. The
// result's error text and the error returned are capped at
// storage.MaxErrorText: both may quote the feed, and both travel in Temporal
// payloads (refused above 2 MB) into every refresh's summary.
func (a *Activities) LoadSource(ctx context.Context, in contract.LoadInput) (contract.LoadResult, error) {
	res, err := a.loadSource(ctx, in)
	res.Error = storage.ErrorText(res.Error)
	return res, textcap.Error(err, storage.MaxErrorText)
}

func (a *Activities) loadSource(ctx context.Context, in contract.LoadInput) (contract.LoadResult, error) {
	res := contract.LoadResult{Source: in.Source.Name}
	if in.Fetch.Status == contract.FetchNotDue || in.Fetch.Status == contract.FetchRateLimited {
		res.Status, res.Error = contract.RunSkipped, in.Fetch.Error
		return res, nil
	}
	if prev, ok, err := a.recordedRun(ctx, in); err != nil || ok {
		return prev, err
	}
	switch in.Fetch.Status {
	case contract.FetchUnchanged:
		res.Status = contract.RunUnchanged
		return res, a.recordOutcome(ctx, in, res, false)
	case contract.FetchDead:
		res.Status, res.Error = contract.RunDead, in.Fetch.Error
		return res, a.recordOutcome(ctx, in, res, true)
	case contract.FetchFailed:
		res.Status, res.Error = contract.RunFailed, in.Fetch.Error
		return res, a.recordOutcome(ctx, in, res, true)
	case contract.FetchChanged:
	default:
		return res, fmt.Errorf("load %s: unknown fetch status %q", in.Source.Name, in.Fetch.Status)
	}

	body, _, err := a.Blobs.Open(ctx, in.Fetch.SHA256)
	if err != nil {
		return res, fmt.Errorf("load %s: %w", in.Source.Name, err)
	}
	defer body.Close()

	// Heartbeat on a timer for the whole load, the merge included (one long
	// statement): a worker that died is noticed within the heartbeat timeout.
	stopBeat := heartbeatEvery(ctx, 5*time.Second)
	defer stopBeat()

	tx, err := a.DB.Pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("load %s: %w", in.Source.Name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE staging (type text, value text, registrable text) ON COMMIT DROP`); err != nil {
		return res, fmt.Errorf("load %s: staging: %w", in.Source.Name, err)
	}

	copied, stats, parseErr, copyErr := copyParsed(ctx, tx, "staging", []string{"type", "value", "registrable"},
		in.Source.Format, ParserOptions(in.Source), body, func(ind feeds.Indicator) []any {
			return []any{string(ind.Type), ind.Value, ind.Registrable}
		})
	res.Entries, res.Bad = int(copied), stats.Bad
	for _, n := range stats.Dropped {
		res.Dropped += n
	}
	switch {
	case parseErr != nil && (errors.Is(parseErr, feeds.ErrMalformed) || errors.Is(parseErr, feeds.ErrUnknownFormat)):
		// The error names the count of bad lines and quotes their samples.
		res.Status, res.Error = contract.RunMalformed, parseErr.Error()
		tx.Rollback(ctx) //nolint:errcheck
		return res, a.recordOutcome(ctx, in, res, true)
	case copyErr != nil:
		return res, fmt.Errorf("load %s: copy: %w", in.Source.Name, copyErr)
	case parseErr != nil:
		return res, fmt.Errorf("load %s: parse: %w", in.Source.Name, parseErr)
	}
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, res.Entries)
	}

	if err := merge(ctx, tx, in.Source.Name, &res); err != nil {
		return res, fmt.Errorf("load %s: merge: %w", in.Source.Name, err)
	}
	res.Status = contract.RunLoaded
	if err := storage.SetValidators(ctx, tx, in.Source.Name, in.Fetch.ETag, in.Fetch.LastModified, in.Fetch.SHA256); err != nil {
		return res, err
	}
	if err := insertRun(ctx, tx, in, res); err != nil {
		return res, err
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("load %s: commit: %w", in.Source.Name, err)
	}
	return res, nil
}

// merge folds the staging table into indicators and this source's listings in
// one set-based statement sized for feeds of millions of lines, writing only what
// changed: new indicators, listings that start being active (new or re-listed)
// and listings that stop (their last_seen becomes the source's previous
// successful load). A listing still listed is not touched: while active, its
// last_seen is the source's last_success, which the caller sets in the same
// transaction (storage.SetValidators).
func merge(ctx context.Context, tx pgx.Tx, source string, res *contract.LoadResult) error {
	// temporary tables are never analysed automatically; without statistics the
	// planner takes a million rows for a few
	if _, err := tx.Exec(ctx, `ANALYZE staging`); err != nil {
		return err
	}
	// The row lock makes loads of one source take turns; last_success is when the
	// source last saw what it listed until now.
	var sourceID int32
	var lastSuccess *time.Time
	err := tx.QueryRow(ctx, `SELECT id, last_success FROM sources WHERE name = $1 FOR NO KEY UPDATE`, source).Scan(&sourceID, &lastSuccess)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("source %s is not recorded", source)
	}
	if err != nil {
		return err
	}
	// A million rows sort and hash in memory rather than in temporary files.
	if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '256MB'`); err != nil {
		return err
	}
	// The feed, deduplicated, carries the id of each indicator that existed before
	// the statement (its snapshot). Those are listed unless they are already; the
	// others are inserted, about in index order, and listed with no conflict check:
	// no source lists them yet. (Sorted by value first: a feed has one or two
	// types, and a sort whose first key is all ties takes several times longer.)
	// An indicator that another load inserted and committed meanwhile makes the
	// insert fail (then it runs again, skipping conflicts) or is skipped; the
	// counts tell, and a second statement, which sees it, lists it.
	var entries, known, fresh, added, removed int
	mergeOnce := func(onConflict string) error {
		return tx.QueryRow(ctx, `
		WITH feed AS MATERIALIZED (
		    SELECT DISTINCT ON (s.value, s.type) s.type, s.value, coalesce(s.registrable, '') AS registrable, i.id
		      FROM staging s LEFT JOIN indicators i ON i.type = s.type AND i.value = s.value
		     ORDER BY s.value, s.type),
		known AS (SELECT id FROM feed WHERE id IS NOT NULL),
		fresh AS (
		    INSERT INTO indicators (type, value, registrable, first_seen)
		    SELECT type, value, registrable, now() FROM feed WHERE id IS NULL
		    `+onConflict+`
		    RETURNING id),
		listed_fresh AS (
		    INSERT INTO source_listings (source_id, indicator_id, first_seen)
		    SELECT $1, id, now() FROM fresh
		    RETURNING 1),
		listed_known AS (
		    INSERT INTO source_listings (source_id, indicator_id, first_seen)
		    SELECT $1, k.id, now() FROM known k
		     WHERE NOT EXISTS (SELECT FROM source_listings l WHERE l.indicator_id = k.id AND l.source_id = $1 AND l.active)
		    ON CONFLICT (indicator_id, source_id) DO UPDATE SET active = true, last_seen = NULL, removed_at = NULL
		    RETURNING 1),
		removed AS (
		    UPDATE source_listings l SET active = false, last_seen = coalesce($2, now()), removed_at = now()
		     WHERE l.source_id = $1 AND l.active AND NOT EXISTS (SELECT FROM known k WHERE k.id = l.indicator_id)
		    RETURNING 1)
		SELECT (SELECT count(*) FROM feed), (SELECT count(*) FROM known), (SELECT count(*) FROM listed_fresh),
		       (SELECT count(*) FROM listed_known), (SELECT count(*) FROM removed)`, sourceID, lastSuccess).
			Scan(&entries, &known, &fresh, &added, &removed)
	}
	if _, err := tx.Exec(ctx, `SAVEPOINT merge`); err != nil {
		return err
	}
	if err := mergeOnce(""); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != uniqueViolation || pgErr.TableName != "indicators" {
			return err
		}
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT merge`); err != nil {
			return err
		}
		if err := mergeOnce(`ON CONFLICT (type, value) DO NOTHING`); err != nil {
			return err
		}
	}
	added += fresh
	if known+fresh < entries {
		tag, err := tx.Exec(ctx, `
			INSERT INTO source_listings (source_id, indicator_id, first_seen)
			SELECT $1, i.id, now() FROM (SELECT DISTINCT type, value FROM staging) f
			  JOIN indicators i ON i.type = f.type AND i.value = f.value
			 WHERE NOT EXISTS (SELECT FROM source_listings l WHERE l.indicator_id = i.id AND l.source_id = $1)`, sourceID)
		if err != nil {
			return err
		}
		added += int(tag.RowsAffected())
	}
	res.Entries, res.Added, res.Removed = entries, added, removed
	return nil
}

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// recordedRun returns the outcome already recorded for this run key, if any.
func (a *Activities) recordedRun(ctx context.Context, in contract.LoadInput) (contract.LoadResult, bool, error) {
	r := contract.LoadResult{Source: in.Source.Name}
	err := a.DB.Pool.QueryRow(ctx, `SELECT status, entries, added, removed, bad_lines, dropped, error
		FROM source_runs WHERE source = $1 AND run_key = $2`, in.Source.Name, in.RunKey).
		Scan(&r.Status, &r.Entries, &r.Added, &r.Removed, &r.Bad, &r.Dropped, &r.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("load %s: read run: %w", in.Source.Name, err)
	}
	return r, true, nil
}

// recordOutcome records a run that loads nothing, counting failures for health.
func (a *Activities) recordOutcome(ctx context.Context, in contract.LoadInput, res contract.LoadResult, failure bool) error {
	return pgx.BeginFunc(ctx, a.DB.Pool, func(tx pgx.Tx) error {
		if err := a.DB.UpsertSource(ctx, storage.SourceRow{Name: in.Source.Name, URL: in.Source.URL, Format: in.Source.Format,
			Type: in.Source.Type, Prior: in.Source.Prior, Enabled: in.Source.Enabled}); err != nil {
			return err
		}
		var q string
		if failure {
			q = `UPDATE sources SET consecutive_failures = consecutive_failures + 1 WHERE name = $1`
		} else {
			// unchanged: everything listed is still listed, and seen now
			q = `UPDATE sources SET last_success = now(), consecutive_failures = 0 WHERE name = $1`
		}
		if _, err := tx.Exec(ctx, q, in.Source.Name); err != nil {
			return err
		}
		return insertRun(ctx, tx, in, res)
	})
}

func insertRun(ctx context.Context, tx pgx.Tx, in contract.LoadInput, res contract.LoadResult) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO source_runs (source, run_key, started_at, status, http_status, bytes, blob_sha256,
		                         entries, added, removed, bad_lines, dropped, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (source, run_key) DO NOTHING`,
		in.Source.Name, in.RunKey, in.Fetch.StartedAt, res.Status, in.Fetch.HTTPStatus, in.Fetch.Bytes, in.Fetch.SHA256,
		res.Entries, res.Added, res.Removed, res.Bad, res.Dropped, storage.ErrorText(res.Error))
	if err != nil {
		return fmt.Errorf("record run of %s: %w", in.Source.Name, err)
	}
	return nil
}

// heartbeatEvery records a heartbeat every d until stopped (outside an activity,
// in tests, it does nothing).
func heartbeatEvery(ctx context.Context, d time.Duration) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// errEnough stops a parse that has all the rows it wants.
var errEnough = errors.New("enough rows")

// copyParsed parses body in format and COPYs one row per indicator into table (a
// table of tx); row returns nil to stop early. The parser pushes indicators and
// COPY pulls rows: a goroutine bridges the two so memory stays constant whatever
// the feed's size. Parse errors and COPY errors come back separately: the first
// may be the feed's fault, the second is the database's.
func copyParsed(ctx context.Context, tx pgx.Tx, table string, cols []string, format string, opts feeds.Options,
	body io.Reader, row func(feeds.Indicator) []any) (copied int64, stats feeds.Stats, parseErr, copyErr error) {
	rows := make(chan []any, 1024)
	parseCtx, stopParse := context.WithCancel(ctx)
	defer stopParse()
	go func() {
		defer close(rows)
		stats, parseErr = feeds.Parse(format, body, opts, func(ind feeds.Indicator) error {
			r := row(ind)
			if r == nil {
				return errEnough
			}
			select {
			case rows <- r:
				return nil
			case <-parseCtx.Done():
				return parseCtx.Err()
			}
		})
	}()
	copied, copyErr = tx.CopyFrom(ctx, pgx.Identifier{table}, cols, &chanSource{rows: rows, ctx: ctx})
	stopParse()
	for range rows { // let the parser finish before reading its results
	}
	if errors.Is(parseErr, errEnough) {
		parseErr = nil
	}
	return copied, stats, parseErr, copyErr
}

// chanSource feeds COPY from a channel of rows.
type chanSource struct {
	rows <-chan []any
	ctx  context.Context
	row  []any
	n    int
}

func (c *chanSource) Next() bool {
	row, ok := <-c.rows
	c.row = row
	c.n++
	if ok && c.n%100000 == 0 && activity.IsActivity(c.ctx) {
		activity.RecordHeartbeat(c.ctx, c.n)
	}
	return ok
}
func (c *chanSource) Values() ([]any, error) { return c.row, nil }
func (c *chanSource) Err() error             { return nil }
