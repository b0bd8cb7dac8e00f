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
}

// Lookup finds the listings of a normalised indicator, and of what covers it: the
// CIDR blocks holding an address, the listed domain of a URL's host or a domain's
// registrable domain. Active listings come first.
func (db *DB) Lookup(ctx context.Context, typ, value, host, registrable string) ([]Listing, error) {
	var addr *string // only addresses and blocks are looked up in CIDRs
	if typ == "ipv4" || typ == "ipv6" || typ == "cidr" {
		addr = &value
	}
	rows, err := db.Pool.Query(ctx, `
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
		SELECT l.source, h.type, h.value, h.match, l.first_seen, l.last_seen, l.active, l.removed_at
		  FROM hits h JOIN listings l ON l.indicator_id = h.id
		 ORDER BY l.active DESC, l.first_seen, l.source`, typ, value, host, registrable, addr)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", value, err)
	}
	defer rows.Close()
	var out []Listing
	for rows.Next() {
		var l Listing
		if err := rows.Scan(&l.Source, &l.Type, &l.Value, &l.Match, &l.FirstSeen, &l.LastSeen, &l.Active, &l.RemovedAt); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}
