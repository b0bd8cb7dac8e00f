package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
)

// Raw downloads (feed snapshots, spam archives: what TIP can fetch again)
// carry the object tag RawTag = RawDownload; raw mails and everything else
// carry none. The bucket's lifecycle rule RawRuleID expires the tagged objects
// after retention.snapshots_days. An object is content-addressed and written
// once: content that recurs (a feed unchanged for longer than the window)
// expires with its first copy, and the next change stores a new one.
const (
	RawTag      = "tip-retention"
	RawDownload = "raw-download"
	RawRuleID   = "tip-raw-downloads"
)

// SetRawExpiry sets the bucket's rule that expires raw downloads after days
// (0: removes it, they are kept for ever), leaving other rules as they are.
func (b *BlobStore) SetRawExpiry(ctx context.Context, days int) error {
	cfg, err := b.client.GetBucketLifecycle(ctx, b.bucket)
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.Code == "NoSuchLifecycleConfiguration" {
		cfg, err = lifecycle.NewConfiguration(), nil
	}
	if err != nil {
		return fmt.Errorf("s3 lifecycle: %w", b.explain(err))
	}
	cfg.Rules = slices.DeleteFunc(cfg.Rules, func(r lifecycle.Rule) bool { return r.ID == RawRuleID })
	if days > 0 {
		cfg.Rules = append(cfg.Rules, lifecycle.Rule{
			ID:         RawRuleID,
			Status:     "Enabled",
			RuleFilter: lifecycle.Filter{Tag: lifecycle.Tag{Key: RawTag, Value: RawDownload}},
			Expiration: lifecycle.Expiration{Days: lifecycle.ExpirationDays(days)},
		})
	}
	if len(cfg.Rules) == 0 {
		cfg = nil // no rule left: remove the configuration
	}
	if err := b.client.SetBucketLifecycle(ctx, b.bucket, cfg); err != nil {
		return fmt.Errorf("s3 lifecycle: %w", b.explain(err))
	}
	return nil
}

// RawExpiry reads the days after which the bucket expires raw downloads (0:
// no such rule).
func (b *BlobStore) RawExpiry(ctx context.Context) (int, error) {
	cfg, err := b.client.GetBucketLifecycle(ctx, b.bucket)
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.Code == "NoSuchLifecycleConfiguration" {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("s3 lifecycle: %w", b.explain(err))
	}
	for _, r := range cfg.Rules {
		if r.ID == RawRuleID && r.Status == "Enabled" {
			return int(r.Expiration.Days), nil
		}
	}
	return 0, nil
}

// Tags reads an object's tags.
func (b *BlobStore) Tags(ctx context.Context, sha string) (map[string]string, error) {
	t, err := b.client.GetObjectTagging(ctx, b.bucket, BlobKey(sha), minio.GetObjectTaggingOptions{})
	if err != nil {
		return nil, fmt.Errorf("tags of %s: %w", BlobKey(sha), b.explain(err))
	}
	return t.ToMap(), nil
}
