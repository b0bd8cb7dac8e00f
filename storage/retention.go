package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tip-project/tip/flux"
)

// The data lifecycle: flux observations are kept at full resolution for a
// window (Retention.FluxFull), then summarised per domain and hour into
// flux_hours and expired, whole weekly partitions dropped; source runs are
// kept for Retention.SourceRuns. The passive DNS (flux_ips, flux_ns,
// flux_ns_addrs) is never expired: it grows with the distinct answers, not
// with the checks.

// Retention says how long what is kept.
type Retention struct {
	// FluxFull is how long flux observations stay at full resolution; older
	// ones are summarised per hour (flux_hours) and removed.
	FluxFull time.Duration
	// SourceRuns is how long a source run's row is kept (each source's latest
	// run always is).
	SourceRuns time.Duration
}

// fluxPartitionsAhead is how far ahead of now the weekly partitions of
// flux_observations are made by each retention run.
const fluxPartitionsAhead = 28 * 24 * time.Hour

// FullResolutionFrom is where a timeline switches from hourly summaries to
// full resolution: the hour keep before now. Prune summarises what is older,
// and the timelines summarise it the same way while it is still there, so a
// prune changes no timeline.
func FullResolutionFrom(now time.Time, keep time.Duration) time.Time {
	return now.Add(-keep).UTC().Truncate(time.Hour)
}

// EnsureFluxPartitions makes the weekly partitions of flux_observations that
// hold due times from lo to hi and reports how many it made.
func (db *DB) EnsureFluxPartitions(ctx context.Context, lo, hi time.Time) (int, error) {
	var made int
	if err := db.pool.QueryRow(ctx, `SELECT tip_flux_partitions($1, $2)`, lo, hi).Scan(&made); err != nil {
		return 0, fmt.Errorf("flux partitions: %w", err)
	}
	return made, nil
}

// PruneResult is what a retention run did (or, dry, would do).
type PruneResult struct {
	DryRun bool `json:"dry_run,omitempty"`
	// Cutoff: observations before it were summarised into Hours hourly rows
	// (new or merged) and removed, Observations of them.
	Cutoff       time.Time `json:"cutoff"`
	Observations int64     `json:"observations"`
	Hours        int64     `json:"hours"`
	// PartitionsDropped are the weekly partitions removed whole; Made those
	// made ahead.
	PartitionsDropped []string `json:"partitions_dropped,omitempty"`
	PartitionsMade    int      `json:"partitions_made"`
	SourceRuns        int64    `json:"source_runs"` // source runs removed
}

// Prune runs the retention at now: it makes the partitions ahead, summarises
// and removes the flux observations older than the full-resolution window —
// partition by partition, each in one transaction, a partition left empty is
// dropped — and removes the source runs older than theirs. dryRun does all of
// it in transactions it rolls back, so the counts are exact.
func (db *DB) Prune(ctx context.Context, now time.Time, r Retention, dryRun bool) (PruneResult, error) {
	res := PruneResult{DryRun: dryRun}
	if r.FluxFull > 0 {
		res.Cutoff = FullResolutionFrom(now, r.FluxFull)
		if !dryRun {
			made, err := db.EnsureFluxPartitions(ctx, now, now.Add(fluxPartitionsAhead))
			if err != nil {
				return res, err
			}
			res.PartitionsMade = made
		}
		parts, err := db.fluxPartitions(ctx)
		if err != nil {
			return res, err
		}
		for _, p := range parts {
			if !p.start.Before(res.Cutoff) {
				continue // a check runs when due or later: all of it is recent
			}
			if err := db.prunePartition(ctx, p.name, res.Cutoff, p.end.After(res.Cutoff), dryRun, &res); err != nil {
				return res, err
			}
		}
	}
	if r.SourceRuns > 0 {
		n, err := db.pruneSourceRuns(ctx, now.Add(-r.SourceRuns), dryRun)
		if err != nil {
			return res, err
		}
		res.SourceRuns = n
	}
	return res, nil
}

type fluxPartition struct {
	name       string
	start, end time.Time // of the due times it holds
}

// fluxPartitions lists the partitions of flux_observations, oldest first.
func (db *DB) fluxPartitions(ctx context.Context) ([]fluxPartition, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'flux_observations'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("flux partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("flux partitions: %w", err)
	}
	var out []fluxPartition
	for _, n := range names {
		start, err := time.Parse("20060102", strings.TrimPrefix(n, "flux_observations_p"))
		if err != nil {
			return nil, fmt.Errorf("flux partition %s: not named flux_observations_pYYYYMMDD", n)
		}
		out = append(out, fluxPartition{name: n, start: start, end: start.AddDate(0, 0, 7)})
	}
	return out, nil
}

