package storage_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

// The bucket's lifecycle rule expires raw downloads only: a download stored
// with the raw tag carries it, a mail does not; setting the rule twice keeps
// one, and 0 removes it.
func TestRawDownloadsExpireByLifecycleRule(t *testing.T) {
	ctx := context.Background()
	b := newStore(t)
	if days, err := b.RawExpiry(ctx); err != nil || days != 0 {
		t.Fatalf("new bucket: rule of %d days, %v; want none", days, err)
	}
	for _, days := range []int{365, 30} {
		if err := b.SetRawExpiry(ctx, days); err != nil {
			t.Fatal(err)
		}
		if got, err := b.RawExpiry(ctx); err != nil || got != days {
			t.Fatalf("after setting %d days: %d, %v", days, got, err)
		}
	}
	feed, err := b.Put(ctx, strings.NewReader("# a feed snapshot\n192.0.2.1\n"), storage.PutOptions{ContentType: "text/plain",
		Tags: map[string]string{storage.RawTag: storage.RawDownload}})
	if err != nil {
		t.Fatal(err)
	}
	mail, err := b.PutBytes(ctx, []byte("Subject: spam\r\n\r\nbuy\r\n"), storage.PutOptions{ContentType: "message/rfc822"})
	if err != nil {
		t.Fatal(err)
	}
	if tags, err := b.Tags(ctx, feed.SHA256); err != nil || tags[storage.RawTag] != storage.RawDownload {
		t.Errorf("feed snapshot tags %v, %v; want the raw tag", tags, err)
	}
	if tags, err := b.Tags(ctx, mail.SHA256); err != nil || len(tags) != 0 {
		t.Errorf("mail tags %v, %v; want none (kept for ever)", tags, err)
	}
	if err := b.SetRawExpiry(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := b.RawExpiry(ctx); err != nil || got != 0 {
		t.Errorf("after removing: %d, %v", got, err)
	}
}

// Setting up a deployment (tip setup, a worker's start) sets the rule with
// retention.snapshots_days.
func TestPrepareSetsTheRawDownloadsRule(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.NewBucket(t, testenv.Config(t))
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	cfg.Retention.SnapshotsDays = 90
	db, b, err := storage.Prepare(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if days, err := b.RawExpiry(ctx); err != nil || days != 90 {
		t.Errorf("after Prepare: raw downloads expire after %d days, %v; want 90", days, err)
	}
}
