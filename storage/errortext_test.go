package storage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/storage"
)

// TestErrorTextIsCappedWhenRecorded: every write of an error text keeps at most
// MaxErrorText bytes of it, however long the text its caller built.
func TestErrorTextIsCappedWhenRecorded(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	huge := "HTTP 500: " + strings.Repeat("<p>é</p>", 200_000)
	check := func(what, got string) {
		t.Helper()
		if len(got) > storage.MaxErrorText || !strings.HasPrefix(got, "HTTP 500: <p>é</p>") || !strings.HasSuffix(got, "more bytes)") {
			t.Errorf("%s: recorded %d bytes: %.60q…%q", what, len(got), got, got[max(0, len(got)-30):])
		}
	}

	if err := db.UpsertSource(ctx, storage.SourceRow{Name: "s", URL: "https://x/s", Format: "ip-list", Type: "ipv4", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := db.ClaimFetch(ctx, "s", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := db.FetchAttemptFailed(ctx, "s", huge); err != nil {
		t.Fatal(err)
	}
	_, _, lastErr, err := db.ClaimFetch(ctx, "s", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	check("sources.last_attempt_error", lastErr)

	if err := db.SyncAllowlists(ctx, []storage.AllowlistRow{{Name: "a", URL: "https://x/a", Format: "netset", Type: "cidr"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AllowlistChecked(ctx, "a", huge); err != nil {
		t.Fatal(err)
	}
	a, err := db.Allowlist(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	check("allowlists.error", a.Error)

	if err := db.SpamArchiveIngested(ctx, storage.SpamArchiveRow{URL: "https://x/2024-01.zip", Name: "2024-01", Error: huge}); err != nil {
		t.Fatal(err)
	}
	r, err := db.SpamArchive(ctx, "https://x/2024-01.zip")
	if err != nil {
		t.Fatal(err)
	}
	check("spam_archives.error", r.Error)
}
