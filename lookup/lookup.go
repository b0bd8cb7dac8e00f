// Package lookup answers "who lists this, since when, and why": the document
// `tip lookup --json` prints and the API's /v1/lookup returns. The listings,
// the allowlist entries and the analyst overrides covering one value, and its
// score. SQL answers one value at a time (FromDB); the API answers from an index
// kept in memory.
package lookup

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/storage"
)

// Document is what is known of one looked-up value.
type Document struct {
	Query       feeds.Indicator    `json:"query"`
	Score       float64            `json:"score"`
	Listings    []storage.Listing  `json:"listings"`
	Allowlisted []storage.AllowHit `json:"allowlisted"`
	Overrides   []storage.Override `json:"overrides"`
}

// GuessType says what a looked-up value is: a URL, a CIDR block, an address
// or a domain.
func GuessType(arg string) feeds.Type {
	switch {
	case strings.Contains(arg, "://"):
		return feeds.URL
	case strings.Contains(arg, "/"):
		return feeds.CIDR
	}
	if ip, err := netip.ParseAddr(arg); err == nil {
		if ip.Unmap().Is4() {
			return feeds.IPv4
		}
		return feeds.IPv6
	}
	return feeds.Domain
}

// Query is a value to look up, normalised: the indicator, and for a URL its
// host (the host of everything else is the value itself).
type Query struct {
	Indicator feeds.Indicator
	Host      string
}

// Parse normalises a looked-up value as the feeds are normalised. A value in
// private or reserved space is an error: TIP drops it from every feed.
func Parse(arg string) (Query, error) {
	typ := GuessType(arg)
	ind, drop, err := feeds.Normalize(typ, arg)
	if err != nil {
		return Query{}, fmt.Errorf("%q is not a valid %s: %v", arg, typ, err)
	}
	if drop != "" {
		return Query{}, fmt.Errorf("%s is %s space: TIP drops it from every feed", arg, drop)
	}
	q := Query{Indicator: ind, Host: ind.Value}
	if ind.Type == feeds.URL {
		if u, err := url.Parse(ind.Value); err == nil {
			q.Host = u.Hostname()
		}
	}
	return q, nil
}

// FromDB answers a query with SQL, at time now (the score's decay).
func FromDB(ctx context.Context, db *storage.DB, q Query, now time.Time) (Document, error) {
	ind := q.Indicator
	d := Document{Query: ind}
	var err error
	if d.Listings, err = db.Lookup(ctx, string(ind.Type), ind.Value, q.Host, ind.Registrable); err != nil {
		return d, err
	}
	if err := d.suppressions(ctx, db, q); err != nil {
		return d, err
	}
	d.normalize(now)
	return d, nil
}

// suppressions reads the allowlist entries and the standing overrides covering
// the query, which both FromDB and the Index answer with SQL (indexed, and
// an override may expire without a change).
func (d *Document) suppressions(ctx context.Context, db *storage.DB, q Query) error {
	ind := q.Indicator
	var err error
	if d.Allowlisted, err = db.AllowlistHits(ctx, string(ind.Type), ind.Value, q.Host, ind.Registrable); err != nil {
		return err
	}
	d.Overrides, err = db.OverridesCovering(ctx, string(ind.Type), ind.Value)
	return err
}

// normalize gives empty lists rather than null and sets the score.
func (d *Document) normalize(now time.Time) {
	if d.Listings == nil {
		d.Listings = []storage.Listing{}
	}
	if d.Allowlisted == nil {
		d.Allowlisted = []storage.AllowHit{}
	}
	if d.Overrides == nil {
		d.Overrides = []storage.Override{}
	}
	d.Score = storage.ScoreListings(d.Listings, now)
}
