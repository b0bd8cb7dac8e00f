package storage

import (
	"context"
	"fmt"
	"time"
)

// Listing says that a source lists (or listed) an indicator.
type Listing struct {
	Source    string     `json:"source"`
	Type      string     `json:"type"`
	Value     string     `json:"value"` // the listed indicator: the query itself or a CIDR/domain covering it
	Match     string     `json:"match"` // exact, cidr (a listed block holds the address), domain (a listed registrable domain), url-host
	FirstSeen time.Time  `json:"first_seen"`
	LastSeen  time.Time  `json:"last_seen"`
	Active    bool       `json:"active"`
	RemovedAt *time.Time `json:"removed_at,omitempty"`
	Weight    float64    `json:"weight"` // the source's computed weight (its prior until metrics exist)
	// What the source says of it (empty where it does not say): what it is
	// (the entry's category, else the source's), the malware family or
	// phishing target, the C2 port, the source's reference, and when the
	// source says it listed it.
	Category string     `json:"category,omitempty"`
	Malware  string     `json:"malware,omitempty"`
	Port     string     `json:"port,omitempty"`
	Ref      string     `json:"ref,omitempty"`
	Listed   *time.Time `json:"listed,omitempty"`
	// The source's terms: its TLP and licence.
	TLP     string `json:"tlp"`
	Licence string `json:"licence,omitempty"`
}

// Lookup finds the listings of a normalised indicator, and of what covers it: the
// CIDR blocks holding an address, the listed domain of a URL's host or a domain's
// registrable domain. Active listings come first.
func (db *DB) Lookup(ctx context.Context, typ, value, host, registrable string) ([]Listing, error) {
	var addr *string // only addresses and blocks are looked up in CIDRs
	if typ == "ipv4" || typ == "ipv6" || typ == "cidr" {
		addr = &value
	}
	rows, err := db.pool.Query(ctx, `
		WITH hits AS (
		    SELECT i.id, i.type, i.value, 'exact' AS match FROM indicators i WHERE i.type = $1 AND i.value = $2
		    UNION ALL
		    SELECT i.id, i.type, i.value, 'cidr' FROM indicators i
		     WHERE i.type = 'cidr' AND i.value <> $2
		       AND family(i.value::cidr) = family($5::inet) AND i.value::cidr >>= $5::inet
		    UNION ALL
		    SELECT i.id, i.type, i.value, 'domain' FROM indicators i
		     WHERE $1 IN ('domain', 'url') AND i.type = 'domain' AND i.value <> $2
		       AND i.value IN ($3, $4)
		)
		SELECT l.source, h.type, h.value, h.match, l.first_seen, l.last_seen, l.active, l.removed_at,
		       coalesce(m.weight, s.prior), coalesce(l.category, ''), coalesce(l.malware, ''), coalesce(l.port, ''),
		       coalesce(l.ref, ''), l.listed_at, s.tlp, s.licence
		  FROM hits h JOIN listings l ON l.indicator_id = h.id
		  JOIN sources s ON s.name = l.source
		  LEFT JOIN source_metrics m ON m.source = l.source
		 ORDER BY l.active DESC, l.first_seen, l.source, h.match, h.value COLLATE "C"`, typ, value, host, registrable, addr)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", value, err)
	}
	defer rows.Close()
	var out []Listing
	for rows.Next() {
		var l Listing
		if err := rows.Scan(&l.Source, &l.Type, &l.Value, &l.Match, &l.FirstSeen, &l.LastSeen, &l.Active, &l.RemovedAt, &l.Weight,
			&l.Category, &l.Malware, &l.Port, &l.Ref, &l.Listed, &l.TLP, &l.Licence); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// ScoreListings scores an indicator from its listings at time now: active listings
// count in full, removed ones decay from their removal.
func ScoreListings(ls []Listing, now time.Time) float64 {
	best := map[string]Listing{} // one vote per source: its most recent listing
	for _, l := range ls {
		if b, ok := best[l.Source]; !ok || (l.Active && !b.Active) || l.LastSeen.After(b.LastSeen) {
			best[l.Source] = l
		}
	}
	var ws []float64
	var ages []time.Duration
	for _, l := range best {
		age := time.Duration(0)
		if !l.Active && l.RemovedAt != nil {
			age = now.Sub(*l.RemovedAt)
		}
		ws = append(ws, l.Weight)
		ages = append(ages, age)
	}
	return Score(ws, ages)
}
