// Package activities holds TIP's Temporal activities: thin adapters from the
// domain packages to I/O. Each module's activities are the exported methods of
// one struct that holds only what the module needs — Blacklist, Spam,
// AgentSync, Flux and Probe — behind the narrow store interfaces below, which
// *storage.DB and *storage.BlobStore satisfy and tests fake. worker.Register
// registers those structs, so every exported method is an activity a workflow
// calls by the name workflows/contract gives it; helpers stay unexported or
// live in shared parts (Downloads, ASNTables, Resolution).
//
// Activities are idempotent: a retry never duplicates a row (natural keys and
// upserts) or an object (content-addressed keys).
package activities

import (
	"context"
	"io"
	"net/netip"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// Blobs is the content-addressed blob store (storage.BlobStore).
type Blobs interface {
	Put(ctx context.Context, r io.Reader, o storage.PutOptions) (storage.Blob, error)
	PutBytes(ctx context.Context, data []byte, o storage.PutOptions) (storage.Blob, error)
	Open(ctx context.Context, sha string) (io.ReadCloser, storage.Blob, error)
}

// UpstreamSlots are the download slots per host that every worker sharing the
// database counts against (storage.DB).
type UpstreamSlots interface {
	AcquireUpstream(ctx context.Context, upstream string, slots int, holder string, ttl time.Duration) (slot int, ok bool, err error)
	RenewUpstream(ctx context.Context, upstream string, slot int, holder string, ttl time.Duration) (bool, error)
	ReleaseUpstream(ctx context.Context, upstream string, slot int, holder string) error
}

// BlacklistStore is what the blacklist module reads and writes (storage.DB):
// sources and their runs, listings, allowlists, metrics.
type BlacklistStore interface {
	UpsertSource(ctx context.Context, s storage.SourceRow) error
	Source(ctx context.Context, name string) (storage.SourceRow, error)
	ClaimFetch(ctx context.Context, name string, minGap time.Duration) (ok bool, next time.Time, lastErr string, err error)
	FetchAttemptFailed(ctx context.Context, name, why string) error
	BeginListingLoad(ctx context.Context, source string) (*storage.ListingLoad, error)
	RecordedRun(ctx context.Context, source, runKey string) (contract.LoadResult, bool, error)
	RecordRunOutcome(ctx context.Context, src storage.SourceRow, run storage.SourceRun) error
	ComputeSourceMetrics(ctx context.Context) ([]storage.SourceMetrics, error)
	NewListedDomains(ctx context.Context, since time.Time, limit int) ([]string, error)
	SyncAllowlists(ctx context.Context, lists []storage.AllowlistRow) error
	Allowlist(ctx context.Context, name string) (storage.AllowlistRow, error)
	AllowlistChecked(ctx context.Context, name, fetchErr string) error
	LoadAllowlist(ctx context.Context, name string, c storage.AllowlistContent) (entries, skipped int, err error)
}

// SpamStore is what the spam collectors read and write (storage.DB): their run
// claims, the mails' facts, the archives ingested, and the IMAP and agent cursors.
type SpamStore interface {
	ClaimCollectorRun(ctx context.Context, name string, interval time.Duration) (bool, error)
	ReleaseCollectorRun(ctx context.Context, name string) error
	RecordSpam(ctx context.Context, batch []storage.SpamRecord) (newMails int, err error)
	SeenNames(ctx context.Context, origin string) (map[string]bool, error)
	SpamArchive(ctx context.Context, url string) (storage.SpamArchiveRow, error)
	SpamArchiveIngested(ctx context.Context, r storage.SpamArchiveRow) error
	IMAPCursor(ctx context.Context, mailbox string) (uidValidity, lastUID uint32, err error)
	SetIMAPCursor(ctx context.Context, mailbox string, uidValidity, lastUID uint32, fetched int) error
	AgentCursor(ctx context.Context, agent string) (storage.AgentCursor, error)
	AdvanceAgentCursor(ctx context.Context, agent, agentID string, version uint64, mails int) error
	TouchAgentCursor(ctx context.Context, agent string) error
	RefreshSpamSenders(ctx context.Context, src storage.SourceRow, runKey string, window time.Duration) (contract.LoadResult, error)
}

// FluxStore is what the flux module reads and writes (storage.DB): triage
// verdicts, monitors and their checks, networks and their agents.
type FluxStore interface {
	DueForTriage(ctx context.Context, domains []string, now time.Time, coolDown time.Duration) ([]string, error)
	RecordTriage(ctx context.Context, vs []storage.FluxVerdict) error
	AllowlistNets(ctx context.Context) ([]netip.Prefix, error)
	SetFluxMonitor(ctx context.Context, domain, state string, summary *flux.Summary, at time.Time) error
	RecordFluxChecks(ctx context.Context, ws []storage.FluxWrite) error
	UpdateFluxNetworks(ctx context.Context) ([]storage.FluxNetwork, error)
	RefreshFluxAgents(ctx context.Context, src storage.SourceRow, runKey string) (contract.LoadResult, error)
	// The probers' schedule.
	RegisterFluxMonitor(ctx context.Context, r contract.MonitorRegistration, at time.Time) error
	FluxSchedule(ctx context.Context, shard, shards int, horizon int64) ([]storage.ScheduledDomain, int64, error)
	RecordProbeChecks(ctx context.Context, cs []storage.ProbeCheck) (map[string]int, error)
	ProbeHistories(ctx context.Context, domains []string) ([]storage.ProbeHistory, error)
	SaveProbeCheckpoints(ctx context.Context, cps []storage.ProbeCheckpoint) error
	EndProbe(ctx context.Context, domain string) error
	UnscheduledMonitors(ctx context.Context) ([]string, error)
}
