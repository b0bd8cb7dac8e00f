package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

// TestExportVersionFollowsEveryChange: the version changes with a new change,
// with a change committed late under an earlier number, and with an override
// that expires; each new version's time is a second past the last, and the
// same state gives the same version.
func TestExportVersionFollowsEveryChange(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sql := testenv.SQL(t, db)
	v0, err := db.ExportVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := db.ExportVersion(ctx); err != nil || again != v0 {
		t.Fatalf("read again: %+v, %v; want %+v", again, err, v0)
	}
	versions := []storage.ExportVersion{v0}
	for _, step := range []struct{ name, sql string }{
		{"a change", `INSERT INTO listing_changes (seq, kind) VALUES (5, 'weights')`},
		{"a later change", `INSERT INTO listing_changes (seq, kind) VALUES (7, 'weights')`},
		{"an earlier number committed late", `INSERT INTO listing_changes (seq, kind) VALUES (6, 'suppressions')`},
		{"an old change pruned as a late one commits", `DELETE FROM listing_changes WHERE seq = 5; INSERT INTO listing_changes (seq, kind) VALUES (4, 'weights')`},
		{"an override expired", `INSERT INTO overrides (kind, match, type, value, reason, author, expires_at)
			VALUES ('allow', 'exact', 'domain', 'x.example', 'test', 'me', now() - interval '1 second')`},
	} {
		if _, err := sql.Exec(ctx, step.sql); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		v, err := db.ExportVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last := versions[len(versions)-1]
		if v.Key == last.Key {
			t.Errorf("%s: the version stayed %s", step.name, v.Key)
		}
		if !v.Modified.After(last.Modified) || v.Modified.Truncate(time.Second) != v.Modified {
			t.Errorf("%s: modified %s, want whole seconds after %s", step.name, v.Modified, last.Modified)
		}
		versions = append(versions, v)
	}
	if v := versions[len(versions)-1]; v.Seq != 7 {
		t.Errorf("seq %d, want the latest change, 7", v.Seq)
	}
	if again, err := db.ExportVersion(ctx); err != nil || again != versions[len(versions)-1] {
		t.Fatalf("read again: %+v, %v", again, err)
	}
}

func TestSourceStates(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := testenv.SQL(t, db).Exec(ctx, `
		INSERT INTO sources (name, url, format, type, prior, enabled, last_success, last_attempt, last_attempt_error) VALUES
		  ('a', 'https://x/a', 'generic', 'domain', 0.6, true, now() - interval '1 hour', now(), 'HTTP 503'),
		  ('b', 'https://x/b', 'generic', 'domain', 0.4, true, NULL, NULL, '');
		INSERT INTO source_metrics (source, computed_at, volume, added_share, churn_share, exclusive_share, shared, accuracy, health, weight)
		VALUES ('a', now(), 10, 0, 0, 0.5, 5, 1, 0.5, 0.35)`)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := db.SourceStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 2 {
		t.Fatalf("SourceStates = %+v", ss)
	}
	a, b := ss[0], ss[1]
	if a.Name != "a" || a.LastSuccess == nil || a.LastAttempt == nil || a.LastAttemptError != "HTTP 503" || a.Weight != 0.35 || a.MetricsAt == nil {
		t.Errorf("a = %+v", a)
	}
	if b.Name != "b" || b.LastSuccess != nil || b.LastAttempt != nil || b.Weight != 0.4 || b.MetricsAt != nil {
		t.Errorf("b, before its metrics: %+v, want its prior as weight", b)
	}
}
