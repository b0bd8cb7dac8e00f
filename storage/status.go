package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The reads behind `tip status`: how many monitors run, what each spam collector
// brought in, and the problems the database keeps.

// FluxCounts counts the monitored domains by monitor state, and the networks.
type FluxCounts struct {
	Watching int64 `json:"watching"`
	Stable   int64 `json:"stable"`
	Paused   int64 `json:"paused"`
	Stopped  int64 `json:"stopped"`
	Networks int64 `json:"networks"` // as the last flux-networks run grouped them
}

// Running is how many monitors should be running: watching, stable or paused.
func (c FluxCounts) Running() int64 { return c.Watching + c.Stable + c.Paused }

// FluxCounts counts flux_domains by monitor state, and the flux networks.
func (db *DB) FluxCounts(ctx context.Context) (FluxCounts, error) {
	var c FluxCounts
	err := db.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE monitor = 'watching'), count(*) FILTER (WHERE monitor = 'stable'),
		       count(*) FILTER (WHERE monitor = 'paused'), count(*) FILTER (WHERE monitor = 'stopped'),
		       count(DISTINCT network)
		  FROM flux_domains WHERE monitor IS NOT NULL OR network IS NOT NULL`).
		Scan(&c.Watching, &c.Stable, &c.Paused, &c.Stopped, &c.Networks)
	if err != nil {
		return c, fmt.Errorf("flux counts: %w", err)
	}
	return c, nil
}

// TopFluxMonitors lists at most n domains whose monitor runs (watching, stable
// or paused), highest triage score first.
func (db *DB) TopFluxMonitors(ctx context.Context, n int) ([]FluxDomain, error) {
	return db.fluxDomains(ctx, "top flux monitors", `
		WHERE monitor IN ('watching', 'stable', 'paused') ORDER BY score DESC, domain LIMIT $1`, n)
}

// SpamCollector is what one spam collector brought in.
type SpamCollector struct {
	// Name is the collector's claim name: archive:<source>, imap:<mailbox>,
	// agent:<agent>.
	Name string `json:"name"`
	// Origin is the origin its mails are seen under; one ending in "/" takes in
	// every origin below it (an archive's months under its index).
	Origin   string     `json:"origin"`
	Mails    int64      `json:"mails"`
	LastMail *time.Time `json:"last_mail,omitempty"` // when a mail of it was last recorded
	// LastRun is when its last run that did not fail started (a failed run
	// forgets it, so the next run is not held back by the interval).
	LastRun *time.Time `json:"last_run,omitempty"`
}

// SpamCollectors fills in the mails and last run of each collector given (Name
// and Origin set), in their order. Given none, it lists one collector per origin
// recorded, as `tip spam stats` groups them (an archive by its index, whose
// claim name the database does not know: its LastRun stays empty).
func (db *DB) SpamCollectors(ctx context.Context, cs []SpamCollector) ([]SpamCollector, error) {
	if len(cs) == 0 {
		rows, err := db.pool.Query(ctx, `SELECT DISTINCT `+originGroup+` FROM spam_sightings ORDER BY 1`)
		if err != nil {
			return nil, fmt.Errorf("spam collectors: %w", err)
		}
		origins, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("spam collectors: %w", err)
		}
		for _, o := range origins {
			cs = append(cs, SpamCollector{Name: o, Origin: o})
		}
	}
	if len(cs) == 0 {
		return nil, nil
	}
	names, origins := make([]string, len(cs)), make([]string, len(cs))
	for i, c := range cs {
		names[i], origins[i] = c.Name, c.Origin
	}
	rows, err := db.pool.Query(ctx, `
		SELECT count(DISTINCT s.sha256), max(s.seen_at), r.last_run
		  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS c(name, origin, i)
		  LEFT JOIN spam_sightings s ON s.origin = c.origin OR (right(c.origin, 1) = '/' AND starts_with(s.origin, c.origin))
		  LEFT JOIN collector_runs r ON r.name = c.name
		 GROUP BY c.i, r.last_run ORDER BY c.i`, names, origins)
	if err != nil {
		return nil, fmt.Errorf("spam collectors: %w", err)
	}
	out := make([]SpamCollector, 0, len(cs))
	for rows.Next() {
		c := cs[len(out)]
		if err := rows.Scan(&c.Mails, &c.LastMail, &c.LastRun); err != nil {
			rows.Close()
			return nil, fmt.Errorf("spam collectors: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("spam collectors: %w", err)
	}
	return out, nil
}

// Problem is one thing that went wrong, as it is stored.
type Problem struct {
	At    time.Time `json:"at,omitzero"` // zero: no time is stored for it
	Where string    `json:"where"`       // e.g. "source et-compromised", "allowlist tranco-top"
	What  string    `json:"what"`        // e.g. dead, malformed, failed
	Error string    `json:"error,omitempty"`
	// Repeats counts the failed runs in a row it ends, while they last.
	Repeats int `json:"repeats,omitempty"`
	// Recovered says a later run went well.
	Recovered bool `json:"recovered,omitempty"`
}

// Problems lists at most limit problems the database keeps, newest first (those
// with no time first: they are current): each source's last failed run (dead,
// malformed or failed), each allowlist whose last fetch failed (the time of that
// fetch is not kept), and each spam archive recorded with an error.
func (db *DB) Problems(ctx context.Context, limit int) ([]Problem, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT at, kind || ' ' || name, what, error, repeats, recovered FROM (
		    SELECT f.finished_at AS at, 'source' AS kind, s.name, f.status AS what, f.error,
		           CASE WHEN f.id = l.id THEN s.consecutive_failures ELSE 0 END AS repeats, f.id <> l.id AS recovered
		      FROM sources s
		      JOIN LATERAL (SELECT id, finished_at, status, error FROM source_runs
		                     WHERE source = s.name AND status IN ('dead', 'malformed', 'failed')
		                     ORDER BY finished_at DESC, id DESC LIMIT 1) f ON true
		      JOIN LATERAL (SELECT id FROM source_runs WHERE source = s.name ORDER BY finished_at DESC, id DESC LIMIT 1) l ON true
		    UNION ALL
		    SELECT NULL, 'allowlist', name, 'fetch failed', error, 0, false FROM allowlists WHERE error <> ''
		    UNION ALL
		    SELECT ingested_at, 'archive', url, 'ingest failed', error, 0, false FROM spam_archives WHERE error <> ''
		) p
		ORDER BY at DESC NULLS FIRST, 2 LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("problems: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Problem, error) {
		var p Problem
		var at *time.Time
		err := r.Scan(&at, &p.Where, &p.What, &p.Error, &p.Repeats, &p.Recovered)
		if at != nil {
			p.At = *at
		}
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("problems: %w", err)
	}
	return out, nil
}
