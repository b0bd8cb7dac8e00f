package storage

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/tip-project/tip/export"
)

// ExportListed streams every actively listed indicator of the given types (all when
// empty) whose score reaches minScore, with the sources listing it, in type/value
// order. The score is the noisy-or of the listing sources' weights (README).
// Allowlisted indicators (a top site, an address in a CDN range) are left out
// unless includeAllowlisted: a blocklist that blocks google.com does more harm than
// good. Analyst overrides act whatever includeAllowlisted says: a value an analyst
// allowed (and what would block it) is never exported, and a listing marked a
// false positive does not count, so an indicator only its false positives list
// is left out.
func (db *DB) ExportListed(ctx context.Context, types []string, minScore float64, includeAllowlisted bool, fn func(export.Row) error) error {
	rows, err := db.pool.Query(ctx, `
		SELECT i.type, i.value,
		       1 - exp(sum(ln(1 - least(coalesce(m.weight, s.prior), 0.999999)))) AS score,
		       array_agg(l.source ORDER BY l.source), array_agg(l.first_seen ORDER BY l.source),
		       array_agg(coalesce(l.category, '') ORDER BY l.source), array_agg(coalesce(l.malware, '') ORDER BY l.source),
		       array_agg(coalesce(l.port, '') ORDER BY l.source), array_agg(coalesce(l.ref, '') ORDER BY l.source),
		       array_agg(coalesce(l.listed_at, '-infinity') ORDER BY l.source), array_agg(s.tlp ORDER BY l.source)
		  FROM listings l
		  JOIN indicators i ON i.id = l.indicator_id
		  JOIN sources s ON s.name = l.source
		  LEFT JOIN source_metrics m ON m.source = l.source
		 WHERE l.active AND (coalesce(cardinality($1::text[]), 0) = 0 OR i.type = ANY($1))
		   AND ($3 OR NOT `+allowlistedSQL+`)
		   AND NOT `+analystAllowedSQL+`
		   AND NOT `+falsePositiveSQL("l.source")+`
		 GROUP BY i.type, i.value
		HAVING 1 - exp(sum(ln(1 - least(coalesce(m.weight, s.prior), 0.999999)))) >= $2
		 ORDER BY i.type, i.value`, types, minScore, includeAllowlisted)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r export.Row
		var cats, malware, ports, refs, tlps []string
		var listed []pgtype.Timestamptz
		if err := rows.Scan(&r.Type, &r.Value, &r.Score, &r.Sources, &r.FirstSeen, &cats, &malware, &ports, &refs, &listed, &tlps); err != nil {
			return err
		}
		r.Context = make([]export.Context, len(r.Sources))
		for i, src := range r.Sources {
			c := export.Context{Source: src, Category: cats[i], Malware: malware[i], Port: ports[i], Ref: refs[i], TLP: tlps[i]}
			if listed[i].InfinityModifier == pgtype.Finite {
				c.Listed = listed[i].Time.UTC()
			}
			r.Context[i] = c
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}
