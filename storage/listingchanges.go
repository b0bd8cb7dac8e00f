package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The kinds of listing change (listing_changes.kind).
const (
	ChangeListings     = "listings"     // a load changed a source's listings
	ChangeWeights      = "weights"      // a metrics run changed the sources' weights
	ChangeSuppressions = "suppressions" // an override or an allowlist changed what is suppressed
)

// listingsChannel is the NOTIFY channel of listing changes.
const listingsChannel = "tip_listings"

// recordListingChange records a change in the transaction that makes it (seq
// from listing_change_seq; 0 takes the next) and notifies the listeners when it
// commits. Changes older than a week are pruned: a listener that was away
// longer builds its index again.
func recordListingChange(ctx context.Context, tx pgx.Tx, seq int64, kind string, sourceID int32) error {
	var src *int32
	if kind == ChangeListings {
		src = &sourceID
	}
	_, err := tx.Exec(ctx, `
		WITH pruned AS (DELETE FROM listing_changes WHERE at < now() - interval '7 days')
		INSERT INTO listing_changes (seq, kind, source_id)
		VALUES (CASE WHEN $1 = 0 THEN nextval('listing_change_seq') ELSE $1 END, $2, $3)`, seq, kind, src)
	if err != nil {
		return fmt.Errorf("record listing change: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, listingsChannel, kind); err != nil {
		return fmt.Errorf("notify listing change: %w", err)
	}
	return nil
}

// ListingChange is one recorded change of what is listed.
type ListingChange struct {
	Seq      int64
	Kind     string // ChangeListings, ChangeWeights or ChangeSuppressions
	SourceID int32  // the source whose listings changed (ChangeListings)
	At       time.Time
}

// IndexedListing is one listing as the live zones index it.
type IndexedListing struct {
	IndicatorID int64
	Type, Value string
	SourceID    int32
	Active      bool
}

// SourceWeight is a source's weight in scores: its computed weight, or its
// prior until metrics exist.
type SourceWeight struct {
	ID     int32
	Name   string
	Weight float64
}

// Suppressed is what the exports and live zones leave out of the listings:
// indicators on an allowlist or allowed by an analyst, and the listings an
// analyst marked false positives.
type Suppressed struct {
	Indicators map[int64]bool
	Listings   map[[2]int64]bool // {indicator ID, source ID}
}

// ListingSnapshot streams every active listing to fn, and returns the listing
// changes recorded within the last window, all in one snapshot: a listener that
// indexes the snapshot applies only the changes it does not return.
func (db *DB) ListingSnapshot(ctx context.Context, window time.Duration, fn func(IndexedListing) error) (seen []ListingChange, err error) {
	err = pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if seen, err = listingChanges(ctx, tx, time.Now().Add(-window)); err != nil {
			return err
		}
		return scanListings(ctx, tx, fn, `
			SELECT l.indicator_id, i.type, i.value, l.source_id, true
			  FROM source_listings l JOIN indicators i ON i.id = l.indicator_id
			 WHERE l.active`)
	})
	if err != nil {
		return nil, fmt.Errorf("listing snapshot: %w", err)
	}
	return seen, nil
}

// ListingChanges lists the changes recorded since since, oldest first.
func (db *DB) ListingChanges(ctx context.Context, since time.Time) ([]ListingChange, error) {
	return listingChanges(ctx, db.pool, since)
}

// ChangedListings streams the listings a ChangeListings change stamped: their
// state after it (active, or removed), or a later change's when one followed.
func (db *DB) ChangedListings(ctx context.Context, seq int64, fn func(IndexedListing) error) error {
	return scanListings(ctx, db.pool, fn, `
		SELECT l.indicator_id, i.type, i.value, l.source_id, l.active
		  FROM source_listings l JOIN indicators i ON i.id = l.indicator_id
		 WHERE l.changed_seq = $1`, seq)
}

// SourceWeights lists every source's weight.
func (db *DB) SourceWeights(ctx context.Context) ([]SourceWeight, error) {
	rows, err := db.pool.Query(ctx, `SELECT s.id, s.name, coalesce(m.weight, s.prior)
		FROM sources s LEFT JOIN source_metrics m ON m.source = s.name ORDER BY s.id`)
	if err != nil {
		return nil, fmt.Errorf("source weights: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (SourceWeight, error) {
		var w SourceWeight
		return w, r.Scan(&w.ID, &w.Name, &w.Weight)
	})
}

