package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/spamarchive"
	"github.com/tip-project/tip/workflows/contract"
)

// maxDomainsPerEvent keeps one event's payload small.
const maxDomainsPerEvent = 2000

// SpamCollect harvests every enabled collector of the spam catalog: the archives
// of each public archive not fully ingested (one SpamArchiveIngest child each, one
// at a time per archive source), then lists the senders of recent spam as TIP's own
// blacklist source and reports the new URL domains to the core.
func SpamCollect(ctx workflow.Context, in contract.ModuleInput) (contract.ModuleResult, error) {
	dbCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var plan contract.SpamPlan
	if err := workflow.ExecuteActivity(dbCtx, contract.ReadSpamCatalogActivity).Get(ctx, &plan); err != nil {
		return contract.ModuleResult{}, err
	}
	var run spamRun
	for _, src := range plan.Archives {
		var due []spamarchive.Archive
		if err := workflow.ExecuteActivity(dbCtx, contract.ListSpamArchivesActivity, src).Get(ctx, &due); err != nil {
			run.problems = append(run.problems, src.Name+": "+rootCause(err))
			continue
		}
		changed := 0
		for _, ar := range due {
			r, ok := run.collect(ctx, ar.Name, contract.ArchiveWorkflowID(src.Name, ar.Period), Source.ValueSet(src.Name),
				SpamArchiveIngest, contract.ArchiveIngestInput{Source: src, Archive: ar})
			if ok && r.Status != contract.FetchUnchanged {
				changed++
			}
		}
		run.parts = append(run.parts, fmt.Sprintf("%s: %d of %d archives changed", src.Name, changed, len(due)))
	}
	for _, box := range plan.Mailboxes {
		if r, ok := run.collect(ctx, box.Name, contract.MailboxWorkflowID(box.Name), Mailbox.ValueSet(box.Name), SpamMailboxPoll, box); ok {
			run.parts = append(run.parts, fmt.Sprintf("%s: %d fetched", box.Name, r.Members))
		}
	}
	for _, ag := range plan.Agents {
		if r, ok := run.collect(ctx, ag.Name, contract.AgentWorkflowID(ag.Name), Agent.ValueSet(ag.Name), AgentSync, ag); ok {
			run.parts = append(run.parts, fmt.Sprintf("%s: %d mails pulled", ag.Name, r.Members))
		}
	}
	summary := fmt.Sprintf("%d new mails", run.newMail)
	if len(run.parts) > 0 {
		summary += "; " + strings.Join(run.parts, ", ")
	}
	var senders contract.LoadResult
	if err := workflow.ExecuteActivity(dbCtx, contract.RefreshSpamSendersActivity, workflow.GetInfo(ctx).WorkflowExecution.ID).Get(ctx, &senders); err != nil {
		run.problems = append(run.problems, "senders: "+rootCause(err))
	} else {
		summary += fmt.Sprintf("; %s: %d listed (+%d -%d)", contract.SpamSendersSource, senders.Entries, senders.Added, senders.Removed)
	}
	if len(run.problems) > 0 {
		summary += "; problems: " + strings.Join(run.problems, "; ")
	}
	slices.Sort(run.domains)
	return contract.ModuleResult{Summary: summary, Events: domainEvents(slices.Compact(run.domains), contract.SpamModule)}, nil
}

// spamRun is what a SpamCollect run gathers from its collectors' runs.
type spamRun struct {
	parts, problems []string // per collector, for the summary
	domains         []string // the URL domains of the new mail
	newMail         int
}

// collect runs one collector's child workflow (ID id, search attributes Module
// and attr) and folds in its new mail; false when the run failed (a problem).
func (r *spamRun) collect(ctx workflow.Context, name, id string, attr temporal.SearchAttributeUpdate, wf, in any) (contract.IngestResult, bool) {
	childCtx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            id,
		TypedSearchAttributes: temporal.NewSearchAttributes(Module.ValueSet(contract.SpamModule), attr),
	})
	var res contract.IngestResult
	if err := workflow.ExecuteChildWorkflow(childCtx, wf, in).Get(ctx, &res); err != nil {
		r.problems = append(r.problems, name+": "+rootCause(err))
		return res, false
	}
	r.newMail += res.New
	r.domains = append(r.domains, res.Domains...)
	return res, true
}

// domainEvents are domains-discovered events from a module, maxDomainsPerEvent
// domains each.
func domainEvents(domains []string, from string) []contract.Event {
	var evs []contract.Event
	for len(domains) > 0 {
		n := min(len(domains), maxDomainsPerEvent)
		evs = append(evs, contract.Event{Kind: contract.EventDomainsDiscovered, Items: domains[:n], From: from})
		domains = domains[n:]
	}
	return evs
}

// longCollection runs an activity that may read for hours (an archive, an
// agent's backlog): it heartbeats every batch it records and resumes after the
// last one on a retry.
var longCollection = workflow.ActivityOptions{
	StartToCloseTimeout: 3 * time.Hour,
	HeartbeatTimeout:    2 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2,
		MaximumInterval: 5 * time.Minute, MaximumAttempts: 10},
}

// SpamArchiveIngest ingests one archive of a public spam archive. Its activity
// heartbeats every batch; after a worker crash the retry skips what was recorded.
func SpamArchiveIngest(ctx workflow.Context, in contract.ArchiveIngestInput) (contract.IngestResult, error) {
	ctx = workflow.WithActivityOptions(ctx, longCollection)
	var r contract.IngestResult
	err := workflow.ExecuteActivity(ctx, contract.IngestSpamArchiveActivity, in).Get(ctx, &r)
	return r, err
}

// SpamMailboxPoll fetches the new mail of one IMAP spamtrap mailbox.
func SpamMailboxPoll(ctx workflow.Context, box catalog.Mailbox) (contract.IngestResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2,
			MaximumInterval: 2 * time.Minute, MaximumAttempts: 5},
	})
	var r contract.IngestResult
	err := workflow.ExecuteActivity(ctx, contract.PollMailboxActivity, box).Get(ctx, &r)
	return r, err
}

// AgentSync pulls the batches a spamtrap agent published since the last sync. Its
// activity heartbeats each batch recorded; after a crash the retry resumes after
// the last batch whose cursor advanced.
func AgentSync(ctx workflow.Context, ag catalog.Agent) (contract.IngestResult, error) {
	ctx = workflow.WithActivityOptions(ctx, longCollection)
	var r contract.IngestResult
	err := workflow.ExecuteActivity(ctx, contract.SyncAgentActivity, ag).Get(ctx, &r)
	return r, err
}