// prunePartition summarises and removes one partition's observations before
// cutoff in one transaction: the partition is dropped when nothing is left in
// it (and straddles is false: no due time of it is past the cutoff).
func (db *DB) prunePartition(ctx context.Context, name string, cutoff time.Time, straddles, dryRun bool, res *PruneResult) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("prune %s: %w", name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	table := pgx.Identifier{name}.Sanitize()
	var hours int64
	n, err := rollUp(ctx, tx, func(hs []FluxHour) error {
		hours += int64(len(hs))
		if dryRun {
			return nil
		}
		return writeHours(ctx, tx, hs)
	}, `FROM `+table+` WHERE at < $1`, cutoff)
	if err != nil {
		return fmt.Errorf("prune %s: %w", name, err)
	}
	if n == 0 {
		return nil
	}
	res.Observations += n
	res.Hours += hours
	var left bool
	if !straddles {
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE at >= $1)`, cutoff).Scan(&left); err != nil {
			return fmt.Errorf("prune %s: %w", name, err)
		}
		if !left {
			res.PartitionsDropped = append(res.PartitionsDropped, name)
		}
	}
	if dryRun {
		return nil
	}
	if straddles || left {
		_, err = tx.Exec(ctx, `DELETE FROM `+table+` WHERE at < $1`, cutoff)
	} else {
		_, err = tx.Exec(ctx, `DROP TABLE `+table)
	}
	if err != nil {
		return fmt.Errorf("prune %s: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("prune %s: %w", name, err)
	}
	return nil
}

// pruneSourceRuns removes the source runs finished before a time, each
// source's latest excepted (the sources' health reads it).
func (db *DB) pruneSourceRuns(ctx context.Context, before time.Time, dryRun bool) (int64, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune source runs: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	tag, err := tx.Exec(ctx, `
		DELETE FROM source_runs r WHERE r.finished_at < $1
		   AND EXISTS (SELECT 1 FROM source_runs n WHERE n.source = r.source AND (n.finished_at, n.id) > (r.finished_at, r.id))`, before)
	if err != nil {
		return 0, fmt.Errorf("prune source runs: %w", err)
	}
	if !dryRun {
		err = tx.Commit(ctx)
	}
	return tag.RowsAffected(), err
}

// FluxHour sums a domain's checks of one hour: what the timelines draw of the
// time before the full-resolution window.
type FluxHour struct {
	Domain   string    `json:"domain"`
	Hour     time.Time `json:"hour"`
	Checks   int       `json:"checks"`
	Answered int       `json:"answered"` // NOERROR with addresses
	NXDomain int       `json:"nxdomain"`
	Failed   int       `json:"failed"` // SERVFAIL, errors, NODATA
	// MaxAnswer is the most addresses in one answer, MaxAnswerASNs the most
	// distinct origin ASNs in one.
	MaxAnswer     int `json:"max_answer"`
	MaxAnswerASNs int `json:"max_answer_asns"`
	// Addrs, ASNs and NSNames count the distinct addresses, their ASNs and
	// the NS names of the hour (the largest of the parts when an hour was
	// summarised in parts: a check recorded late).
	Addrs   int `json:"addrs"`
	ASNs    int `json:"asns"`
	NSNames int `json:"ns_names"`
	// MinTTL is the lowest TTL of an answer, -1 without one.
	MinTTL    int `json:"min_ttl"`
	MaxLateMs int `json:"max_late_ms"`
	// MaxScore is the highest Holz score of two consecutive answers of the
	// hour (as flux.Metrics scores them); NaN without two.
	MaxScore   float64     `json:"-"`
	LastAt     time.Time   `json:"last_at"`
	LastStatus flux.Status `json:"last_status"`
}

// merge folds another summary of the same hour in.
func (h *FluxHour) merge(o FluxHour) {
	h.Checks += o.Checks
	h.Answered += o.Answered
	h.NXDomain += o.NXDomain
	h.Failed += o.Failed
	h.MaxAnswer, h.MaxAnswerASNs = max(h.MaxAnswer, o.MaxAnswer), max(h.MaxAnswerASNs, o.MaxAnswerASNs)
	h.Addrs, h.ASNs, h.NSNames = max(h.Addrs, o.Addrs), max(h.ASNs, o.ASNs), max(h.NSNames, o.NSNames)
	if h.MinTTL < 0 || o.MinTTL >= 0 && o.MinTTL < h.MinTTL {
		h.MinTTL = o.MinTTL
	}
	h.MaxLateMs = max(h.MaxLateMs, o.MaxLateMs)
	if math.IsNaN(h.MaxScore) || o.MaxScore > h.MaxScore {
		h.MaxScore = o.MaxScore
	}
	if o.LastAt.After(h.LastAt) {
		h.LastAt, h.LastStatus = o.LastAt, o.LastStatus
	}
}

// hourBuilder sums one domain's checks of one hour, fed in time order.
type hourBuilder struct {
	h          FluxHour
	addrs      map[string]bool
	asns       map[uint32]bool
	ns         map[string]bool
	prev       *flux.Observation // the hour's last answer so far
	scoredPair bool
}

func newHour(domain string, hour time.Time) *hourBuilder {
	return &hourBuilder{h: FluxHour{Domain: domain, Hour: hour, MinTTL: -1, MaxScore: math.NaN()},
		addrs: map[string]bool{}, asns: map[uint32]bool{}, ns: map[string]bool{}}
}

func (b *hourBuilder) add(o flux.Observation, lateMs int) {
	h := &b.h
	h.Checks++
	h.MaxLateMs = max(h.MaxLateMs, lateMs)
	if !o.At.Before(h.LastAt) {
		h.LastAt, h.LastStatus = o.At, o.Status
	}
	for _, ns := range o.NS {
		b.ns[ns.Name] = true
	}
	switch {
	case o.Answered():
		h.Answered++
	case o.Status == flux.NXDomain:
		h.NXDomain++
	default:
		h.Failed++
	}
	if !o.Answered() {
		return
	}
	answerASNs := map[uint32]bool{}
	for _, r := range append(o.A[:len(o.A):len(o.A)], o.AAAA...) {
		b.addrs[r.Addr.String()] = true
		if r.ASN != 0 {
			b.asns[r.ASN], answerASNs[r.ASN] = true, true
		}
	}
	h.MaxAnswer, h.MaxAnswerASNs = max(h.MaxAnswer, len(o.A)+len(o.AAAA)), max(h.MaxAnswerASNs, len(answerASNs))
	if ttl, ok := o.MinTTL(); ok && (h.MinTTL < 0 || int(ttl) < h.MinTTL) {
		h.MinTTL = int(ttl)
	}
	if b.prev != nil {
		var m flux.Metrics
		m.Add(*b.prev)
		m.Add(o)
		if math.IsNaN(h.MaxScore) || m.Score > h.MaxScore {
			h.MaxScore = m.Score
		}
	}
	b.prev = &o
}

func (b *hourBuilder) done() FluxHour {
	b.h.Addrs, b.h.ASNs, b.h.NSNames = len(b.addrs), len(b.asns), len(b.ns)
	return b.h
}

// rollUp reads the observations a query's FROM and WHERE pick (from, with
// its arguments) through a cursor, sums them per domain and hour and hands
// the sums to emit in order, a batch of fetched rows at a time (emit may use
// the transaction); it returns how many observations it read.
func rollUp(ctx context.Context, tx pgx.Tx, emit func([]FluxHour) error, from string, args ...any) (int64, error) {
	if _, err := tx.Exec(ctx, `DECLARE flux_rollup NO SCROLL CURSOR FOR
		SELECT domain, at, status, late_ms, coalesce(data->'a', 'null'), coalesce(data->'aaaa', 'null'), coalesce(data->'ns', 'null')
		`+from+` ORDER BY domain, at`, args...); err != nil {
		return 0, err
	}
	var cur *hourBuilder
	var n int64
	for {
		var out []FluxHour
		rows, err := tx.Query(ctx, `FETCH 5000 FROM flux_rollup`)
		if err != nil {
			return 0, err
		}
		fetched := 0
		for rows.Next() {
			var o flux.Observation
			var status string
			var late int
			var a, aaaa, ns []byte
			if err := rows.Scan(&o.Domain, &o.At, &status, &late, &a, &aaaa, &ns); err != nil {
				rows.Close()
				return 0, err
			}
			o.Status = flux.Status(status)
			for _, f := range []struct {
				raw []byte
				to  any
			}{{a, &o.A}, {aaaa, &o.AAAA}, {ns, &o.NS}} {
				if err := json.Unmarshal(f.raw, f.to); err != nil {
					rows.Close()
					return 0, err
				}
			}
			hour := o.At.UTC().Truncate(time.Hour)
			if cur == nil || cur.h.Domain != o.Domain || !cur.h.Hour.Equal(hour) {
				if cur != nil {
					out = append(out, cur.done())
				}
				cur = newHour(o.Domain, hour)
			}
			cur.add(o, late)
			fetched++
		}
		if err := rows.Err(); err != nil {
			return 0, err
		}
		n += int64(fetched)
		if fetched == 0 && cur != nil {
			out = append(out, cur.done())
		}
		if len(out) > 0 {
			if err := emit(out); err != nil {
				return 0, err
			}
		}
		if fetched == 0 {
			break
		}
	}
	if _, err := tx.Exec(ctx, `CLOSE flux_rollup`); err != nil {
		return 0, err
	}
	return n, nil
}

// writeHours stores hourly summaries, merged into those already stored for
// the same hour (a check recorded late, after its hour was summarised).
func writeHours(ctx context.Context, tx pgx.Tx, hours []FluxHour) error {
	const batch = 5000
	for len(hours) > 0 {
		part := hours[:min(len(hours), batch)]
		hours = hours[len(part):]
		var (
			domains, statuses                                        []string
			at, last                                                 []time.Time
			checks, answered, nx, failed, maxA, maxASN, ips, asn, ns []int32
			ttl, late                                                []int32
			ttlNull                                                  []bool
			score                                                    []*float64
		)
		for _, h := range part {
			domains, at, last, statuses = append(domains, h.Domain), append(at, h.Hour), append(last, h.LastAt), append(statuses, string(h.LastStatus))
			checks, answered, nx, failed = append(checks, int32(h.Checks)), append(answered, int32(h.Answered)), append(nx, int32(h.NXDomain)), append(failed, int32(h.Failed))
			maxA, maxASN = append(maxA, int32(h.MaxAnswer)), append(maxASN, int32(h.MaxAnswerASNs))
			ips, asn, ns = append(ips, int32(h.Addrs)), append(asn, int32(h.ASNs)), append(ns, int32(h.NSNames))
			ttl, ttlNull, late = append(ttl, int32(h.MinTTL)), append(ttlNull, h.MinTTL < 0), append(late, int32(h.MaxLateMs))
			if math.IsNaN(h.MaxScore) {
				score = append(score, nil)
			} else {
				s := h.MaxScore
				score = append(score, &s)
			}
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO flux_hours AS h (domain, hour, checks, answered, nxdomain, failed, max_answer, max_answer_asns, addrs, asns, ns_names,
			                             min_ttl, max_late_ms, max_score, last_at, last_status)
			SELECT d, hr, c, an, nx, f, ma, mas, ad, asn, ns, CASE WHEN tn THEN NULL ELSE t END, l, s, la, ls
			  FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[], $8::int[], $9::int[], $10::int[],
			              $11::int[], $12::int[], $13::bool[], $14::int[], $15::float8[], $16::timestamptz[], $17::text[])
			    AS u(d, hr, c, an, nx, f, ma, mas, ad, asn, ns, t, tn, l, s, la, ls)
			ON CONFLICT (domain, hour) DO UPDATE SET
			    checks = h.checks + excluded.checks, answered = h.answered + excluded.answered,
			    nxdomain = h.nxdomain + excluded.nxdomain, failed = h.failed + excluded.failed,
			    max_answer = greatest(h.max_answer, excluded.max_answer), max_answer_asns = greatest(h.max_answer_asns, excluded.max_answer_asns),
			    addrs = greatest(h.addrs, excluded.addrs), asns = greatest(h.asns, excluded.asns), ns_names = greatest(h.ns_names, excluded.ns_names),
			    min_ttl = least(h.min_ttl, excluded.min_ttl), max_late_ms = greatest(h.max_late_ms, excluded.max_late_ms),
			    max_score = greatest(h.max_score, excluded.max_score),
			    last_status = CASE WHEN excluded.last_at > h.last_at THEN excluded.last_status ELSE h.last_status END,
			    last_at = greatest(h.last_at, excluded.last_at)`,
			domains, at, checks, answered, nx, failed, maxA, maxASN, ips, asn, ns, ttl, ttlNull, late, score, last, statuses)
		if err != nil {
			return fmt.Errorf("flux hours: %w", err)
		}
	}
	return nil
}

