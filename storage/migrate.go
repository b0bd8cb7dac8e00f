package storage

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// Migrations are plain SQL files named NNNN_what.sql, embedded in the binary and
// applied in order, each in its own transaction. We use this small runner instead of
// a migration library because TIP needs exactly three things a library does not give
// together: refusing to run against a schema newer than the binary (a rolled-back
// worker must not write into a schema it does not know), checksums that catch an
// edited applied migration, and an advisory lock so several workers starting at once
// apply each migration once.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one versioned schema step.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

// ErrSchemaNewer means the database was migrated by a newer TIP than this binary.
var ErrSchemaNewer = errors.New("database schema is newer than this binary")

// ErrSchemaBehind means migrations are pending.
var ErrSchemaBehind = errors.New("database schema is behind this binary")

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// migrationLock is the advisory-lock key that serialises migrators ("tipmigr").
const migrationLock int64 = 0x7469706d69677200

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) { return loadMigrations(migrationFiles, "migrations") }

func loadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		v, _ := strconv.Atoi(m[1])
		sum := sha256.Sum256(data)
		out = append(out, Migration{Version: v, Name: m[2], SQL: string(data), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations must be numbered 1, 2, 3 … without gaps or repeats; found %04d at position %d", m.Version, i+1)
		}
	}
	return out, nil
}

const createMigrationTable = `CREATE TABLE IF NOT EXISTS tip_schema_migrations (
	version    integer     PRIMARY KEY,
	name       text        NOT NULL,
	checksum   text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// Migrate applies every pending migration and returns the ones it applied. Running it
// again applies nothing. It fails without changing anything when the database holds
// a newer schema than this binary or an applied migration was edited.
func (db *DB) Migrate(ctx context.Context) ([]Migration, error) {
	return db.migrate(ctx, nil)
}

func (db *DB) migrate(ctx context.Context, ms []Migration) ([]Migration, error) {
	if ms == nil {
		var err error
		if ms, err = Migrations(); err != nil {
			return nil, err
		}
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, explainPG(db.addr, "", "", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock) //nolint:errcheck
	if _, err := conn.Exec(ctx, createMigrationTable); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	applied, err := appliedMigrations(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	if err := compareSchema(db.addr, applied, ms); err != nil && !errors.Is(err, ErrSchemaBehind) {
		return nil, err
	}
	var done []Migration
	for _, m := range ms {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO tip_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", m.Version, m.Name, m.Checksum)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("migrate: %04d_%s: %w", m.Version, m.Name, err)
		}
		done = append(done, m)
	}
	return done, nil
}

// CheckSchema reports whether the database schema is exactly what this binary knows:
// nil, or an error wrapping ErrSchemaNewer or ErrSchemaBehind that says what to do.
func (db *DB) CheckSchema(ctx context.Context) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	var exists bool
	if err := db.pool.QueryRow(ctx, "SELECT to_regclass('tip_schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return explainPG(db.addr, "", "", err)
	}
	applied := map[int]string{}
	if exists {
		conn, err := db.pool.Acquire(ctx)
		if err != nil {
			return explainPG(db.addr, "", "", err)
		}
		defer conn.Release()
		if applied, err = appliedMigrations(ctx, conn.Conn()); err != nil {
			return err
		}
	}
	return compareSchema(db.addr, applied, ms)
}

// SchemaVersion is the highest applied migration, 0 for an empty database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var exists bool
	if err := db.pool.QueryRow(ctx, "SELECT to_regclass('tip_schema_migrations') IS NOT NULL").Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := db.pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM tip_schema_migrations").Scan(&v)
	return v, err
}

func appliedMigrations(ctx context.Context, conn *pgx.Conn) (map[int]string, error) {
	rows, err := conn.Query(ctx, "SELECT version, checksum FROM tip_schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrate: read applied: %w", err)
	}
	applied := map[int]string{}
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, err
		}
		applied[v] = sum
	}
	return applied, rows.Err()
}

func compareSchema(addr string, applied map[int]string, ms []Migration) error {
	latest := 0
	if len(ms) > 0 {
		latest = ms[len(ms)-1].Version
	}
	newest := 0
	for v := range applied {
		newest = max(newest, v)
	}
	if newest > latest {
		return fmt.Errorf("postgres at %s: %w: the database is at schema version %d, this tip knows versions up to %d; run a tip release that knows version %d (or point postgres.dsn at another database)", addr, ErrSchemaNewer, newest, latest, newest)
	}
	for _, m := range ms {
		sum, ok := applied[m.Version]
		if ok && sum != m.Checksum {
			return fmt.Errorf("postgres at %s: migration %04d_%s was changed after it was applied (checksum %.12s in the database, %.12s in this binary); restore the original file and add a new migration instead", addr, m.Version, m.Name, sum, m.Checksum)
		}
	}
	if len(applied) < len(ms) {
		return fmt.Errorf("postgres at %s: %w: at version %d of %d; run `tip migrate` (the worker also migrates at start)", addr, ErrSchemaBehind, newest, latest)
	}
	return nil
}