// SuppressedListings reads what is suppressed among the active listings now
// (an analyst's allow or false positive may expire without a change).
func (db *DB) SuppressedListings(ctx context.Context) (Suppressed, error) {
	s := Suppressed{Indicators: map[int64]bool{}, Listings: map[[2]int64]bool{}}
	rows, err := db.pool.Query(ctx, `
		SELECT l.indicator_id, l.source_id, (`+allowlistedSQL+` OR `+analystAllowedSQL+`)
		  FROM source_listings l JOIN indicators i ON i.id = l.indicator_id JOIN sources s ON s.id = l.source_id
		 WHERE l.active AND (`+allowlistedSQL+` OR `+analystAllowedSQL+` OR `+falsePositiveSQL("s.name")+`)`)
	if err != nil {
		return s, fmt.Errorf("suppressed listings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var src int32
		var whole bool
		if err := rows.Scan(&id, &src, &whole); err != nil {
			return s, err
		}
		if whole {
			s.Indicators[id] = true
		} else {
			s.Listings[[2]int64{id, int64(src)}] = true
		}
	}
	return s, rows.Err()
}

// WaitListingChange returns when a listing change commits, or when ctx ends
// (its error). It holds one connection of the pool while it waits.
func (db *DB) WaitListingChange(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN `+listingsChannel); err != nil {
		return err
	}
	defer func() {
		// The connection goes back to the pool: it must stop listening.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `UNLISTEN `+listingsChannel); err != nil {
			conn.Conn().Close(uctx) //nolint:errcheck // a connection left listening is dropped
		}
	}()
	_, err = conn.Conn().WaitForNotification(ctx)
	return err
}

// querier is what listing reads run on: the pool, or a snapshot's transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func listingChanges(ctx context.Context, q querier, since time.Time) ([]ListingChange, error) {
	rows, err := q.Query(ctx, `SELECT seq, kind, coalesce(source_id, 0), at FROM listing_changes WHERE at >= $1 ORDER BY seq`, since)
	if err != nil {
		return nil, fmt.Errorf("listing changes: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ListingChange, error) {
		var c ListingChange
		return c, r.Scan(&c.Seq, &c.Kind, &c.SourceID, &c.At)
	})
}

func scanListings(ctx context.Context, q querier, fn func(IndexedListing) error, sql string, args ...any) error {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var l IndexedListing
	for rows.Next() {
		if err := rows.Scan(&l.IndicatorID, &l.Type, &l.Value, &l.SourceID, &l.Active); err != nil {
			return err
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SampleListing is one value a source lists now (the lowest), "" when it lists none.
func (db *DB) SampleListing(ctx context.Context, source string) (string, error) {
	var v string
	err := db.pool.QueryRow(ctx, `SELECT coalesce(min(i.value), '') FROM listings l JOIN indicators i ON i.id = l.indicator_id
		WHERE l.source = $1 AND l.active`, source).Scan(&v)
	if err != nil {
		return "", fmt.Errorf("sample of %s: %w", source, err)
	}
	return v, nil
}

// ListingChangeWaiter is what waits for listing changes: *DB, or a fake.
type ListingChangeWaiter interface {
	WaitListingChange(ctx context.Context) error
}

// WakeOnListingChanges returns a channel that receives when a listing change
// commits, until ctx ends; wakes that come while one is pending make one. A
// failure to listen goes to onErr and is retried 5 seconds later. The
// servers that keep an index of the listings (tip serve dns, tip serve api,
// the lookup index) update on these wakes and on a poll besides.
func WakeOnListingChanges(ctx context.Context, w ListingChangeWaiter, onErr func(error)) <-chan struct{} {
	wake := make(chan struct{}, 1)
	go func() {
		for ctx.Err() == nil {
			if err := w.WaitListingChange(ctx); err != nil {
				if ctx.Err() == nil {
					onErr(err)
					select {
					case <-ctx.Done():
					case <-time.After(5 * time.Second):
					}
				}
				continue
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}()
	return wake
}