// FluxHours returns a domain's hourly summaries of the hours from since's to
// before (the full-resolution boundary, FullResolutionFrom), oldest first:
// those stored, and those of observations not yet pruned summarised the same
// way, so the answer is the same before and after a prune.
func (db *DB) FluxHours(ctx context.Context, domain string, since, before time.Time) ([]FluxHour, error) {
	since = since.UTC().Truncate(time.Hour)
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return nil, fmt.Errorf("flux hours of %s: %w", domain, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	var live []FluxHour
	_, err = rollUp(ctx, tx, func(hs []FluxHour) error { live = append(live, hs...); return nil }, `FROM flux_observations WHERE domain = $1 AND at >= $2 AND at < $3`, domain, since, before)
	if err != nil {
		return nil, fmt.Errorf("flux hours of %s: %w", domain, err)
	}
	rows, err := tx.Query(ctx, `
		SELECT hour, checks, answered, nxdomain, failed, max_answer, max_answer_asns, addrs, asns, ns_names,
		       coalesce(min_ttl, -1), max_late_ms, coalesce(max_score, 'NaN'), last_at, last_status
		  FROM flux_hours WHERE domain = $1 AND hour >= $2 AND hour < $3 ORDER BY hour`, domain, since, before)
	if err != nil {
		return nil, fmt.Errorf("flux hours of %s: %w", domain, err)
	}
	stored, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FluxHour, error) {
		h := FluxHour{Domain: domain}
		var status string
		err := r.Scan(&h.Hour, &h.Checks, &h.Answered, &h.NXDomain, &h.Failed, &h.MaxAnswer, &h.MaxAnswerASNs, &h.Addrs, &h.ASNs,
			&h.NSNames, &h.MinTTL, &h.MaxLateMs, &h.MaxScore, &h.LastAt, &status)
		h.Hour, h.LastAt, h.LastStatus = h.Hour.UTC(), h.LastAt.UTC(), flux.Status(status)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("flux hours of %s: %w", domain, err)
	}
	// both are in hour order: merge them, an hour in both summed
	out := make([]FluxHour, 0, len(stored)+len(live))
	for len(stored) > 0 || len(live) > 0 {
		switch {
		case len(live) == 0 || len(stored) > 0 && stored[0].Hour.Before(live[0].Hour):
			out, stored = append(out, stored[0]), stored[1:]
		case len(stored) == 0 || live[0].Hour.Before(stored[0].Hour):
			out, live = append(out, live[0]), live[1:]
		default:
			h := stored[0]
			h.merge(live[0])
			out, stored, live = append(out, h), stored[1:], live[1:]
		}
	}
	return slices.Clip(out), nil
}

