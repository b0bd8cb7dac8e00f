package testenv

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tip-project/tip/storage"
)

// DSN is the connection string of the database db is connected to, in a
// cluster the test stack started (its own, or one devstack started for the
// test, which has the same credentials).
func DSN(t testing.TB, db *storage.DB) string {
	t.Helper()
	s := Stack(t)
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", s.PGUser, s.PGPassword, db.Addr(), db.Database())
}

// SQL returns a pool of the test's own on the database db is connected to, for
// what a test does in SQL that no storage method does: setting up a state,
// ageing rows, asserting on tables. One pool serves every call of a test for
// one database; it is closed when the test ends.
func SQL(t testing.TB, db *storage.DB) *pgxpool.Pool {
	t.Helper()
	key := sqlKey{t, DSN(t, db)}
	sqlPools.Lock()
	defer sqlPools.Unlock()
	if p, ok := sqlPools.m[key]; ok {
		return p
	}
	p, err := pgxpool.New(context.Background(), key.dsn)
	if err != nil {
		t.Fatal(err)
	}
	sqlPools.m[key] = p
	t.Cleanup(func() {
		sqlPools.Lock()
		delete(sqlPools.m, key)
		sqlPools.Unlock()
		p.Close()
	})
	return p
}

type sqlKey struct {
	t   testing.TB
	dsn string
}

var sqlPools = struct {
	sync.Mutex
	m map[sqlKey]*pgxpool.Pool
}{m: map[sqlKey]*pgxpool.Pool{}}

// MigratedDB opens a fresh database of the test stack (NewDatabase) with TIP's
// schema migrated; it is closed when the test ends.
func MigratedDB(t testing.TB) *storage.DB {
	t.Helper()
	ctx := context.Background()
	db, err := storage.OpenDB(ctx, NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}
