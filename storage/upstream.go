package storage

import (
	"context"
	"fmt"
	"time"
)

// WorkerAlive records that a worker on a task queue is alive now and returns how
// many workers of that queue are (it included): those seen within liveFor.
func (db *DB) WorkerAlive(ctx context.Context, identity, queue string, liveFor time.Duration) (int, error) {
	var live int
	err := db.pool.QueryRow(ctx, `
		WITH me AS (
		    INSERT INTO workers (identity, task_queue, started_at, seen_at) VALUES ($1, $2, now(), now())
		    ON CONFLICT (identity) DO UPDATE SET task_queue = $2, seen_at = now())
		SELECT 1 + count(*) FROM workers WHERE task_queue = $2 AND identity <> $1 AND seen_at > now() - $3::interval`,
		identity, queue, liveFor).Scan(&live)
	if err != nil {
		return 0, fmt.Errorf("worker presence: %w", err)
	}
	return live, nil
}

// WorkerGone removes a stopping worker, so the others take its share at once.
func (db *DB) WorkerGone(ctx context.Context, identity string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM workers WHERE identity = $1`, identity); err != nil {
		return fmt.Errorf("worker presence: %w", err)
	}
	return nil
}

// AcquireUpstream takes a free slot of an upstream that has slots of them for
// holder, for ttl, and returns it; ok is false when every slot is held by a
// lease that has not expired.
func (db *DB) AcquireUpstream(ctx context.Context, upstream string, slots int, holder string, ttl time.Duration) (slot int, ok bool, err error) {
	for s := range slots {
		tag, err := db.pool.Exec(ctx, `
			INSERT INTO upstream_leases (upstream, slot, holder, expires_at) VALUES ($1, $2, $3, now() + $4::interval)
			ON CONFLICT (upstream, slot) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			 WHERE upstream_leases.expires_at < now() OR upstream_leases.holder = excluded.holder`,
			upstream, s, holder, ttl)
		if err != nil {
			return 0, false, fmt.Errorf("upstream %s: %w", upstream, err)
		}
		if tag.RowsAffected() == 1 {
			return s, true, nil
		}
	}
	return 0, false, nil
}

// RenewUpstream extends holder's lease of a slot by ttl from now; it reports
// false when the lease is no longer holder's (it expired and was taken).
func (db *DB) RenewUpstream(ctx context.Context, upstream string, slot int, holder string, ttl time.Duration) (bool, error) {
	tag, err := db.pool.Exec(ctx, `UPDATE upstream_leases SET expires_at = now() + $4::interval
		WHERE upstream = $1 AND slot = $2 AND holder = $3`, upstream, slot, holder, ttl)
	if err != nil {
		return false, fmt.Errorf("upstream %s: %w", upstream, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseUpstream frees holder's slot.
func (db *DB) ReleaseUpstream(ctx context.Context, upstream string, slot int, holder string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM upstream_leases WHERE upstream = $1 AND slot = $2 AND holder = $3`,
		upstream, slot, holder); err != nil {
		return fmt.Errorf("upstream %s: %w", upstream, err)
	}
	return nil
}
