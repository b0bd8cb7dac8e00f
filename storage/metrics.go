package storage

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// SourceMetrics is what a refresh measured about one source.
type SourceMetrics struct {
	Source         string   `json:"source"`
	Volume         int64    `json:"volume"`
	AddedShare     float64  `json:"added_share"`
	ChurnShare     float64  `json:"churn_share"`
	ExclusiveShare float64  `json:"exclusive_share"`
	Shared         int64    `json:"shared"`
	MeanLatency    *float64 `json:"mean_latency_s,omitempty"`
	Persistence    *float64 `json:"persistence_s,omitempty"`
	Allowlisted    int64    `json:"allowlisted"` // active entries on an allowlist, allowed by an analyst or marked a false positive
	Reserved       int64    `json:"reserved"`    // reserved/private entries the last load dropped
	Accuracy       float64  `json:"accuracy"`
	Health         float64  `json:"health"`
	Prior          float64  `json:"prior"`
	Weight         float64  `json:"weight"`
}

// Weight combines a source's prior with what was measured (README, "Source weights"):
//
//	timeliness T = 1 / (1 + mean latency in days)      (1 when nothing is shared)
//	measured   M = accuracy × (0.5 + 0.25·exclusive + 0.25·T)
//	weight     W = health × (0.3·prior + 0.7·M)
func Weight(m SourceMetrics) float64 {
	t := 1.0
	if m.MeanLatency != nil {
		t = 1 / (1 + *m.MeanLatency/86400)
	}
	measured := m.Accuracy * (0.5 + 0.25*m.ExclusiveShare + 0.25*t)
	return m.Health * (0.3*m.Prior + 0.7*measured)
}

