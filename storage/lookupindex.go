package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// LookupListing is one listing, active or removed, with everything a lookup
// shows of it (Lookup's columns) but what comes from its source.
type LookupListing struct {
	Type, Value string // the listed indicator
	SourceID    int32
	Active      bool
	FirstSeen   time.Time
	// LastSeen is when the source last listed it once it stopped; zero while it
	// is active (the source's last success stands in). RemovedAt and ListedAt
	// are zero when NULL.
	LastSeen, RemovedAt, ListedAt time.Time
	// Category is the listing's own category; without one (OwnCategory false)
	// it takes its source's.
	Category           string
	OwnCategory        bool
	Malware, Port, Ref string
}

// LookupSource is what a lookup shows of a source beside each of its
// listings. Rank orders the sources by name as the database sorts them.
type LookupSource struct {
	ID          int32
	Name        string
	Rank        int
	Weight      float64   // its computed weight, or its prior until metrics exist
	LastSuccess time.Time // its last successful load (zero: none)
	// Category, TLP and Licence: what it lists and the terms it shares it under.
	Category, TLP, Licence string
}

// lookupListingColumns are the columns scanLookupListings reads, of the
// listing aliased l and its indicator aliased i.
const lookupListingColumns = `i.type, i.value, l.source_id, l.active, l.first_seen, l.last_seen, l.removed_at, l.listed_at,
	l.category, coalesce(l.malware, ''), coalesce(l.port, ''), coalesce(l.ref, '')`

// LookupSnapshot streams every listing, active and removed, to fn, and returns
// the sources and the listing changes recorded within the last window, all in
// one snapshot: an index built from it applies only the changes it does not
// return.
func (db *DB) LookupSnapshot(ctx context.Context, window time.Duration, fn func(LookupListing) error) (seen []ListingChange, sources []LookupSource, err error) {
	err = pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if seen, err = listingChanges(ctx, tx, time.Now().Add(-window)); err != nil {
			return err
		}
		if sources, err = lookupSources(ctx, tx); err != nil {
			return err
		}
		return scanLookupListings(ctx, tx, fn, `SELECT `+lookupListingColumns+`
			  FROM source_listings l JOIN indicators i ON i.id = l.indicator_id`)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("lookup snapshot: %w", err)
	}
	return seen, sources, nil
}

// ChangedLookupListings streams the listings a ChangeListings change stamped,
// as LookupSnapshot does: their state after it, or a later change's when one
// followed.
func (db *DB) ChangedLookupListings(ctx context.Context, seq int64, fn func(LookupListing) error) error {
	err := scanLookupListings(ctx, db.pool, fn, `SELECT `+lookupListingColumns+`
		  FROM source_listings l JOIN indicators i ON i.id = l.indicator_id
		 WHERE l.changed_seq = $1`, seq)
	if err != nil {
		return fmt.Errorf("listings of change %d: %w", seq, err)
	}
	return nil
}

// LookupSources lists every source as a lookup shows it, by Rank. A load
// changes a source's last success whether or not its listings change.
func (db *DB) LookupSources(ctx context.Context) ([]LookupSource, error) {
	return lookupSources(ctx, db.pool)
}

func lookupSources(ctx context.Context, q querier) ([]LookupSource, error) {
	rows, err := q.Query(ctx, `SELECT s.id, s.name, coalesce(m.weight, s.prior), s.last_success, s.category, s.tlp, s.licence
		FROM sources s LEFT JOIN source_metrics m ON m.source = s.name ORDER BY s.name`)
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	rank := 0
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LookupSource, error) {
		var s LookupSource
		var last pgtype.Timestamptz
		err := r.Scan(&s.ID, &s.Name, &s.Weight, &last, &s.Category, &s.TLP, &s.Licence)
		s.LastSuccess = timeOrZero(last)
		s.Rank = rank
		rank++
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	return out, nil
}

func scanLookupListings(ctx context.Context, q querier, fn func(LookupListing) error, sql string, args ...any) error {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var l LookupListing
	var last, removed, listed pgtype.Timestamptz
	var category pgtype.Text
	for rows.Next() {
		if err := rows.Scan(&l.Type, &l.Value, &l.SourceID, &l.Active, &l.FirstSeen, &last, &removed, &listed,
			&category, &l.Malware, &l.Port, &l.Ref); err != nil {
			return err
		}
		l.LastSeen, l.RemovedAt, l.ListedAt = timeOrZero(last), timeOrZero(removed), timeOrZero(listed)
		l.Category, l.OwnCategory = category.String, category.Valid
		if err := fn(l); err != nil {
			return err
		}
	}
	return rows.Err()
}

// timeOrZero is a nullable timestamp's time, zero when NULL.
func timeOrZero(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time
}
