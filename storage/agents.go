package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AgentCursor is how far the batches of a spamtrap agent are recorded.
type AgentCursor struct {
	Agent    string     `json:"agent"`
	AgentID  string     `json:"agent_id"` // the id the agent reports
	Version  uint64     `json:"version"`  // the last batch recorded (0: none)
	Mails    int64      `json:"mails"`
	SyncedAt *time.Time `json:"synced_at,omitempty"`
}

// AgentCursor reads an agent's cursor; an agent never synced has version 0.
func (db *DB) AgentCursor(ctx context.Context, agent string) (AgentCursor, error) {
	c := AgentCursor{Agent: agent}
	var v int64
	err := db.pool.QueryRow(ctx, `SELECT agent_id, version, mails, synced_at FROM agent_cursors WHERE agent = $1`, agent).
		Scan(&c.AgentID, &v, &c.Mails, &c.SyncedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("agent cursor %s: %w", agent, err)
	}
	c.Version = uint64(v)
	return c, nil
}

// AdvanceAgentCursor records that an agent's batches up to version are recorded,
// adding mails to its count. It never moves a cursor back: a retried sync that
// lags behind another changes nothing.
func (db *DB) AdvanceAgentCursor(ctx context.Context, agent, agentID string, version uint64, mails int) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO agent_cursors (agent, agent_id, version, mails) VALUES ($1, $2, $3, $4)
		ON CONFLICT (agent) DO UPDATE SET agent_id = excluded.agent_id, version = excluded.version,
		    mails = agent_cursors.mails + excluded.mails, synced_at = now()
		WHERE agent_cursors.version < excluded.version`,
		agent, agentID, int64(version), mails)
	if err != nil {
		return fmt.Errorf("agent cursor %s: %w", agent, err)
	}
	return nil
}

// TouchAgentCursor notes a sync that found nothing new.
func (db *DB) TouchAgentCursor(ctx context.Context, agent string) error {
	_, err := db.pool.Exec(ctx, `UPDATE agent_cursors SET synced_at = now() WHERE agent = $1`, agent)
	return err
}

// ResetAgentCursor forgets how far an agent was read (after it was reinstalled),
// so the next sync starts at its first batch; mails already recorded stay, and
// their sightings make a second pass over them a no-op.
func (db *DB) ResetAgentCursor(ctx context.Context, agent string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM agent_cursors WHERE agent = $1`, agent)
	return err
}
