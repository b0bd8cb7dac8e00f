package storage

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// PDNSRecord is one passive-DNS record in the Common Output Format
// (draft-dulaunoy-dnsop-passive-dns-cof): a name, a record type and the data
// it answered with, when first and last seen, and how many checks saw it.
type PDNSRecord struct {
	RRName    string `json:"rrname"`
	RRType    string `json:"rrtype"`
	RData     string `json:"rdata"`
	TimeFirst int64  `json:"time_first"` // seconds since the epoch
	TimeLast  int64  `json:"time_last"`
	Count     int64  `json:"count"`
}

// First and Last are TimeFirst and TimeLast as times.
func (r PDNSRecord) First() time.Time { return time.Unix(r.TimeFirst, 0).UTC() }
func (r PDNSRecord) Last() time.Time  { return time.Unix(r.TimeLast, 0).UTC() }

// PassiveDNS lists what TIP's flux checks saw, aggregated as the checks record
// it (one row a name and answer, however many checks saw it), most recently
// seen first:
//   - for a domain: every address it answered with (A, AAAA) and every name
//     server it was delegated to (NS);
//   - for a name server's name: its addresses (A, AAAA), and the domains
//     delegated to it (NS records whose rdata it is);
//   - for an address: every domain that answered with it, and every name
//     server that had it.
func (db *DB) PassiveDNS(ctx context.Context, q string) ([]PDNSRecord, error) {
	byIP := false
	if a, err := netip.ParseAddr(q); err == nil {
		q, byIP = a.Unmap().String(), true
	}
	const family = `CASE WHEN family(ip) = 4 THEN 'A' ELSE 'AAAA' END`
	const times = `extract(epoch FROM first_seen)::bigint, extract(epoch FROM last_seen)::bigint, seen, last_seen`
	sql := `
		SELECT domain, ` + family + `, host(ip), ` + times + ` FROM flux_ips WHERE ip = $1::inet AND role = 'a'
		UNION ALL
		SELECT ns, ` + family + `, host(ip), ` + times + ` FROM flux_ns_addrs WHERE ip = $1::inet`
	if !byIP {
		sql = `
		SELECT domain, ` + family + `, host(ip), ` + times + ` FROM flux_ips WHERE domain = $1 AND role = 'a'
		UNION ALL
		SELECT domain, 'NS', ns, ` + times + ` FROM flux_ns WHERE domain = $1 OR ns = $1
		UNION ALL
		SELECT ns, ` + family + `, host(ip), ` + times + ` FROM flux_ns_addrs WHERE ns = $1`
	}
	rows, err := db.pool.Query(ctx, `SELECT rrname, rrtype, rdata, time_first, time_last, count FROM (`+sql+`
		) r(rrname, rrtype, rdata, time_first, time_last, count, last_seen)
		 ORDER BY last_seen DESC, rrname, rrtype, rdata`, q)
	if err != nil {
		return nil, fmt.Errorf("passive DNS of %s: %w", q, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PDNSRecord, error) {
		var p PDNSRecord
		return p, r.Scan(&p.RRName, &p.RRType, &p.RData, &p.TimeFirst, &p.TimeLast, &p.Count)
	})
}

// FluxNSSightings lists when each NS name of a domain was first seen, in order.
func (db *DB) FluxNSSightings(ctx context.Context, domain string) ([]time.Time, error) {
	rows, err := db.pool.Query(ctx, `SELECT first_seen FROM flux_ns WHERE domain = $1 ORDER BY first_seen`, domain)
	if err != nil {
		return nil, fmt.Errorf("NS sightings of %s: %w", domain, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("NS sightings of %s: %w", domain, err)
	}
	return out, nil
}
