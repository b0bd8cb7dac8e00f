package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/tip-project/tip/workflows/contract"
)

// RefreshSpamSenders lists as src, one of TIP's own blacklist sources, every
// sender of the spam TIP received in the last window: recorded like a feed's
// load (refreshOwnSource) as a run of src under runKey.
func (db *DB) RefreshSpamSenders(ctx context.Context, src SourceRow, runKey string, window time.Duration) (contract.LoadResult, error) {
	return db.refreshOwnSource(ctx, src, runKey, `INSERT INTO staging
		SELECT DISTINCT CASE WHEN family(sender_ip) = 4 THEN 'ipv4' ELSE 'ipv6' END, host(sender_ip), ''
		  FROM spam_messages WHERE sender_ip IS NOT NULL AND first_seen > now() - $1::interval`, window)
}

// RefreshFluxAgents lists as src, one of TIP's own blacklist sources, every flux
// agent: each address seen behind a domain judged flux or monitored (and its
// name servers' when they rotate), once. It is recorded like a feed's load
// (refreshOwnSource) as a run of src under runKey.
func (db *DB) RefreshFluxAgents(ctx context.Context, src SourceRow, runKey string) (contract.LoadResult, error) {
	return db.refreshOwnSource(ctx, src, runKey, `INSERT INTO staging
		SELECT CASE WHEN family(ip::inet) = 4 THEN 'ipv4' ELSE 'ipv6' END, ip, '' FROM (`+fluxAgentAddrsSQL+`) a(ip)`)
}

// refreshOwnSource lists what fill (an INSERT INTO staging (type, value,
// registrable) with args) selects as src, the way a feed's load lists a feed:
// src is upserted, then one transaction merges the selection into its listings
// (new, re-listed, removed) and records the run under runKey. A retry of a
// recorded run returns the recorded result and changes nothing.
func (db *DB) refreshOwnSource(ctx context.Context, src SourceRow, runKey, fill string, args ...any) (contract.LoadResult, error) {
	run := SourceRun{RunKey: runKey, Fetch: contract.FetchResult{StartedAt: time.Now().UTC()}}
	if err := db.UpsertSource(ctx, src); err != nil {
		return contract.LoadResult{}, err
	}
	if prev, ok, err := db.RecordedRun(ctx, src.Name, runKey); err != nil || ok {
		return prev, err
	}
	res := contract.LoadResult{Source: src.Name}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return res, err
	}
	l := &ListingLoad{tx: tx, source: src.Name}
	defer l.Rollback(ctx)
	if err := l.createStaging(ctx); err != nil {
		return res, fmt.Errorf("%s: %w", src.Name, err)
	}
	if _, err := tx.Exec(ctx, fill, args...); err != nil {
		return res, fmt.Errorf("%s: %w", src.Name, err)
	}
	m, err := l.Merge(ctx)
	if err != nil {
		return res, fmt.Errorf("%s: merge: %w", src.Name, err)
	}
	res.Entries, res.Added, res.Removed = m.Entries, m.Added, m.Removed
	res.Status = contract.RunLoaded
	run.Result = res
	if err := l.record(ctx, run); err != nil {
		return res, err
	}
	return res, tx.Commit(ctx)
}
