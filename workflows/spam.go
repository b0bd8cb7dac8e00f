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
	var parts, problems []string
	var domains []string
	newMail := 0
	for _, src := range plan.Archives {
		var due []spamarchive.Archive
		if err := workflow.ExecuteActivity(dbCtx, contract.ListSpamArchivesActivity, src).Get(ctx, &due); err != nil {
			problems = append(problems, src.Name+": "+rootCause(err))
			continue
		}
		ingested := 0
		for _, ar := range due {
			childCtx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID:            contract.ArchiveWorkflowID(src.Name, ar.Period),
				TypedSearchAttributes: temporal.NewSearchAttributes(Module.ValueSet(contract.SpamModule), Source.ValueSet(src.Name)),
			})
			var r contract.IngestResult
			err := workflow.ExecuteChildWorkflow(childCtx, SpamArchiveIngest, contract.ArchiveIngestInput{Source: src, Archive: ar}).Get(ctx, &r)
			if err != nil {
				problems = append(problems, ar.Name+": "+rootCause(err))
				continue
			}
			if r.Status != contract.FetchUnchanged {
				ingested++
			}
			newMail += r.New
			domains = append(domains, r.Domains...)
		}
		parts = append(parts, fmt.Sprintf("%s: %d of %d archives changed", src.Name, ingested, len(due)))
	}
	for _, box := range plan.Mailboxes {
		childCtx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            contract.MailboxWorkflowID(box.Name),
			TypedSearchAttributes: temporal.NewSearchAttributes(Module.ValueSet(contract.SpamModule), Mailbox.ValueSet(box.Name)),
		})
		var r contract.IngestResult
		if err := workflow.ExecuteChildWorkflow(childCtx, SpamMailboxPoll, box).Get(ctx, &r); err != nil {
			problems = append(problems, box.Name+": "+rootCause(err))
			continue
		}
		newMail += r.New
		domains = append(domains, r.Domains...)
		parts = append(parts, fmt.Sprintf("%s: %d fetched", box.Name, r.Members))
	}
	for _, ag := range plan.Agents {
		childCtx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            contract.AgentWorkflowID(ag.Name),
			TypedSearchAttributes: temporal.NewSearchAttributes(Module.ValueSet(contract.SpamModule), Agent.ValueSet(ag.Name)),
		})
		var r contract.IngestResult
		if err := workflow.ExecuteChildWorkflow(childCtx, AgentSync, ag).Get(ctx, &r); err != nil {
			problems = append(problems, ag.Name+": "+rootCause(err))
			continue
		}
		newMail += r.New
		domains = append(domains, r.Domains...)
		parts = append(parts, fmt.Sprintf("%s: %d mails pulled", ag.Name, r.Members))
	}
	summary := fmt.Sprintf("%d new mails", newMail)
	if len(parts) > 0 {
		summary += "; " + strings.Join(parts, ", ")
	}
	var senders contract.LoadResult
	if err := workflow.ExecuteActivity(dbCtx, contract.RefreshSpamSendersActivity, workflow.GetInfo(ctx).WorkflowExecution.ID).Get(ctx, &senders); err != nil {
		problems = append(problems, "senders: "+rootCause(err))
	} else {
		summary += fmt.Sprintf("; %s: %d listed (+%d -%d)", contract.SpamSendersSource, senders.Entries, senders.Added, senders.Removed)
	}
	if len(problems) > 0 {
		summary += "; problems: " + strings.Join(problems, "; ")
	}
	slices.Sort(domains)
	return contract.ModuleResult{Summary: summary, Events: domainEvents(slices.Compact(domains), contract.SpamModule)}, nil
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
