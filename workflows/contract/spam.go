package contract

import (
	"time"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/spamarchive"
)

// The spam module: SpamCollect runs one SpamArchiveIngest per archive due, one
// SpamMailboxPoll per IMAP mailbox and one AgentSync per spamtrap agent.

// SpamPlan is what a spam collection run has to do, read from the spam catalog.
type SpamPlan struct {
	ASNTable  string                `json:"asn_table,omitempty"`
	Archives  []catalog.SpamArchive `json:"archives,omitempty"`
	Mailboxes []catalog.Mailbox     `json:"mailboxes,omitempty"`
	Agents    []catalog.Agent       `json:"agents,omitempty"`
}

// ArchiveIngestInput names one archive to ingest.
type ArchiveIngestInput struct {
	Source  catalog.SpamArchive `json:"source"`
	Archive spamarchive.Archive `json:"archive"`
}

// IngestResult says what an ingest stored. Domains and SenderIPs are the distinct
// ones of the mail new to TIP in this run (bounded), for the core's events.
type IngestResult struct {
	Origin    string   `json:"origin"`
	Status    string   `json:"status"` // ingested, unchanged
	Members   int      `json:"members"`
	New       int      `json:"new"`     // mails TIP had never seen
	Skipped   int      `json:"skipped"` // names already ingested (delta)
	Defective int      `json:"defective"`
	Domains   []string `json:"domains,omitempty"`
	SenderIPs []string `json:"sender_ips,omitempty"`
	Bytes     int64    `json:"bytes"`
	// Refused counts the mails a mailbox's server offered that were not taken
	// (larger than asked for); RefusedSample says which and why, the first
	// maxRefusedSample of them. Their UIDs are passed: they are not asked for again.
	Refused       int      `json:"refused,omitempty"`
	RefusedSample []string `json:"refused_sample,omitempty"`
}

// SpamSendersSource is TIP's own blacklist source: the true senders of recent
// spam, listed with the other sources so `tip lookup` and the exports show them.
const SpamSendersSource = "tip-spamtrap-senders"

// SpamSenderWindow is how long a sender stays listed after its last spam reached TIP.
const SpamSenderWindow = 7 * 24 * time.Hour

// ArchiveWorkflowID is the ID of the run that ingests one archive of a public
// spam archive source, e.g. "spam/archive/untroubled/2026-09".
func ArchiveWorkflowID(source, period string) string { return "spam/archive/" + source + "/" + period }

// MailboxWorkflowID is the ID of the run that polls one IMAP spamtrap mailbox.
func MailboxWorkflowID(mailbox string) string { return "spam/imap/" + mailbox }

// AgentWorkflowID is the ID of the run that pulls one spamtrap agent's mail
// (the agent sync module).
func AgentWorkflowID(agent string) string { return "agent/" + agent }

// The spam and agent sync modules' activities, by their registered names.
const (
	ReadSpamCatalogActivity    = "ReadSpamCatalog"
	ListSpamArchivesActivity   = "ListSpamArchives"
	IngestSpamArchiveActivity  = "IngestSpamArchive"
	PollMailboxActivity        = "PollMailbox"
	RefreshSpamSendersActivity = "RefreshSpamSenders"
	SyncAgentActivity          = "SyncAgent"
)
