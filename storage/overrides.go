package storage

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/net/publicsuffix"

	"github.com/tip-project/tip/feeds"
)

// Override kinds.
const (
	OverrideAllow = "allow" // never export the value (nor what would block it)
	OverrideFP    = "fp"    // a source's listing of the value is a false positive
)

// Override is one analyst decision, standing or removed.
type Override struct {
	ID    int64  `json:"id"`
	Kind  string `json:"kind"`  // allow or fp
	Match string `json:"match"` // exact, cidr, or suffix (a domain and its subdomains)
	Type  string `json:"type"`  // the indicator type of Value
	Value string `json:"value"` // normalised; a suffix override holds the domain itself
	// Source is the source whose listing a false positive is; empty for every
	// source listing the value (and for an allow).
	Source    string     `json:"source,omitempty"`
	Reason    string     `json:"reason"`
	Author    string     `json:"author"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RemovedAt *time.Time `json:"removed_at,omitempty"`
	RemovedBy string     `json:"removed_by,omitempty"`

	net *netip.Prefix
}

// Target is what the override applies to as an analyst writes it:
// "*.example.com" for a domain and its subdomains.
func (o Override) Target() string {
	if o.Match == "suffix" {
		return "*." + o.Value
	}
	return o.Value
}

// Standing says whether the override acts at t: not removed, not expired.
func (o Override) Standing(t time.Time) bool {
	return o.RemovedAt == nil && (o.ExpiresAt == nil || o.ExpiresAt.After(t))
}

// ParseOverrideTarget reads what an analyst allows or marks: an indicator as the
// feeds write it (address, URL, hash, ASN, domain), a CIDR, or "*.example.com"
// (also ".example.com") for a domain and every name below it. The value is
// normalised as the feeds normalise theirs, so it meets the listings.
func ParseOverrideTarget(raw string) (Override, error) {
	raw = strings.TrimSpace(raw)
	var typ feeds.Type
	suffix := false
	switch {
	case raw == "":
		return Override{}, errors.New("empty value")
	case strings.HasPrefix(raw, "*.") || strings.HasPrefix(raw, "."):
		suffix, typ = true, feeds.Domain
		raw = strings.TrimPrefix(strings.TrimPrefix(raw, "*"), ".")
	case strings.Contains(raw, "://"):
		typ = feeds.URL
	case strings.Contains(raw, "/"):
		typ = feeds.CIDR
	case isHex(raw, 32):
		typ = feeds.MD5
	case isHex(raw, 40):
		typ = feeds.SHA1
	case isHex(raw, 64):
		typ = feeds.SHA256
	case asnPattern.MatchString(raw):
		typ = feeds.ASN
	default:
		typ = feeds.Domain
		if _, err := netip.ParseAddr(raw); err == nil {
			typ = "ip"
		}
	}
	ind, drop, err := feeds.Normalize(typ, raw)
	if err != nil {
		return Override{}, fmt.Errorf("%q: %w", raw, err)
	}
	switch {
	case drop == "public-suffix" && suffix && icannSuffix(ind.Value):
		return Override{}, fmt.Errorf("*.%s would allow a whole public suffix (every domain registered under it); name the domains to allow", ind.Value)
	case drop != "" && drop != "public-suffix":
		return Override{}, fmt.Errorf("%s is %s space: TIP drops it from every feed, so there is nothing to override", raw, drop)
	}
	o := Override{Match: "exact", Type: string(ind.Type), Value: ind.Value}
	switch ind.Type {
	case feeds.IPv4, feeds.IPv6:
		a := netip.MustParseAddr(ind.Value)
		p := netip.PrefixFrom(a, a.BitLen())
		o.net = &p
	case feeds.CIDR:
		p := netip.MustParsePrefix(ind.Value)
		o.Match, o.net = "cidr", &p
	}
	if suffix {
		o.Match = "suffix"
	}
	return o, nil
}

// icannSuffix says whether name is a suffix under which anyone registers domains
// (com, co.uk), unlike a company's own suffix (blogspot.com) that one may trust.
func icannSuffix(name string) bool {
	ps, icann := publicsuffix.PublicSuffix(name)
	return icann && ps == name
}

var asnPattern = regexp.MustCompile(`(?i)^AS\d+$`)

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// standingSQL is true for an override o that acts now.
const standingSQL = `(o.removed_at IS NULL AND (o.expires_at IS NULL OR o.expires_at > now()))`

// urlHostSQL extracts the host of a normalised URL held in the expression %s.
const urlHostSQL = `substring(%s FROM '^[a-z][a-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#\[\]]+)')`

// coversSQL is true when override o covers the indicator of type typ and value
// value (SQL expressions); net is the indicator's block, NULL when it is not an
// address or CIDR. An override covers what it names and whatever an export of
// it would block: an address or block overlapping the allowed one (nft would drop
// the allowed address), a domain at or below an allowed suffix, the parent
// domains of an allowed name (RPZ blocks a listed domain's subdomains) and URLs
// on an allowed host.
func coversSQL(typ, value, net string) string {
	name := fmt.Sprintf(`(CASE WHEN %s = 'url' THEN `+urlHostSQL+` ELSE %s END)`, typ, value, value)
	return fmt.Sprintf(`(
	    (o.match = 'exact' AND o.type = %[1]s AND o.value = %[2]s)
	 OR (o.net IS NOT NULL AND o.net && %[3]s)
	 OR (o.type = 'domain' AND %[1]s IN ('domain', 'url') AND (
	        %[4]s = o.value
	     OR (o.match = 'suffix' AND right(%[4]s, length(o.value) + 1) = '.' || o.value)
	     OR (%[1]s = 'domain' AND right(o.value, length(%[2]s) + 1) = '.' || %[2]s))))`, typ, value, net, name)
}

// indicatorNetSQL is the block of the indicator aliased i, NULL for the other types.
const indicatorNetSQL = `(CASE WHEN i.type IN ('ipv4', 'ipv6', 'cidr') THEN i.value::inet END)`

// analystAllowedSQL is true when a standing allow override covers the indicator
// aliased i.
var analystAllowedSQL = `EXISTS (SELECT 1 FROM overrides o WHERE o.kind = 'allow' AND ` + standingSQL +
	` AND ` + coversSQL("i.type", "i.value", indicatorNetSQL) + `)`

// falsePositiveSQL is true when a standing fp override marks the listing of the
// indicator aliased i by the source named in the expression source.
func falsePositiveSQL(source string) string {
	return `EXISTS (SELECT 1 FROM overrides o WHERE o.kind = 'fp' AND ` + standingSQL +
		` AND o.type = i.type AND o.value = i.value AND o.source IN ('', ` + source + `))`
}

// ErrNoListing means a false positive names a value no source (or not the named
// source) lists.
var ErrNoListing = errors.New("not listed")

// AddOverride records an override, replacing the standing one of the same kind
// for the same value (and source): the replaced one is kept, stamped removed by
// the new author. A false positive must name a value that is actively listed, by
// its source when it names one.
func (db *DB) AddOverride(ctx context.Context, o Override) (Override, error) {
	if o.Reason == "" || o.Author == "" {
		return o, errors.New("an override needs a reason and an author")
	}
	if o.Kind != OverrideAllow && o.Kind != OverrideFP {
		return o, fmt.Errorf("unknown override kind %q", o.Kind)
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if o.Kind == OverrideFP {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM listings l JOIN indicators i ON i.id = l.indicator_id
				WHERE l.active AND i.type = $1 AND i.value = $2 AND ($3 = '' OR l.source = $3)`,
				o.Type, o.Value, o.Source).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				by := "any source"
				if o.Source != "" {
					by = "source " + o.Source
				}
				return fmt.Errorf("%w: %s %s is not listed by %s now (`tip lookup %s` shows what lists it)", ErrNoListing, o.Type, o.Value, by, o.Value)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE overrides SET removed_at = now(), removed_by = $5
			WHERE removed_at IS NULL AND kind = $1 AND type = $2 AND value = $3 AND source = $4`,
			o.Kind, o.Type, o.Value, o.Source, o.Author); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO overrides (kind, match, type, value, net, source, reason, author, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, created_at`,
			o.Kind, o.Match, o.Type, o.Value, o.net, o.Source, o.Reason, o.Author, o.ExpiresAt).Scan(&o.ID, &o.CreatedAt); err != nil {
			return err
		}
		return recordListingChange(ctx, tx, 0, ChangeSuppressions, 0)
	})
	if err != nil {
		return o, fmt.Errorf("record %s override of %s: %w", o.Kind, o.Target(), err)
	}
	return o, nil
}