// MergeFluxHours merges consecutive hourly summaries into at most n, each
// standing for an equal share of them (dated by its first), for a chart.
func MergeFluxHours(hours []FluxHour, n int) []FluxHour {
	if n <= 0 || len(hours) <= n {
		return hours
	}
	out := make([]FluxHour, 0, n)
	for i := range n {
		lo, hi := i*len(hours)/n, (i+1)*len(hours)/n
		h := hours[lo]
		for _, o := range hours[lo+1 : hi] {
			h.merge(o)
		}
		out = append(out, h)
	}
	return out
}

// FluxTableBytes are the bytes the flux module's time series take on disk,
// each table with its indexes and TOAST (flux_observations: all partitions).
type FluxTableBytes struct {
	Observations int64 `json:"flux_observations"`
	Hours        int64 `json:"flux_hours"`
	PassiveDNS   int64 `json:"passive_dns"` // flux_ips, flux_ns, flux_ns_addrs
}

// Total sums them.
func (b FluxTableBytes) Total() int64 { return b.Observations + b.Hours + b.PassiveDNS }

// FluxBytes measures the flux tables (pg_total_relation_size).
func (db *DB) FluxBytes(ctx context.Context) (FluxTableBytes, error) {
	var b FluxTableBytes
	err := db.pool.QueryRow(ctx, `SELECT
		(SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits WHERE inhparent = 'flux_observations'::regclass)
		    + pg_total_relation_size('flux_observations'),
		pg_total_relation_size('flux_hours'),
		pg_total_relation_size('flux_ips') + pg_total_relation_size('flux_ns') + pg_total_relation_size('flux_ns_addrs')`).
		Scan(&b.Observations, &b.Hours, &b.PassiveDNS)
	if err != nil {
		return b, fmt.Errorf("flux table sizes: %w", err)
	}
	return b, nil
}
