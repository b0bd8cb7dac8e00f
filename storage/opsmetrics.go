package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The reads behind TIP's operations metrics (package opsmetrics), made at
// scrape time: a few statements each, whose cost grows with the sources, the
// runs and the running monitors, never with a loop of queries per source.

// OpsSource is what the operations metrics show of one blacklist source.
type OpsSource struct {
	Name string
	// Health is the state `tip status` and `tip sources` show: ok, failing,
	// dead or never-run (the one rule, health).
	Health              string
	ConsecutiveFailures int
	LastSuccess         *time.Time     // nil: never loaded
	LastRunDuration     *time.Duration // its last run's, from start to finish; nil: never run
	Weight              *float64       // at the last metrics computation; nil: none yet
	// Listings counts its active listings by indicator type.
	Listings map[string]int64
	// Runs counts its recorded runs by status as stored (loaded, unchanged,
	// dead, malformed, failed); FetchedBytes sums what they downloaded.
	Runs         map[string]int64
	FetchedBytes int64
}

// OpsSources reads every known source (feeds and TIP's own), by name, in one
// read-only snapshot: three grouped statements sent in one round trip.
func (db *DB) OpsSources(ctx context.Context) ([]OpsSource, error) {
	var out []OpsSource
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`
			SELECT s.name, s.consecutive_failures, s.last_success, coalesce(r.status, ''), r.finished_at - r.started_at, m.weight
			  FROM sources s
			  LEFT JOIN LATERAL (SELECT status, started_at, finished_at FROM source_runs
			                      WHERE source = s.name ORDER BY finished_at DESC, id DESC LIMIT 1) r ON true
			  LEFT JOIN source_metrics m ON m.source = s.name
			 ORDER BY s.name`)
		b.Queue(`SELECT source, status, count(*), coalesce(sum(bytes), 0)::bigint FROM source_runs GROUP BY source, status`)
		b.Queue(`
			SELECT s.name, l.type, l.n
			  FROM (SELECT sl.source_id, i.type, count(*) AS n
			          FROM source_listings sl JOIN indicators i ON i.id = sl.indicator_id
			         WHERE sl.active GROUP BY sl.source_id, i.type) l
			  JOIN sources s ON s.id = l.source_id`)
		br := tx.SendBatch(ctx, b)
		defer br.Close()

		rows, err := br.Query()
		if err != nil {
			return err
		}
		byName := map[string]int{}
		for rows.Next() {
			var s OpsSource
			var lastStatus string
			if err := rows.Scan(&s.Name, &s.ConsecutiveFailures, &s.LastSuccess, &lastStatus, &s.LastRunDuration, &s.Weight); err != nil {
				rows.Close()
				return err
			}
			s.Health = health(lastStatus, s.ConsecutiveFailures)
			s.Listings, s.Runs = map[string]int64{}, map[string]int64{}
			byName[s.Name] = len(out)
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			return err
		}

		rows, err = br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var name, status string
			var n, bytes int64
			if err := rows.Scan(&name, &status, &n, &bytes); err != nil {
				rows.Close()
				return err
			}
			if i, ok := byName[name]; ok {
				out[i].Runs[status] = n
				out[i].FetchedBytes += bytes
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}

		rows, err = br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var name, typ string
			var n int64
			if err := rows.Scan(&name, &typ, &n); err != nil {
				rows.Close()
				return err
			}
			if i, ok := byName[name]; ok {
				out[i].Listings[typ] = n
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("ops sources: %w", err)
	}
	return out, nil
}

// OpsFlux is what the operations metrics show of the flux module.
type OpsFlux struct {
	FluxCounts         // monitors by state, and networks
	AgentsListed int64 // active listings of TIP's own source of flux agents
}

// OpsFlux counts the monitors by state (as `tip status` does), the flux
// networks, and the active listings of agentsSource.
func (db *DB) OpsFlux(ctx context.Context, agentsSource string) (OpsFlux, error) {
	var f OpsFlux
	var err error
	if f.FluxCounts, err = db.FluxCounts(ctx); err != nil {
		return f, err
	}
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM listings WHERE source = $1 AND active`, agentsSource).Scan(&f.AgentsListed); err != nil {
		return f, fmt.Errorf("ops flux: %w", err)
	}
	return f, nil
}

// FluxCheckWindow is what the monitors' checks made in a window of check
// times tell: how many, and how late each ran after it was due.
type FluxCheckWindow struct {
	// Through ends the window (From, Through]: the next window starts after it.
	Through time.Time
	Checks  int64
	LateSum float64 // seconds, over the window's checks
	// LateLE counts the checks at most bounds[i] seconds late (cumulative, as
	// a Prometheus histogram's buckets).
	LateLE []int64
}

// FluxCheckWindow reads the checks made after from and at most settle before
// the database's now (a check is written a moment after it is made: settle
// leaves the writes in flight time to commit). It reads the checks of the
// monitors running, or stopped after from, through the observations' key
// (domain, time), one index range per monitor (OFFSET 0 keeps the planner
// from turning them into a scan of every check, which a short window's small
// estimate invites): its cost grows with the monitors and the window's
// checks, not with the checks ever recorded.
func (db *DB) FluxCheckWindow(ctx context.Context, from time.Time, settle time.Duration, bounds []float64) (FluxCheckWindow, error) {
	w := FluxCheckWindow{LateLE: make([]int64, 0, len(bounds))}
	err := db.pool.QueryRow(ctx, `
		WITH o AS (
		    SELECT o.late_ms::float8 / 1000 AS late
		      FROM flux_domains d
		      JOIN LATERAL (SELECT late_ms FROM flux_observations o
		                     WHERE o.domain = d.domain AND o.at > $1 AND o.at <= now() - $2::interval OFFSET 0) o ON true
		     WHERE d.monitor IS NOT NULL AND (d.monitor_ended IS NULL OR d.monitor_ended > $1))
		SELECT now() - $2::interval, (SELECT count(*) FROM o), (SELECT coalesce(sum(late), 0) FROM o),
		       ARRAY(SELECT (SELECT count(*) FROM o WHERE late <= b.le) FROM unnest($3::float8[]) WITH ORDINALITY AS b(le, i) ORDER BY b.i)`,
		from, settle, bounds).Scan(&w.Through, &w.Checks, &w.LateSum, &w.LateLE)
	if err != nil {
		return w, fmt.Errorf("flux check window: %w", err)
	}
	return w, nil
}

// CountFluxChecks counts the checks recorded that were made at or before
// through (those summarised hourly by the retention too). It reads every check: the operations metrics count them once, at
// their first reading, then add each window's.
func (db *DB) CountFluxChecks(ctx context.Context, through time.Time) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM flux_observations WHERE at <= $1)
		+ (SELECT coalesce(sum(checks), 0) FROM flux_hours WHERE last_at <= $1)`, through).Scan(&n); err != nil {
		return 0, fmt.Errorf("count flux checks: %w", err)
	}
	return n, nil
}
