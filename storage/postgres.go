// Package storage holds TIP's facts in PostgreSQL (pgx) and its raw material in
// S3-compatible storage (minio-go). Errors that reach a user name the service, its
// address and the fix.
package storage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is TIP's PostgreSQL database. Every statement TIP runs on it, and every
// transaction, is a method of DB (or of a value one returns, as ListingLoad).
type DB struct {
	pool *pgxpool.Pool
	addr string // host:port, for error messages
}

// OpenDB connects a pool and pings it, so a bad DSN or a down server fails here with
// a clear message instead of on first use.
func OpenDB(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: the DSN cannot be parsed (%v); fix postgres.dsn or TIP_POSTGRES_DSN", redactParseError(err))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 10*time.Second {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	addr := net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, explainPG(addr, cfg.ConnConfig.User, cfg.ConnConfig.Database, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, explainPG(addr, cfg.ConnConfig.User, cfg.ConnConfig.Database, err)
	}
	return &DB{pool: pool, addr: addr}, nil
}

// Addr is the server's host:port.
func (db *DB) Addr() string { return db.addr }

// Database is the name of the database on the server.
func (db *DB) Database() string { return db.pool.Config().ConnConfig.Database }

// ServerVersion is the PostgreSQL server's version, as it reports it.
func (db *DB) ServerVersion(ctx context.Context) (string, error) {
	var v string
	err := db.pool.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

// Close releases every connection.
func (db *DB) Close() { db.pool.Close() }

// explainPG turns a connection failure into one sentence: service, address, fix.
func explainPG(addr, user, database string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return fmt.Errorf("postgres at %s rejected user %q (%s); fix the user or password in postgres.dsn / TIP_POSTGRES_DSN", addr, user, pgErr.Message)
		case "3D000":
			return fmt.Errorf("postgres at %s has no database %q; create it (`make up` does for the local stack) or fix postgres.dsn / TIP_POSTGRES_DSN", addr, database)
		}
		return fmt.Errorf("postgres at %s: %s (SQLSTATE %s)", addr, pgErr.Message, pgErr.Code)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return fmt.Errorf("postgres at %s is not reachable (connection refused); start it with `make up` or fix postgres.dsn / TIP_POSTGRES_DSN", addr)
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "timeout"):
		return fmt.Errorf("postgres at %s did not answer in time; check that it runs and that postgres.dsn / TIP_POSTGRES_DSN points at it", addr)
	}
	return fmt.Errorf("postgres at %s: %v; check that it runs and that postgres.dsn / TIP_POSTGRES_DSN is right", addr, err)
}

// redactParseError keeps a password out of pgx's parse errors.
func redactParseError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		return "invalid connection string"
	}
	return msg
}