// RemoveOverride stamps the standing override of a kind for a value removed by
// author, and returns it; ErrNotFound when none stands. An fp override is
// removed for one source (or the every-source one when source is empty).
func (db *DB) RemoveOverride(ctx context.Context, kind string, target Override, source, author string) (Override, error) {
	var got []Override
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE overrides o SET removed_at = now(), removed_by = $6
			WHERE `+standingSQL+` AND kind = $1 AND match = $2 AND type = $3 AND value = $4 AND source = $5
			RETURNING `+overrideColumns, kind, target.Match, target.Type, target.Value, source, author)
		if err != nil {
			return err
		}
		if got, err = pgx.CollectRows(rows, scanOverride); err != nil || len(got) == 0 {
			return err
		}
		return recordListingChange(ctx, tx, 0, ChangeSuppressions, 0)
	})
	if err != nil {
		return Override{}, fmt.Errorf("remove %s override of %s: %w", kind, target.Target(), err)
	}
	if len(got) == 0 {
		return Override{}, fmt.Errorf("%w: no standing %s override of %s", ErrNotFound, kind, target.Target())
	}
	return got[0], nil
}

const overrideColumns = `o.id, o.kind, o.match, o.type, o.value, o.source, o.reason, o.author, o.created_at, o.expires_at, o.removed_at, o.removed_by`

func scanOverride(r pgx.CollectableRow) (Override, error) {
	var o Override
	err := r.Scan(&o.ID, &o.Kind, &o.Match, &o.Type, &o.Value, &o.Source, &o.Reason, &o.Author, &o.CreatedAt,
		&o.ExpiresAt, &o.RemovedAt, &o.RemovedBy)
	return o, err
}

// Overrides lists the overrides of a kind (every kind when empty), the newest
// first: the standing ones, or with all every one ever recorded, removed and
// expired included. limit <= 0 lists them all.
func (db *DB) Overrides(ctx context.Context, kind string, all bool, limit int) ([]Override, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.pool.Query(ctx, `SELECT `+overrideColumns+` FROM overrides o
		WHERE ($1 = '' OR o.kind = $1) AND ($2 OR `+standingSQL+`)
		ORDER BY o.created_at DESC, o.id DESC LIMIT nullif($3, -1)`, kind, all, limit)
	if err != nil {
		return nil, fmt.Errorf("overrides: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanOverride)
	if err != nil {
		return nil, fmt.Errorf("overrides: %w", err)
	}
	return out, nil
}

// OverrideCounts counts the standing overrides by kind, and those ever recorded.
type OverrideCounts struct {
	Allowed        int64 `json:"allowed"`
	FalsePositives int64 `json:"false_positives"`
	Recorded       int64 `json:"recorded"` // every override ever made, removed and expired included
}

// CountOverrides counts the overrides.
func (db *DB) CountOverrides(ctx context.Context) (OverrideCounts, error) {
	var c OverrideCounts
	err := db.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE o.kind = 'allow' AND `+standingSQL+`),
		count(*) FILTER (WHERE o.kind = 'fp' AND `+standingSQL+`), count(*) FROM overrides o`).
		Scan(&c.Allowed, &c.FalsePositives, &c.Recorded)
	if err != nil {
		return c, fmt.Errorf("override counts: %w", err)
	}
	return c, nil
}

// OverridesCovering lists the standing overrides acting on a normalised
// indicator: the allows covering it (as exports apply them) and the false
// positives marked on it.
func (db *DB) OverridesCovering(ctx context.Context, typ, value string) ([]Override, error) {
	var net *string // only addresses and blocks meet CIDR overrides
	if typ == "ipv4" || typ == "ipv6" || typ == "cidr" {
		net = &value
	}
	rows, err := db.pool.Query(ctx, `SELECT `+overrideColumns+` FROM overrides o
		WHERE `+standingSQL+` AND CASE o.kind
		    WHEN 'allow' THEN `+coversSQL("$1::text", "$2::text", "$3::inet")+`
		    ELSE o.type = $1 AND o.value = $2 END
		ORDER BY o.kind, o.created_at DESC, o.id DESC`, typ, value, net)
	if err != nil {
		return nil, fmt.Errorf("overrides of %s: %w", value, err)
	}
	out, err := pgx.CollectRows(rows, scanOverride)
	if err != nil {
		return nil, fmt.Errorf("overrides of %s: %w", value, err)
	}
	return out, nil
}
