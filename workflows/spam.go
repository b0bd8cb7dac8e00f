package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/spamarchive"
)

// SpamModule is the core's name for spam collection.
const SpamModule = "spam-collect"

// EventDomainsDiscovered carries domains for flux triage: the registrable domains
// of spam URLs (spam-collect) and domains new to the blacklists (blacklist-refresh).
const EventDomainsDiscovered = "domains-discovered"

// maxDomainsPerEvent keeps one event's payload small.
const maxDomainsPerEvent = 2000

// SpamCollect harvests every enabled collector of the spam catalog: the archives
// of each public archive not fully ingested (one SpamArchiveIngest child each, one
// at a time per archive source), then lists the senders of recent spam as TIP's own
// blacklist source and reports the new URL domains to the core.
func SpamCollect(ctx workflow.Context, in ModuleInput) (ModuleResult, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var plan activities.SpamPlan
	if err := workflow.ExecuteActivity(actx, a.ReadSpamCatalog).Get(ctx, &plan); err != nil {
		return ModuleResult{}, err
	}
	var parts, problems []string
	var domains []string
	newMail := 0
	for _, src := range plan.Archives {
		var due []spamarchive.Archive
		if err := workflow.ExecuteActivity(actx, a.ListSpamArchives, src).Get(ctx, &due); err != nil {
			problems = append(problems, src.Name+": "+rootCause(err))
			continue
		}
		ingested := 0
		for _, ar := range due {
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID:            "spam/archive/" + src.Name + "/" + ar.Period,
				TypedSearchAttributes: temporal.NewSearchAttributes(Module.ValueSet(SpamModule), Source.ValueSet(src.Name)),
			})
			var r activities.IngestResult
			err := workflow.ExecuteChildWorkflow(cctx, SpamArchiveIngest, activities.ArchiveIngestInput{Source: src, Archive: ar}).Get(ctx, &r)
			if err != nil {
				problems = append(problems, ar.Name+": "+rootCause(err))
				continue
			}
			if r.Status != activities.FetchUnchanged {
				ingested++
			}
			newMail += r.New
			domains = append(domains, r.Domains...)
		}
		parts = append(parts, fmt.Sprintf("%s: %d of %d archives changed", src.Name, ingested, len(due)))
	}
	for _, box := range plan.Mailboxes {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            "spam/imap/" + box.Name,
			TypedSearchAttributes: temporal.NewSearchAttributes(Module.ValueSet(SpamModule), Mailbox.ValueSet(box.Name)),
		})
		var r activities.IngestResult
		if err := workflow.ExecuteChildWorkflow(cctx, SpamMailboxPoll, box).Get(ctx, &r); err != nil {
			problems = append(problems, box.Name+": "+rootCause(err))
			continue
		}
		newMail += r.New
		domains = append(domains, r.Domains...)
		parts = append(parts, fmt.Sprintf("%s: %d fetched", box.Name, r.Members))
	}
	// Agents came after the first runs: a run started before them replays without.
	if workflow.GetVersion(ctx, "spam-agents", workflow.DefaultVersion, 1) == 1 {
		for _, ag := range plan.Agents {
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID:            "agent/" + ag.Name,
				TypedSearchAttributes: temporal.NewSearchAttributes(Module.ValueSet(SpamModule), Source.ValueSet(ag.Name)),
			})
			var r activities.IngestResult
			if err := workflow.ExecuteChildWorkflow(cctx, AgentSync, ag).Get(ctx, &r); err != nil {
				problems = append(problems, ag.Name+": "+rootCause(err))
				continue
			}
			newMail += r.New
			domains = append(domains, r.Domains...)
			parts = append(parts, fmt.Sprintf("%s: %d mails pulled", ag.Name, r.Members))
		}
	}
	summary := fmt.Sprintf("%d new mails", newMail)
	if len(parts) > 0 {
		summary += "; " + strings.Join(parts, ", ")
	}
	var senders activities.LoadResult
	if err := workflow.ExecuteActivity(actx, a.RefreshSpamSenders, workflow.GetInfo(ctx).WorkflowExecution.ID).Get(ctx, &senders); err != nil {
		problems = append(problems, "senders: "+rootCause(err))
	} else {
		summary += fmt.Sprintf("; %s: %d listed (+%d -%d)", activities.SpamSendersSource, senders.Entries, senders.Added, senders.Removed)
	}
	if len(problems) > 0 {
		summary += "; problems: " + strings.Join(problems, "; ")
	}
	slices.Sort(domains)
	return ModuleResult{Summary: summary, Events: domainEvents(slices.Compact(domains), SpamModule)}, nil
}

// domainEvents are domains-discovered events from a module, maxDomainsPerEvent
// domains each.
func domainEvents(domains []string, from string) []Event {
	var evs []Event
	for len(domains) > 0 {
		n := min(len(domains), maxDomainsPerEvent)
		evs = append(evs, Event{Kind: EventDomainsDiscovered, Items: domains[:n], From: from})
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
func SpamArchiveIngest(ctx workflow.Context, in activities.ArchiveIngestInput) (activities.IngestResult, error) {
	ctx = workflow.WithActivityOptions(ctx, longCollection)
	var r activities.IngestResult
	err := workflow.ExecuteActivity(ctx, a.IngestSpamArchive, in).Get(ctx, &r)
	return r, err
}

// SpamMailboxPoll fetches the new mail of one IMAP spamtrap mailbox.
func SpamMailboxPoll(ctx workflow.Context, box catalog.Mailbox) (activities.IngestResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2,
			MaximumInterval: 2 * time.Minute, MaximumAttempts: 5},
	})
	var r activities.IngestResult
	err := workflow.ExecuteActivity(ctx, a.PollMailbox, box).Get(ctx, &r)
	return r, err
}

// AgentSync pulls the batches a spamtrap agent published since the last sync. Its
// activity heartbeats each batch recorded; after a crash the retry resumes after
// the last batch whose cursor advanced.
func AgentSync(ctx workflow.Context, ag catalog.Agent) (activities.IngestResult, error) {
	ctx = workflow.WithActivityOptions(ctx, longCollection)
	var r activities.IngestResult
	err := workflow.ExecuteActivity(ctx, a.SyncAgent, ag).Get(ctx, &r)
	return r, err
}
