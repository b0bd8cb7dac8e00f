package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tip-project/tip/flux"
)

// The reads of `tip report`: time series sized for a chart (at most a given
// number of points, however long the history) and the current matrices.

// Totals counts what the database holds, for a report's header.
type Totals struct {
	Sources          int64 `json:"sources"`
	Indicators       int64 `json:"indicators"`
	ActiveListings   int64 `json:"active_listings"`
	SpamMails        int64 `json:"spam_mails"`
	FluxTriaged      int64 `json:"flux_triaged"`
	FluxMonitored    int64 `json:"flux_monitored"`
	FluxObservations int64 `json:"flux_observations"` // checks recorded: observations, and those summarised hourly
}

// Totals counts sources, indicators, active listings, spam and flux domains.
func (db *DB) Totals(ctx context.Context) (Totals, error) {
	var t Totals
	err := db.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM sources), (SELECT count(*) FROM indicators),
		(SELECT count(*) FROM source_listings WHERE active), (SELECT count(*) FROM spam_messages),
		(SELECT count(*) FROM flux_domains), (SELECT count(*) FROM flux_domains WHERE monitor IS NOT NULL),
		(SELECT count(*) FROM flux_observations) + (SELECT coalesce(sum(checks), 0) FROM flux_hours)`).
		Scan(&t.Sources, &t.Indicators, &t.ActiveListings, &t.SpamMails, &t.FluxTriaged, &t.FluxMonitored, &t.FluxObservations)
	if err != nil {
		return t, fmt.Errorf("totals: %w", err)
	}
	return t, nil
}

// MetricsPoint is one source's metrics as one refresh computed them.
type MetricsPoint struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"`
	Volume int64     `json:"volume"`
	Health float64   `json:"health"`
	Weight float64   `json:"weight"`
}

// MetricsHistory returns the metrics the refreshes since a time recorded, by time
// and source: every refresh's when there were at most points of them, otherwise
// the last refresh of each of points equal slices of the time they span. A
// database not migrated to the history yet gives an error wrapping
// ErrSchemaBehind (reading never migrates).
func (db *DB) MetricsHistory(ctx context.Context, since time.Time, points int) ([]MetricsPoint, error) {
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT to_regclass('source_metrics_history') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("metrics history: %w", err)
	}
	if !exists {
		return nil, fmt.Errorf("metrics history: %w: it has no source_metrics_history (migration 12); run `tip migrate` (the worker also migrates at start)", ErrSchemaBehind)
	}
	rows, err := db.pool.Query(ctx, `
		WITH times AS (SELECT DISTINCT computed_at AS at FROM source_metrics_history WHERE computed_at >= $1),
		span AS (SELECT min(at) AS lo, max(at) AS hi, count(*) AS n FROM times),
		picked AS (
		    SELECT max(t.at) AS at FROM times t, span
		     GROUP BY CASE WHEN span.n <= $2 THEN extract(epoch FROM t.at - span.lo)
		                   ELSE least(floor(extract(epoch FROM t.at - span.lo) / extract(epoch FROM span.hi - span.lo) * $2), $2 - 1) END)
		SELECT h.computed_at, h.source, h.volume, h.health, h.weight
		  FROM source_metrics_history h JOIN picked p ON h.computed_at = p.at
		 ORDER BY h.computed_at, h.source`, since, max(points, 1))
	if err != nil {
		return nil, fmt.Errorf("metrics history: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MetricsPoint, error) {
		var p MetricsPoint
		return p, r.Scan(&p.At, &p.Source, &p.Volume, &p.Health, &p.Weight)
	})
	if err != nil {
		return nil, fmt.Errorf("metrics history: %w", err)
	}
	return out, nil
}

// RunSteps are the lengths RunHistory slices time into.
var RunSteps = []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// RunCount is how many runs of a source ended with a status in one slice of time.
type RunCount struct {
	Start  time.Time `json:"start"` // the slice's
	Source string    `json:"source"`
	Status string    `json:"status"` // loaded, unchanged, dead, malformed, failed
	Runs   int       `json:"runs"`
}

