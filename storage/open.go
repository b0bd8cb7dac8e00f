package storage

import (
	"context"
	"log/slog"

	"github.com/tip-project/tip/config"
)

// NewBlobStoreFromConfig builds the blob store TIP's configuration names.
func NewBlobStoreFromConfig(c config.S3) (*BlobStore, error) {
	return NewBlobStore(S3Options{
		Endpoint: c.Endpoint, AccessKey: c.AccessKey, SecretKey: c.SecretKey,
		Bucket: c.Bucket, Region: c.Region, Secure: c.Secure,
	})
}

// Prepare connects PostgreSQL and S3, applies pending migrations and creates the
// bucket (with its lifecycle rule for raw downloads: retention.snapshots_days),
// so a worker never runs against a schema or bucket it does not know.
func Prepare(ctx context.Context, cfg config.Config, log *slog.Logger) (*DB, *BlobStore, error) {
	db, err := OpenDB(ctx, cfg.Postgres.DSN)
	if err != nil {
		return nil, nil, err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	for _, m := range applied {
		log.Info("applied migration", "version", m.Version, "name", m.Name)
	}
	blobs, err := NewBlobStoreFromConfig(cfg.S3)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	if err := blobs.EnsureBucket(ctx); err != nil {
		db.Close()
		return nil, nil, err
	}
	// A store without lifecycle rules (or tag filters) keeps raw downloads
	// for ever: worth a warning, not a worker that does not start.
	if err := blobs.SetRawExpiry(ctx, cfg.Retention.SnapshotsDays); err != nil {
		log.Warn("raw downloads will not expire: the bucket's lifecycle rule could not be set", "err", err)
	}
	return db, blobs, nil
}