// ComputeSourceMetrics measures every source over the active listings, stores the
// metrics, weights and overlap matrix in one transaction, and returns the metrics.
func (db *DB) ComputeSourceMetrics(ctx context.Context) ([]SourceMetrics, error) {
	var out []SourceMetrics
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			WITH act AS (SELECT source, indicator_id, first_seen FROM listings WHERE active),
			firsts AS (SELECT indicator_id, min(first_seen) AS first, count(*) AS n FROM act GROUP BY indicator_id),
			per AS (
			    SELECT a.source,
			           count(*) AS volume,
			           count(*) FILTER (WHERE f.n = 1) AS exclusive,
			           count(*) FILTER (WHERE f.n > 1) AS shared,
			           avg(extract(epoch FROM a.first_seen - f.first)) FILTER (WHERE f.n > 1) AS latency
			      FROM act a JOIN firsts f USING (indicator_id) GROUP BY a.source),
			persist AS (
			    SELECT source, avg(extract(epoch FROM removed_at - first_seen)) AS persistence
			      FROM listings WHERE NOT active AND removed_at IS NOT NULL GROUP BY source),
			lastrun AS (
			    SELECT DISTINCT ON (source) source, added, removed, dropped FROM source_runs
			     WHERE status = 'loaded' ORDER BY source, finished_at DESC, id DESC),
			benign AS (
			    SELECT a.source, count(*) AS n FROM act a JOIN indicators i ON i.id = a.indicator_id
			     WHERE `+allowlistedSQL+` OR `+analystAllowedSQL+` OR `+falsePositiveSQL("a.source")+`
			     GROUP BY a.source)
			SELECT s.name, s.prior, s.consecutive_failures,
			       coalesce((SELECT status FROM source_runs r WHERE r.source = s.name ORDER BY finished_at DESC, id DESC LIMIT 1), ''),
			       coalesce(p.volume, 0), coalesce(p.exclusive, 0), coalesce(p.shared, 0), p.latency,
			       ps.persistence, coalesce(lr.added, 0), coalesce(lr.removed, 0),
			       coalesce(b.n, 0),
			       -- only address lists' drops are entries in reserved space; a hosts
			       -- file's localhost preamble or a public suffix is not a listing mistake
			       CASE WHEN s.type IN ('ipv4', 'ipv6', 'cidr', 'asn') THEN coalesce(lr.dropped, 0) ELSE 0 END
			  FROM sources s
			  LEFT JOIN benign b ON b.source = s.name
			  LEFT JOIN per p ON p.source = s.name
			  LEFT JOIN persist ps ON ps.source = s.name
			  LEFT JOIN lastrun lr ON lr.source = s.name
			 ORDER BY s.name`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var m SourceMetrics
			var failures int
			var lastStatus string
			var exclusive, added, removed int64
			if err := rows.Scan(&m.Source, &m.Prior, &failures, &lastStatus, &m.Volume, &exclusive, &m.Shared,
				&m.MeanLatency, &m.Persistence, &added, &removed, &m.Allowlisted, &m.Reserved); err != nil {
				rows.Close()
				return err
			}
			if m.Volume > 0 {
				m.ExclusiveShare = float64(exclusive) / float64(m.Volume)
				m.AddedShare = float64(added) / float64(m.Volume)
				m.ChurnShare = float64(removed) / float64(m.Volume)
			}
			m.Accuracy = Accuracy(m.Volume, m.Allowlisted, m.Reserved)
			m.Health = healthFactor(lastStatus, failures)
			m.Weight = Weight(m)
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		now := time.Now()
		for _, m := range out {
			if _, err := tx.Exec(ctx, `
				INSERT INTO source_metrics (source, computed_at, volume, added_share, churn_share, exclusive_share, shared,
				                            mean_latency_s, persistence_s, accuracy, health, weight, allowlisted, reserved)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
				ON CONFLICT (source) DO UPDATE SET computed_at = excluded.computed_at, volume = excluded.volume,
				    added_share = excluded.added_share, churn_share = excluded.churn_share,
				    exclusive_share = excluded.exclusive_share, shared = excluded.shared,
				    mean_latency_s = excluded.mean_latency_s, persistence_s = excluded.persistence_s,
				    accuracy = excluded.accuracy, health = excluded.health, weight = excluded.weight,
				    allowlisted = excluded.allowlisted, reserved = excluded.reserved`,
				m.Source, now, m.Volume, m.AddedShare, m.ChurnShare, m.ExclusiveShare, m.Shared,
				m.MeanLatency, m.Persistence, m.Accuracy, m.Health, m.Weight, m.Allowlisted, m.Reserved); err != nil {
				return err
			}
		}
		if err := appendMetricsHistory(ctx, tx, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM source_overlap`); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			WITH act AS (SELECT source, indicator_id FROM listings WHERE active),
			vol AS (SELECT source, count(*) AS n FROM act GROUP BY source)
			INSERT INTO source_overlap (a, b, shared, share)
			SELECT x.source, y.source, count(*), count(*)::float8 / v.n
			  FROM act x JOIN act y ON x.indicator_id = y.indicator_id AND x.source <> y.source
			  JOIN vol v ON v.source = x.source
			 GROUP BY x.source, y.source, v.n`)
		if err != nil {
			return err
		}
		return recordListingChange(ctx, tx, 0, ChangeWeights, 0)
	})
	if err != nil {
		return nil, fmt.Errorf("source metrics: %w", err)
	}
	return out, nil
}

// MetricsHistoryKeep is how long source_metrics_history keeps a refresh's metrics.
const MetricsHistoryKeep = 365 * 24 * time.Hour

// appendMetricsHistory copies the metrics just stored (computed at now) into the
// history and drops what is older than MetricsHistoryKeep.
func appendMetricsHistory(ctx context.Context, tx pgx.Tx, now time.Time) error {
	if _, err := tx.Exec(ctx, `
		INSERT INTO source_metrics_history (computed_at, source, volume, added_share, churn_share, exclusive_share, shared,
		                                    mean_latency_s, persistence_s, accuracy, health, weight, allowlisted, reserved)
		SELECT computed_at, source, volume, added_share, churn_share, exclusive_share, shared,
		       mean_latency_s, persistence_s, accuracy, health, weight, allowlisted, reserved
		  FROM source_metrics WHERE computed_at = $1
		ON CONFLICT DO NOTHING`, now); err != nil {
		return fmt.Errorf("metrics history: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM source_metrics_history WHERE computed_at < $1`, now.Add(-MetricsHistoryKeep)); err != nil {
		return fmt.Errorf("metrics history: %w", err)
	}
	return nil
}

// Accuracy is the share of a source's entries that are not benign by reference:
//
//	accuracy = 1 − (allowlisted + reserved) / (volume + reserved)
//
// where allowlisted counts its active entries on an allowlist (a top site, a CDN
// range), covered by an analyst's allow or marked a false positive of it (each
// entry once), and reserved the entries in reserved or private space its last load
// dropped (they never became listings). A source with no entries is not penalised.
func Accuracy(volume, allowlisted, reserved int64) float64 {
	if volume+reserved == 0 {
		return 1
	}
	return 1 - float64(allowlisted+reserved)/float64(volume+reserved)
}

// healthFactor: a dead source counts for nothing, a failing one for half.
func healthFactor(lastStatus string, failures int) float64 {
	switch health(lastStatus, failures) {
	case "dead":
		return 0
	case "failing":
		return 0.5
	}
	return 1
}

// ScoreHalfLife is how fast an indicator's score decays once no source lists it.
const ScoreHalfLife = 7 * 24 * time.Hour

// Score combines the weights of the sources listing an indicator as a noisy-or,
// each decayed by the time since that source last listed it:
//
//	score = 1 − Π (1 − w_s · 2^(−age_s / half-life))
func Score(weights []float64, ages []time.Duration) float64 {
	p := 1.0
	for i, w := range weights {
		decay := math.Pow(2, -float64(ages[i])/float64(ScoreHalfLife))
		p *= 1 - w*decay
	}
	return 1 - p
}
