package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/workflows/contract"
)

// RegisterFluxMonitor writes a monitor's row of the probers' schedule (its
// bounds, pause, pinned interval, whether it still runs; with the metrics,
// check count, stable streak and next check of a monitor that checked its
// domain itself) and records the monitor's state, in one transaction. The row's
// seq moves on, so its prober reads the change at its next poll.
func (db *DB) RegisterFluxMonitor(ctx context.Context, r contract.MonitorRegistration, at time.Time) error {
	var metrics []byte
	var metricsAt, due *time.Time
	if r.Metrics != nil {
		var err error
		if metrics, err = json.Marshal(r.Metrics); err != nil {
			return err
		}
		t := r.Metrics.LastObserved.UTC()
		metricsAt = &t
	}
	if !r.Next.IsZero() {
		t := r.Next.UTC()
		due = &t
	}
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("register monitor %s: %w", r.Domain, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	// A resumed or re-pinned monitor is due at once; a handed-over one keeps its
	// next check. A monitor started anew (no row, or the row of one that ended)
	// starts new metrics, from now, as its checks are counted anew.
	_, err = tx.Exec(ctx, `
		INSERT INTO flux_schedule (domain, bucket, active, paused, min_check_ms, max_check_ms, pinned_ms, nxdomain_ms,
		                           due, checks, stable, metrics, metrics_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, coalesce($13::timestamptz, $14::timestamptz))
		ON CONFLICT (domain) DO UPDATE SET seq = nextval('flux_schedule_seq'), xid = pg_current_xact_id(), active = excluded.active,
		    paused = excluded.paused, min_check_ms = excluded.min_check_ms, max_check_ms = excluded.max_check_ms,
		    pinned_ms = excluded.pinned_ms, nxdomain_ms = excluded.nxdomain_ms,
		    due = CASE WHEN excluded.metrics IS NOT NULL OR NOT flux_schedule.active THEN excluded.due
		               WHEN flux_schedule.paused AND NOT excluded.paused THEN NULL
		               WHEN flux_schedule.pinned_ms <> excluded.pinned_ms THEN NULL
		               ELSE flux_schedule.due END,
		    checks = CASE WHEN excluded.metrics IS NOT NULL OR NOT flux_schedule.active THEN excluded.checks ELSE flux_schedule.checks END,
		    stable = CASE WHEN excluded.metrics IS NOT NULL OR NOT flux_schedule.active THEN excluded.stable ELSE flux_schedule.stable END,
		    metrics = CASE WHEN excluded.metrics IS NOT NULL OR NOT flux_schedule.active THEN excluded.metrics ELSE flux_schedule.metrics END,
		    metrics_at = CASE WHEN excluded.metrics IS NOT NULL OR NOT flux_schedule.active THEN excluded.metrics_at ELSE flux_schedule.metrics_at END,
		    nx_since = CASE WHEN NOT flux_schedule.active THEN NULL ELSE flux_schedule.nx_since END,
		    state = CASE WHEN NOT flux_schedule.active THEN 'watching' ELSE flux_schedule.state END,
		    summary_at = CASE WHEN NOT flux_schedule.active THEN NULL ELSE flux_schedule.summary_at END`,
		r.Domain, contract.MonitorBucket(r.Domain), r.Active, r.Paused, ms(r.Config.MinCheck), ms(r.Config.MaxCheck),
		ms(r.Interval), ms(r.Config.NXDomainFor), due, r.Checks, r.Stable, metrics, metricsAt, at.UTC())
	if err != nil {
		return fmt.Errorf("register monitor %s: %w", r.Domain, err)
	}
	if r.State != "" {
		if err := setFluxMonitor(ctx, tx, r.Domain, r.State, r.Summary, at); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("register monitor %s: %w", r.Domain, err)
	}
	return nil
}

// ScheduledDomain is a domain of the probers' schedule as its prober reads it.
type ScheduledDomain struct {
	Domain      string
	Seq         int64
	Active      bool
	Paused      bool
	MinCheck    time.Duration
	MaxCheck    time.Duration
	Pinned      time.Duration
	NXDomainFor time.Duration
	Due         time.Time // zero: at once
	Checks      int
	Stable      int
	TTL         uint32
	NXSince     time.Time
	State       string
	SummaryAt   time.Time
}

// FluxSchedule reads the schedule's rows of shard (of shards: the buckets b
// with b % shards == shard) changed since horizon (0: every row), and the
// horizon to read from next: the oldest transaction running now, so a change
// committed after this read is read next time, whatever its seq. A row may be
// read again: its Seq tells a change from one already applied.
func (db *DB) FluxSchedule(ctx context.Context, shard, shards int, horizon int64) ([]ScheduledDomain, int64, error) {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return nil, 0, fmt.Errorf("flux schedule: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	var next int64
	if err := tx.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&next); err != nil {
		return nil, 0, fmt.Errorf("flux schedule: %w", err)
	}
	rows, err := tx.Query(ctx, `
		SELECT domain, seq, active, paused, min_check_ms, max_check_ms, pinned_ms, nxdomain_ms, due, checks, stable, ttl,
		       nx_since, state, summary_at
		  FROM flux_schedule WHERE xid >= $1::text::xid8 AND bucket % $2 = $3 ORDER BY seq`, fmt.Sprint(horizon), shards, shard)
	if err != nil {
		return nil, 0, fmt.Errorf("flux schedule: %w", err)
	}
	var out []ScheduledDomain
	var d ScheduledDomain
	var minMS, maxMS, pinMS, nxMS int64
	var due, nxSince, summaryAt *time.Time
	var ttl int32
	_, err = pgx.ForEachRow(rows, []any{&d.Domain, &d.Seq, &d.Active, &d.Paused, &minMS, &maxMS, &pinMS, &nxMS, &due,
		&d.Checks, &d.Stable, &ttl, &nxSince, &d.State, &summaryAt}, func() error {
		d.MinCheck, d.MaxCheck = time.Duration(minMS)*time.Millisecond, time.Duration(maxMS)*time.Millisecond
		d.Pinned, d.NXDomainFor = time.Duration(pinMS)*time.Millisecond, time.Duration(nxMS)*time.Millisecond
		d.Due, d.NXSince, d.SummaryAt = timeOr(due), timeOr(nxSince), timeOr(summaryAt)
		d.TTL = uint32(max(ttl, 0))
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("flux schedule: %w", err)
	}
	return out, next, nil
}

func timeOr(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// ProbeCheck is one prober check to record: the check (observation, lateness,
// due time, state when it changed) and the domain's compact state after it.
type ProbeCheck struct {
	Write   FluxWrite
	Next    time.Time // the next check
	Checks  int
	Stable  int
	TTL     uint32
	NXSince time.Time
	State   string
}

// RecordProbeChecks records prober checks in one transaction, as
// RecordFluxChecks does, with each domain's compact state in the schedule. It
// returns how many A and AAAA addresses each domain showed for the first time
// (a check recorded before, re-run, shows none).
func (db *DB) RecordProbeChecks(ctx context.Context, cs []ProbeCheck) (map[string]int, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	ws := make([]FluxWrite, len(cs))
	domains, states := make([]string, len(cs)), make([]string, len(cs))
	nexts, nxs := make([]*time.Time, len(cs)), make([]*time.Time, len(cs))
	checks, stables, ttls := make([]int32, len(cs)), make([]int32, len(cs)), make([]int32, len(cs))
	for i, c := range cs {
		ws[i] = c.Write
		domains[i], states[i] = c.Write.Obs.Domain, c.State
		next := c.Next.UTC()
		nexts[i] = &next
		if !c.NXSince.IsZero() {
			nx := c.NXSince.UTC()
			nxs[i] = &nx
		}
		checks[i], stables[i], ttls[i] = int32(c.Checks), int32(c.Stable), int32(min(c.TTL, 1<<31-1))
	}
	return db.recordFluxChecks(ctx, ws, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			UPDATE flux_schedule s SET due = u.due, checks = u.checks, stable = u.stable, ttl = u.ttl, nx_since = u.nx, state = u.state
			  FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::int[], $5::int[], $6::timestamptz[], $7::text[])
			       AS u(domain, due, checks, stable, ttl, nx, state)
			 WHERE s.domain = u.domain`, domains, nexts, checks, stables, ttls, nxs, states)
		if err != nil {
			return fmt.Errorf("record probe checks: %w", err)
		}
		return nil
	})
}

// ProbeHistory is a domain's metrics as last checkpointed and the
// observations recorded after the checkpoint, in time order: folded together,
// they are its metrics now.
type ProbeHistory struct {
	Domain  string
	Metrics flux.Metrics
	Since   []flux.Observation
}

// ProbeHistories reads the checkpoints and later observations of domains.
func (db *DB) ProbeHistories(ctx context.Context, domains []string) ([]ProbeHistory, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT s.domain, s.metrics, o.data
		  FROM flux_schedule s
		  LEFT JOIN flux_observations o ON o.domain = s.domain AND o.at > coalesce(s.metrics_at, '-infinity')
		 WHERE s.domain = ANY($1)
		 ORDER BY s.domain, o.at`, domains)
	if err != nil {
		return nil, fmt.Errorf("probe histories: %w", err)
	}
	var out []ProbeHistory
	var domain string
	var metrics, data []byte
	_, err = pgx.ForEachRow(rows, []any{&domain, &metrics, &data}, func() error {
		if len(out) == 0 || out[len(out)-1].Domain != domain {
			h := ProbeHistory{Domain: domain}
			if metrics != nil {
				if err := json.Unmarshal(metrics, &h.Metrics); err != nil {
					return fmt.Errorf("the metrics of %s: %w", domain, err)
				}
			}
			out = append(out, h)
		}
		if data != nil {
			var o flux.Observation
			if err := json.Unmarshal(data, &o); err != nil {
				return fmt.Errorf("an observation of %s: %w", domain, err)
			}
			h := &out[len(out)-1]
			h.Since = append(h.Since, o)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("probe histories: %w", err)
	}
	return out, nil
}

// ProbeCheckpoint is a domain's metrics folded up to their last observation,
// with the summary reported to its monitor.
type ProbeCheckpoint struct {
	Domain  string
	Metrics *flux.Metrics
	Summary flux.Summary
	State   string    // the monitor's state: watching or stable
	At      time.Time // when the summary was reported
}

// SaveProbeCheckpoints writes checkpoints of the metrics (the observations
// after each one's last are folded in at the next) and records the summaries,
// in one transaction.
func (db *DB) SaveProbeCheckpoints(ctx context.Context, cps []ProbeCheckpoint) error {
	if len(cps) == 0 {
		return nil
	}
	domains, states := make([]string, len(cps)), make([]string, len(cps))
	metrics, sums := make([][]byte, len(cps)), make([][]byte, len(cps))
	upTo, ats := make([]*time.Time, len(cps)), make([]time.Time, len(cps))
	for i, c := range cps {
		var err error
		if metrics[i], err = json.Marshal(c.Metrics); err != nil {
			return err
		}
		if sums[i], err = json.Marshal(c.Summary); err != nil {
			return err
		}
		domains[i], states[i], ats[i] = c.Domain, c.State, c.At.UTC()
		if !c.Metrics.LastObserved.IsZero() {
			t := c.Metrics.LastObserved.UTC()
			upTo[i] = &t
		}
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("save probe checkpoints: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	_, err = tx.Exec(ctx, `
		WITH u AS (SELECT * FROM unnest($1::text[], $2::bytea[], $3::timestamptz[], $4::timestamptz[], $5::jsonb[], $6::text[])
		               AS u(domain, metrics, metrics_at, at, summary, state)),
		sched AS (
		    UPDATE flux_schedule s SET metrics = u.metrics, metrics_at = u.metrics_at, summary_at = u.at
		      FROM u WHERE s.domain = u.domain)
		UPDATE flux_domains d SET summary = u.summary,
		       monitor = CASE WHEN d.monitor IN ('watching', 'stable') AND u.state <> '' THEN u.state ELSE d.monitor END
		  FROM u WHERE d.domain = u.domain`,
		domains, metrics, upTo, ats, sums, states)
	if err != nil {
		return fmt.Errorf("save probe checkpoints: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("save probe checkpoints: %w", err)
	}
	return nil
}

// EndProbe takes a domain off the probers' schedule (its monitor is gone
// without having said so: terminated, or never upgraded).
func (db *DB) EndProbe(ctx context.Context, domain string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE flux_schedule SET active = false, seq = nextval('flux_schedule_seq'), xid = pg_current_xact_id()
		WHERE domain = $1 AND active`, domain); err != nil {
		return fmt.Errorf("end probe %s: %w", domain, err)
	}
	return nil
}

// UnscheduledMonitors are the domains whose monitor runs (watching, stable or
// paused) but is not on the probers' schedule: monitors that check their
// domain themselves, started before the probers.
func (db *DB) UnscheduledMonitors(ctx context.Context) ([]string, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT d.domain FROM flux_domains d
		 WHERE d.monitor IN ('watching', 'stable', 'paused')
		   AND NOT EXISTS (SELECT 1 FROM flux_schedule s WHERE s.domain = d.domain AND s.active)
		 ORDER BY d.domain`)
	if err != nil {
		return nil, fmt.Errorf("unscheduled monitors: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("unscheduled monitors: %w", err)
	}
	return out, nil
}
