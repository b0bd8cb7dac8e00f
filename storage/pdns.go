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

// PassiveDNS lists what TIP's flux checks saw: for an address, every
// monitored or triaged domain that answered with it; for a domain, every
// address it answered with (A and AAAA). The records come from flux_ips,
// which the checks keep aggregated (one row a domain and address, however
// many checks saw it), most recently seen first.
func (db *DB) PassiveDNS(ctx context.Context, q string) ([]PDNSRecord, error) {
	where, arg := "f.domain = $1", any(q)
	if a, err := netip.ParseAddr(q); err == nil {
		where, arg = "f.ip = $1::inet", a.Unmap().String()
	}
	rows, err := db.pool.Query(ctx, `
		SELECT f.domain, CASE WHEN family(f.ip) = 4 THEN 'A' ELSE 'AAAA' END, host(f.ip),
		       extract(epoch FROM f.first_seen)::bigint, extract(epoch FROM f.last_seen)::bigint, f.seen
		  FROM flux_ips f
		 WHERE `+where+` AND f.role = 'a'
		 ORDER BY f.last_seen DESC, f.domain, f.ip`, arg)
	if err != nil {
		return nil, fmt.Errorf("passive DNS of %s: %w", q, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PDNSRecord, error) {
		var p PDNSRecord
		return p, r.Scan(&p.RRName, &p.RRType, &p.RData, &p.TimeFirst, &p.TimeLast, &p.Count)
	})
}
