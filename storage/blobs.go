package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// BlobRecord is a row of the blobs index.
type BlobRecord struct {
	Blob
	FirstSeen time.Time
	LastSeen  time.Time
	SeenCount int64
}

// RecordBlob upserts a stored blob into the index by its hash. A retried activity
// that records the same blob again only bumps last_seen and seen_count; it reports
// whether the row was new.
func (db *DB) RecordBlob(ctx context.Context, b Blob) (inserted bool, err error) {
	err = db.pool.QueryRow(ctx, `
		INSERT INTO blobs (sha256, size, stored_size, encoding, content_type)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (sha256) DO UPDATE
		   SET last_seen = now(), seen_count = blobs.seen_count + 1
		RETURNING xmax = 0`,
		b.SHA256, b.Size, b.StoredSize, b.Encoding, b.ContentType).Scan(&inserted)
	if err != nil {
		return false, fmt.Errorf("record blob %s: %w", b.SHA256, err)
	}
	return inserted, nil
}

// LookupBlob returns the index row of a hash, or ErrNotFound.
func (db *DB) LookupBlob(ctx context.Context, sha string) (BlobRecord, error) {
	var r BlobRecord
	err := db.pool.QueryRow(ctx, `
		SELECT sha256, size, stored_size, encoding, content_type, first_seen, last_seen, seen_count
		  FROM blobs WHERE sha256 = $1`, sha).
		Scan(&r.SHA256, &r.Size, &r.StoredSize, &r.Encoding, &r.ContentType, &r.FirstSeen, &r.LastSeen, &r.SeenCount)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return r, fmt.Errorf("%w: %s", ErrNotFound, sha)
		}
		return r, fmt.Errorf("lookup blob %s: %w", sha, err)
	}
	r.Key = BlobKey(r.SHA256)
	return r, nil
}
