package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"go.temporal.io/sdk/temporal"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// agentChunk bounds the batches one request of a sync streams.
const agentChunk = 64 << 20

// AgentSync is the agent sync module's activity: it pulls what spamtrap agents
// published.
type AgentSync struct {
	Spamtraps
}

// SyncAgent pulls the batches a spamtrap agent published since the last sync: it
// asks for the latest version, streams the missing ones in chunks, keeps each
// verified batch file in S3, records its mails (and, when the catalog says raw,
// their raw copies, each checked against its SHA-256) and only then advances the
// cursor past it. A retry after a crash pulls the batch in flight again; its
// sightings ("agent:<name>", "<folder>/<name>") make that a no-op, so every mail is
// recorded exactly once.
func (a *AgentSync) SyncAgent(ctx context.Context, ag catalog.Agent) (contract.IngestResult, error) {
	origin := "agent:" + ag.Name
	res := contract.IngestResult{Origin: origin}
	if due, err := a.claimRun(ctx, origin, ag.Interval); err != nil || !due {
		res.Status = contract.FetchNotDue
		return res, err
	}
	res, err := a.syncAgent(ctx, ag, res)
	return res, a.releaseOnError(ctx, origin, err)
}

func (a *AgentSync) syncAgent(ctx context.Context, ag catalog.Agent, res contract.IngestResult) (contract.IngestResult, error) {
	c, cfg, asn, err := a.spamSetup(ctx, catalog.AllTraps)
	if err != nil {
		return res, err
	}
	// The token is read here, from the catalog, its environment variable or its
	// file: it never travels through a workflow history.
	for _, x := range c.Agents {
		if x.Name == ag.Name {
			ag.Token, ag.TokenEnv, ag.TokenFile = x.Token, x.TokenEnv, x.TokenFile
		}
	}
	token, err := ag.ReadSecret()
	if err == nil && token == "" {
		err = fmt.Errorf("agent %s: no token in the catalog", ag.Name)
	}
	if err != nil {
		return res, temporal.NewNonRetryableApplicationError(err.Error(), "AgentToken", nil)
	}
	pin, err := ag.Pin()
	if err != nil {
		return res, temporal.NewNonRetryableApplicationError(err.Error(), "AgentPin", nil)
	}
	client := &agent.Client{URL: ag.URL, Token: token, Fingerprint: pin}
	cur, err := a.Store.AgentCursor(ctx, ag.Name)
	if err != nil {
		return res, err
	}
	latest, err := client.Latest(ctx)
	if err != nil {
		return res, agentError(ag, err)
	}
	switch {
	case cur.AgentID != "" && latest.Agent != cur.AgentID:
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("agent %s now reports id %q, its batches so far came from %q: if it was reinstalled, `tip agents reset %s`",
			ag.Name, latest.Agent, cur.AgentID, ag.Name), "AgentChanged", nil)
	case latest.Latest < cur.Version:
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("agent %s's latest batch is %d, below the %d already recorded: if it was reinstalled, `tip agents reset %s`",
			ag.Name, latest.Latest, cur.Version, ag.Name), "AgentChanged", nil)
	case latest.Latest == cur.Version:
		res.Status = contract.FetchUnchanged
		return res, a.Store.TouchAgentCursor(ctx, ag.Name)
	}
	rec := a.newSpamRecorder(cfg, asn, &res)
	defer rec.stop()
	after := cur.Version
	for after < latest.Latest {
		before := after
		_, err := client.Stream(ctx, after, agentChunk, func(it agent.StreamItem, body io.Reader) error {
			if it.Version != after+1 {
				return fmt.Errorf("agent %s sent batch %d after %d", ag.Name, it.Version, after)
			}
			n, err := a.loadAgentBatch(ctx, ag, client, latest.Agent, it, body, rec)
			if err != nil {
				return err
			}
			// The cursor moves past the batch once its mails are recorded.
			version := it.Version
			err = rec.flushThen(ctx, func() error {
				if err := a.Store.AdvanceAgentCursor(ctx, ag.Name, latest.Agent, version, n); err != nil {
					return err
				}
				heartbeat(ctx, version)
				return nil
			})
			after = it.Version
			res.Members += n
			return err
		})
		if err != nil {
			return res, agentError(ag, err)
		}
		if after == before {
			return res, fmt.Errorf("agent %s says its latest batch is %d but streamed none after %d", ag.Name, latest.Latest, after)
		}
	}
	if err := rec.wait(ctx); err != nil {
		return res, agentError(ag, err)
	}
	res.Status = "ingested"
	rec.done()
	return res, nil
}

// loadAgentBatch keeps one streamed batch in S3, checks it, and hands its mails
// to the recorder; the caller flushes them.
func (a *AgentSync) loadAgentBatch(ctx context.Context, ag catalog.Agent, client *agent.Client, agentID string,
	it agent.StreamItem, body io.Reader, rec *spamRecorder) (int, error) {
	spool, err := os.CreateTemp("", "tip-agent-batch-*")
	if err != nil {
		return 0, err
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	// The client's reader checks the bytes against the manifest's SHA-256 when
	// it reaches their end: nothing of the batch is kept before that.
	if _, err := io.Copy(spool, body); err != nil {
		return 0, err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := a.Blobs.Put(ctx, spool, storage.PutOptions{ContentType: "application/gzip"}); err != nil {
		return 0, err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	b, err := agent.DecodeBatch(spool, it.Version)
	if err != nil {
		return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("agent %s batch %d: %v", ag.Name, it.Version, err), "AgentBadBatch", nil)
	}
	if b.Header.Agent != agentID {
		return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("agent %s batch %d names agent %q, the agent says it is %q", ag.Name, it.Version, b.Header.Agent, agentID), "AgentBadBatch", nil)
	}
	add := func(m *agent.Mail, raw []byte) error {
		full, err := rec.addFacts(m.Folder+"/"+m.Name, m.Facts, raw)
		if err == nil && full {
			err = rec.flush(ctx)
		}
		return err
	}
	if ag.Raw {
		// The batch's raw mails come in one request, each checked against its
		// SHA-256 before it is recorded.
		err := client.RawMails(ctx, b, func(m *agent.Mail, r io.Reader) error {
			raw, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			return add(m, raw)
		})
		if err != nil {
			return 0, err
		}
	}
	for i := range b.Mails {
		if !ag.Raw || !b.Mails[i].Raw { // the others have no raw copy to record
			if err := add(&b.Mails[i], nil); err != nil {
				return 0, err
			}
		}
	}
	return len(b.Mails), nil
}

// agentError marks what retrying cannot fix as such: a refused token, a pinned
// certificate that does not match, a batch whose bytes are not what the agent's
// manifest says.
func agentError(ag catalog.Agent, err error) error {
	var ae *agent.StatusError
	var app *temporal.ApplicationError
	switch {
	case errors.As(err, &app):
		return app // its message names the agent and the batch
	case errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 403):
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("agent %s refused the token: %v", ag.Name, err), "AgentAuth", err)
	case errors.Is(err, agent.ErrChecksum):
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("agent %s: %v: refused", ag.Name, err), "AgentTampered", err)
	case errors.Is(err, agent.ErrPin):
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("agent %s: %v (was it reinstalled? `tip agent fingerprint` on it prints the new one)", ag.Name, err), "AgentPin", err)
	}
	return fmt.Errorf("agent %s: %w", ag.Name, err)
}
