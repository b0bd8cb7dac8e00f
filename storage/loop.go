package storage

import (
	"context"
	"fmt"
)

// LoopCounts measures TIP's main loop in one look: what each module has recorded,
// and what crossed from one module to the next (spam and blacklist domains to
// triage, flux agents and spam senders back into the blacklists). `tip dev demo`
// waits on it and summarises it.
type LoopCounts struct {
	Sources       int   `json:"sources"`        // blacklist sources known (feeds and TIP's own)
	SourcesRun    int   `json:"sources_run"`    // ...of which have run at least once
	SourcesLoaded int   `json:"sources_loaded"` // ...whose last run loaded or found the feed unchanged
	Weighted      int   `json:"weighted"`       // sources with metrics and a weight
	Listed        int64 `json:"listed"`         // active listings of every source at the last weighting (counting them is slow)

	Mails int64 `json:"mails"` // spam mails recorded
	// SpamOrigins counts mails by where they were seen (archive:URL, imap:NAME,
	// agent:NAME); a mail seen twice counts in both.
	SpamOrigins map[string]int64 `json:"spam_origins"`

	// Triaged counts flux_domains rows by the module that first asked for them
	// (spam-collect, blacklist-refresh, cli); Verdicts by verdict.
	Triaged  map[string]int `json:"triaged"`
	Verdicts map[string]int `json:"verdicts"`
	// Flux counts the monitors by state, and the networks.
	Flux   FluxCounts `json:"flux"`
	Checks int64      `json:"checks"` // checks recorded by the monitors (flux_observations, and flux_hours past the window)

	// Own is, for TIP's own sources (tip-flux-agents, tip-spamtrap-senders), what
	// they list and what the last weighting measured of them.
	Own map[string]OwnSource `json:"own"`
}

// OwnSource is one of TIP's own sources in the blacklists.
type OwnSource struct {
	Active   int64   `json:"active"`   // active listings now
	Measured int64   `json:"measured"` // volume at the last weighting (0 before one saw its listings)
	Weight   float64 `json:"weight"`
}

// LoopCounts reads the counts; ownSources names TIP's own sources.
func (db *DB) LoopCounts(ctx context.Context, ownSources ...string) (LoopCounts, error) {
	c := LoopCounts{Triaged: map[string]int{}, Verdicts: map[string]int{}, Own: map[string]OwnSource{},
		SpamOrigins: map[string]int64{}}
	err := db.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM sources),
		       (SELECT count(DISTINCT source) FROM source_runs),
		       (SELECT count(*) FROM sources s WHERE (SELECT status FROM source_runs r WHERE r.source = s.name
		                                              ORDER BY finished_at DESC, id DESC LIMIT 1) IN ('loaded', 'unchanged')),
		       (SELECT count(*) FROM source_metrics WHERE weight > 0),
		       (SELECT coalesce(sum(volume), 0) FROM source_metrics),
		       (SELECT count(*) FROM spam_messages),
		       (SELECT count(*) FROM flux_observations) + (SELECT coalesce(sum(checks), 0) FROM flux_hours)`).
		Scan(&c.Sources, &c.SourcesRun, &c.SourcesLoaded, &c.Weighted, &c.Listed, &c.Mails, &c.Checks)
	if err != nil {
		return c, fmt.Errorf("loop counts: %w", err)
	}
	if c.Flux, err = db.FluxCounts(ctx); err != nil {
		return c, err
	}
	rows, err := db.pool.Query(ctx, `
		SELECT 'origin', origin, count(*) FROM flux_domains GROUP BY origin
		UNION ALL SELECT 'verdict', verdict, count(*) FROM flux_domains GROUP BY verdict
		UNION ALL SELECT 'spam', origin, count(DISTINCT sha256) FROM spam_sightings GROUP BY origin`)
	if err != nil {
		return c, fmt.Errorf("loop counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, key string
		var n int64
		if err := rows.Scan(&kind, &key, &n); err != nil {
			return c, err
		}
		if kind == "spam" {
			c.SpamOrigins[key] = n
			continue
		}
		map[string]map[string]int{"origin": c.Triaged, "verdict": c.Verdicts}[kind][key] = int(n)
	}
	if err := rows.Err(); err != nil {
		return c, err
	}
	for _, name := range ownSources {
		var o OwnSource
		err := db.pool.QueryRow(ctx, `
			SELECT (SELECT count(*) FROM listings WHERE source = $1 AND active),
			       coalesce((SELECT volume FROM source_metrics WHERE source = $1), 0),
			       coalesce((SELECT weight FROM source_metrics WHERE source = $1), 0)`, name).Scan(&o.Active, &o.Measured, &o.Weight)
		if err != nil {
			return c, fmt.Errorf("loop counts: %s: %w", name, err)
		}
		c.Own[name] = o
	}
	return c, nil
}
