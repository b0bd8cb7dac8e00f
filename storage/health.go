package storage

import (
	"context"
	"fmt"
	"time"
)

// DeadAfter is how many consecutive failed runs flag a source as dead.
const DeadAfter = 3

// SourceHealth is one line of `tip sources`: a source's last run and listings.
type SourceHealth struct {
	Name                string    `json:"name"`
	Format              string    `json:"format"`
	Enabled             bool      `json:"enabled"`
	Prior               float64   `json:"prior"`
	Active              int64     `json:"active_listings"`
	LastStatus          string    `json:"last_status"`
	LastRun             time.Time `json:"last_run"`
	LastHTTPStatus      int       `json:"last_http_status"`
	LastEntries         int       `json:"last_entries"`
	LastAdded           int       `json:"last_added"`
	LastRemoved         int       `json:"last_removed"`
	LastBad             int       `json:"last_bad_lines"`
	LastError           string    `json:"last_error,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Health              string    `json:"health"` // ok, failing, dead, never-run
	// Metrics of the last refresh (zero before the first).
	Weight         float64  `json:"weight"`
	ExclusiveShare float64  `json:"exclusive_share"`
	MeanLatency    *float64 `json:"mean_latency_s,omitempty"`
	Accuracy       float64  `json:"accuracy"`
	Allowlisted    int64    `json:"allowlisted"`
	Reserved       int64    `json:"reserved"`
}

// SourcesHealth lists every known source with its latest run.
func (db *DB) SourcesHealth(ctx context.Context) ([]SourceHealth, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT s.name, s.format, s.enabled, s.prior, s.consecutive_failures,
		       (SELECT count(*) FROM listings l WHERE l.source = s.name AND l.active),
		       coalesce(r.status, ''), coalesce(r.finished_at, 'epoch'), coalesce(r.http_status, 0),
		       coalesce(r.entries, 0), coalesce(r.added, 0), coalesce(r.removed, 0), coalesce(r.bad_lines, 0), coalesce(r.error, ''),
		       coalesce(m.weight, 0), coalesce(m.exclusive_share, 0), m.mean_latency_s,
		       coalesce(m.accuracy, 1), coalesce(m.allowlisted, 0), coalesce(m.reserved, 0)
		  FROM sources s
		  LEFT JOIN source_metrics m ON m.source = s.name
		  LEFT JOIN LATERAL (SELECT * FROM source_runs WHERE source = s.name ORDER BY finished_at DESC, id DESC LIMIT 1) r ON true
		 ORDER BY s.name`)
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	defer rows.Close()
	var out []SourceHealth
	for rows.Next() {
		var h SourceHealth
		if err := rows.Scan(&h.Name, &h.Format, &h.Enabled, &h.Prior, &h.ConsecutiveFailures, &h.Active, &h.LastStatus, &h.LastRun,
			&h.LastHTTPStatus, &h.LastEntries, &h.LastAdded, &h.LastRemoved, &h.LastBad, &h.LastError,
			&h.Weight, &h.ExclusiveShare, &h.MeanLatency, &h.Accuracy, &h.Allowlisted, &h.Reserved); err != nil {
			return nil, err
		}
		h.Health = health(h.LastStatus, h.ConsecutiveFailures)
		out = append(out, h)
	}
	return out, rows.Err()
}

// health is the one rule for a source's state: dead when gone (404/410) or failing
// DeadAfter runs in a row, failing after any failure, never-run before its first run.
func health(lastStatus string, failures int) string {
	switch {
	case lastStatus == "":
		return "never-run"
	case lastStatus == "dead" || failures >= DeadAfter:
		return "dead"
	case failures > 0:
		return "failing"
	}
	return "ok"
}
