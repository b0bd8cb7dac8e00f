package storage_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

func openFresh(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.OpenDB(context.Background(), testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func TestMigrateFromEmptyThenAgain(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	ms, err := storage.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := db.SchemaVersion(ctx); err != nil || v != 0 {
		t.Fatalf("empty database: SchemaVersion = %d, %v; want 0", v, err)
	}
	if err := db.CheckSchema(ctx); !errors.Is(err, storage.ErrSchemaBehind) {
		t.Fatalf("empty database: CheckSchema = %v, want ErrSchemaBehind", err)
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(ms) {
		t.Fatalf("applied %d migrations, want %d", len(applied), len(ms))
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil || v != ms[len(ms)-1].Version {
		t.Fatalf("schema version %d, %v; want %d", v, err, ms[len(ms)-1].Version)
	}
	again, err := db.Migrate(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate applied %d, err %v; want 0, nil", len(again), err)
	}
	if err := db.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema after migrating: %v", err)
	}
	var tables int
	if err := testenv.SQL(t, db).QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'blobs'").Scan(&tables); err != nil || tables != 1 {
		t.Fatalf("blobs table: %d, %v", tables, err)
	}
}

func TestMigrateConcurrentWorkersApplyOnce(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	var wg sync.WaitGroup
	counts := make([]int, 4)
	errs := make([]error, 4)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied, err := db.Migrate(ctx)
			counts[i], errs[i] = len(applied), err
		}()
	}
	wg.Wait()
	total := 0
	for i := range counts {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	ms, _ := storage.Migrations()
	if total != len(ms) {
		t.Fatalf("migrators applied %d migrations in all, want each of the %d once", total, len(ms))
	}
}

func TestSchemaNewerThanBinaryRefused(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.SQL(t, db).Exec(ctx, "INSERT INTO tip_schema_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'x')"); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"CheckSchema": db.CheckSchema(ctx),
		"Migrate":     func() error { _, err := db.Migrate(ctx); return err }(),
	} {
		if !errors.Is(err, storage.ErrSchemaNewer) {
			t.Fatalf("%s = %v, want ErrSchemaNewer", name, err)
		}
		for _, want := range []string{"postgres at 127.0.0.1:", "9999", "run a tip release"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s error %q does not mention %q", name, err, want)
			}
		}
	}
}

func TestEditedMigrationRefused(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.SQL(t, db).Exec(ctx, "UPDATE tip_schema_migrations SET checksum = 'edited' WHERE version = 1"); err != nil {
		t.Fatal(err)
	}
	_, err := db.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), "was changed after it was applied") {
		t.Fatalf("Migrate = %v, want a changed-migration error", err)
	}
}

func TestOpenDBErrorsNameServiceAddressAndFix(t *testing.T) {
	s := testenv.Stack(t)
	ctx := context.Background()
	cases := []struct {
		name, dsn string
		want      []string
	}{
		{"wrong password", strings.Replace(s.PostgresDSN(), ":"+s.PGPassword+"@", ":wrong@", 1),
			[]string{"postgres at 127.0.0.1:", `rejected user "tip"`, "TIP_POSTGRES_DSN"}},
		{"missing database", strings.Replace(s.PostgresDSN(), "/"+s.PGDatabase+"?", "/nosuchdb?", 1),
			[]string{"has no database \"nosuchdb\""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := storage.OpenDB(ctx, c.dsn)
			if err == nil {
				t.Fatal("OpenDB succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}

func TestRecordBlobIsIdempotent(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b := storage.Blob{SHA256: strings.Repeat("ab", 32), Size: 100, StoredSize: 40, Encoding: storage.EncodingZstd, ContentType: "text/plain"}
	for i, wantNew := range []bool{true, false, false} {
		inserted, err := db.RecordBlob(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if inserted != wantNew {
			t.Fatalf("record %d: inserted = %v, want %v", i+1, inserted, wantNew)
		}
	}
	r, err := db.LookupBlob(ctx, b.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if r.SeenCount != 3 || r.Size != 100 || r.Encoding != storage.EncodingZstd || r.Key != storage.BlobKey(b.SHA256) {
		t.Fatalf("row = %+v", r)
	}
	var rows int
	_ = testenv.SQL(t, db).QueryRow(ctx, "SELECT count(*) FROM blobs").Scan(&rows)
	if rows != 1 {
		t.Fatalf("%d rows after three records of one blob", rows)
	}
	if _, err := db.LookupBlob(ctx, strings.Repeat("cd", 32)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("lookup of unknown blob: %v", err)
	}
	bad := b
	bad.SHA256 = "not-a-hash"
	if _, err := db.RecordBlob(ctx, bad); err == nil {
		t.Fatal("a malformed hash was recorded")
	}
}