// RunHistory counts the source runs that finished since a time by source and
// status, in slices of time of one length (step: the first of RunSteps that
// makes at most slices of them, at least 3) starting at multiples of it, oldest
// first.
func (db *DB) RunHistory(ctx context.Context, since time.Time, slices int) (step time.Duration, counts []RunCount, err error) {
	var lo, hi *time.Time
	if err := db.pool.QueryRow(ctx, `SELECT min(finished_at), max(finished_at) FROM source_runs WHERE finished_at >= $1`, since).Scan(&lo, &hi); err != nil {
		return 0, nil, fmt.Errorf("run history: %w", err)
	}
	if lo == nil {
		return 0, nil, nil
	}
	// the first slice may start a step before the first run
	need := hi.Sub(*lo) / time.Duration(max(slices-2, 1))
	step = RunSteps[len(RunSteps)-1]
	for _, s := range RunSteps {
		if s >= need {
			step = s
			break
		}
	}
	rows, err := db.pool.Query(ctx, `
		SELECT date_bin($2::interval, finished_at, timestamptz '2000-01-01 00:00:00+00') AS start, source, status, count(*)
		  FROM source_runs WHERE finished_at >= $1
		 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, since, step)
	if err != nil {
		return 0, nil, fmt.Errorf("run history: %w", err)
	}
	counts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (RunCount, error) {
		var c RunCount
		return c, r.Scan(&c.Start, &c.Source, &c.Status, &c.Runs)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("run history: %w", err)
	}
	return step, counts, nil
}

// Overlap is the overlap matrix of the last refresh over the sources it measured
// (by name): Shared[i][j] = |Sᵢ ∩ Sⱼ| and Share[i][j] = |Sᵢ ∩ Sⱼ| / |Sᵢ|, the
// diagonal a source's volume and 1 (0 for a source listing nothing).
type Overlap struct {
	Sources []string    `json:"sources"`
	Volume  []int64     `json:"volume"`
	Shared  [][]int64   `json:"shared"`
	Share   [][]float64 `json:"share"`
}

// SourceOverlap reads the overlap matrix the last refresh stored.
func (db *DB) SourceOverlap(ctx context.Context) (Overlap, error) {
	var o Overlap
	rows, err := db.pool.Query(ctx, `SELECT source, volume FROM source_metrics ORDER BY source`)
	if err != nil {
		return o, fmt.Errorf("source overlap: %w", err)
	}
	index := map[string]int{}
	for rows.Next() {
		var name string
		var volume int64
		if err := rows.Scan(&name, &volume); err != nil {
			rows.Close()
			return o, fmt.Errorf("source overlap: %w", err)
		}
		index[name] = len(o.Sources)
		o.Sources, o.Volume = append(o.Sources, name), append(o.Volume, volume)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return o, fmt.Errorf("source overlap: %w", err)
	}
	n := len(o.Sources)
	o.Shared, o.Share = make([][]int64, n), make([][]float64, n)
	for i := range n {
		o.Shared[i], o.Share[i] = make([]int64, n), make([]float64, n)
		o.Shared[i][i] = o.Volume[i]
		if o.Volume[i] > 0 {
			o.Share[i][i] = 1
		}
	}
	rows, err = db.pool.Query(ctx, `SELECT a, b, shared, share FROM source_overlap`)
	if err != nil {
		return o, fmt.Errorf("source overlap: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a, b string
		var shared int64
		var share float64
		if err := rows.Scan(&a, &b, &shared, &share); err != nil {
			return o, fmt.Errorf("source overlap: %w", err)
		}
		i, iok := index[a]
		j, jok := index[b]
		if iok && jok {
			o.Shared[i][j], o.Share[i][j] = shared, share
		}
	}
	return o, rows.Err()
}

// MonitoredFluxDomains lists the monitored domains (any monitor state) with the
// most addresses seen behind them first, then by name, at most limit, and says
// how many are monitored in all.
func (db *DB) MonitoredFluxDomains(ctx context.Context, limit int) ([]FluxDomain, int, error) {
	var total int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM flux_domains WHERE monitor IS NOT NULL`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("monitored flux domains: %w", err)
	}
	rows, err := db.pool.Query(ctx, `SELECT `+fluxDomainColumns+` FROM flux_domains WHERE monitor IS NOT NULL
		ORDER BY (SELECT count(*) FROM flux_ips i WHERE i.domain = flux_domains.domain AND i.role = 'a') DESC, domain
		LIMIT $1`, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("monitored flux domains: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FluxDomain, error) { return scanFluxDomain(r) })
	if err != nil {
		return nil, 0, fmt.Errorf("monitored flux domains: %w", err)
	}
	return out, total, nil
}

// FluxCheck is one recorded check of a domain, its name servers left out.
type FluxCheck struct {
	Obs flux.Observation
	// Prev is the answer before Obs when both answered: the monitor's score
	// pools the two.
	Prev *flux.Observation
}

// FluxChecks returns a domain's checks since a time and at or after floor
// (the full-resolution boundary, FullResolutionFrom: before it, FluxHours),
// oldest first, and how many there are: all of them when there are at most
// points, otherwise the last check at or before each of points instants spread
// evenly from the first check to the last (a check at most once: fewer when
// checks cluster). The answer before a check (Prev) is looked for from floor
// on, so that a prune does not change it.
func (db *DB) FluxChecks(ctx context.Context, domain string, since, floor time.Time, points int) ([]FluxCheck, int, error) {
	if since.Before(floor) {
		since = floor
	}
	var n int
	var lo, hi *time.Time
	if err := db.pool.QueryRow(ctx, `SELECT count(*), min(at), max(at) FROM flux_observations WHERE domain = $1 AND at >= $2`,
		domain, since).Scan(&n, &lo, &hi); err != nil {
		return nil, 0, fmt.Errorf("flux checks of %s: %w", domain, err)
	}
	if n == 0 {
		return nil, 0, nil
	}
	var ticks []time.Time // nil: every check
	if points = max(points, 2); n > points {
		span := hi.Sub(*lo)
		for k := range points {
			ticks = append(ticks, lo.Add(time.Duration(float64(span)*float64(k)/float64(points-1))))
		}
		ticks[points-1] = *hi
	}
	rows, err := db.pool.Query(ctx, `
		WITH picked AS (
		    SELECT at FROM flux_observations WHERE domain = $1 AND at >= $2 AND $3::timestamptz[] IS NULL
		    UNION
		    SELECT o.at FROM unnest($3::timestamptz[]) t(at), LATERAL (
		        SELECT at FROM flux_observations f WHERE f.domain = $1 AND f.at >= $2 AND f.at <= t.at
		         ORDER BY f.at DESC LIMIT 1) o)
		SELECT o.at, o.status, coalesce(o.data->'a', '[]'), coalesce(o.data->'aaaa', '[]'),
		       p.at, coalesce(p.data->'a', '[]'), coalesce(p.data->'aaaa', '[]')
		  FROM picked k JOIN flux_observations o ON o.domain = $1 AND o.at = k.at
		  LEFT JOIN LATERAL (
		      SELECT f.at, f.data FROM flux_observations f
		       WHERE o.status = 'NOERROR' AND o.addrs > 0
		         AND f.domain = $1 AND f.at < o.at AND f.at >= $4 AND f.status = 'NOERROR' AND f.addrs > 0
		       ORDER BY f.at DESC LIMIT 1) p ON true
		 ORDER BY o.at`, domain, since, ticks, floor)
	if err != nil {
		return nil, 0, fmt.Errorf("flux checks of %s: %w", domain, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FluxCheck, error) {
		var c FluxCheck
		var status string
		var a, aaaa, prevA, prevAAAA []byte
		var prevAt *time.Time
		if err := r.Scan(&c.Obs.At, &status, &a, &aaaa, &prevAt, &prevA, &prevAAAA); err != nil {
			return c, err
		}
		c.Obs.Domain, c.Obs.Status = domain, flux.Status(status)
		if err := unmarshalRecords(a, aaaa, &c.Obs); err != nil {
			return c, err
		}
		if prevAt != nil {
			c.Prev = &flux.Observation{Domain: domain, At: *prevAt, Status: flux.NoError}
			if err := unmarshalRecords(prevA, prevAAAA, c.Prev); err != nil {
				return c, err
			}
		}
		return c, nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("flux checks of %s: %w", domain, err)
	}
	return out, n, nil
}

func unmarshalRecords(a, aaaa []byte, o *flux.Observation) error {
	if err := json.Unmarshal(a, &o.A); err != nil {
		return err
	}
	return json.Unmarshal(aaaa, &o.AAAA)
}

// FluxSighting is when an address was first seen behind a domain, and its ASN
// (0 when unknown).
type FluxSighting struct {
	FirstSeen time.Time
	ASN       uint32
}

// FluxSightings lists the A and AAAA addresses recorded behind a domain, first
// seen first: the distinct addresses and ASNs it had at any time.
func (db *DB) FluxSightings(ctx context.Context, domain string) ([]FluxSighting, error) {
	rows, err := db.pool.Query(ctx, `SELECT first_seen, asn FROM flux_ips WHERE domain = $1 AND role = 'a' ORDER BY first_seen`, domain)
	if err != nil {
		return nil, fmt.Errorf("flux sightings of %s: %w", domain, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FluxSighting, error) {
		var s FluxSighting
		var asn int64
		err := r.Scan(&s.FirstSeen, &asn)
		s.ASN = uint32(asn)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("flux sightings of %s: %w", domain, err)
	}
	return out, nil
}
