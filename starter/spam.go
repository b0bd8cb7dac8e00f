package starter

import (
	"context"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/spamarchive"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

// The spam module's runs started by hand (`tip spam ingest`, `tip spam imap
// poll`, `tip agents sync`), with the IDs and search attributes SpamCollect
// gives its children: a run of the same archive, mailbox or agent is the same
// workflow ID either way.

// StartArchiveIngest starts the ingest of one archive of a public spam archive
// source; the run returns a contract.IngestResult.
func StartArchiveIngest(ctx context.Context, c client.Client, cfg config.Temporal, src catalog.SpamArchive, ar spamarchive.Archive) (client.WorkflowRun, error) {
	return start(ctx, c, cfg, contract.ArchiveWorkflowID(src.Name, ar.Period),
		temporal.NewSearchAttributes(workflows.Module.ValueSet(contract.SpamModule), workflows.Source.ValueSet(src.Name)),
		contract.SpamArchiveIngestWorkflow, contract.ArchiveIngestInput{Source: src, Archive: ar})
}

// PollMailbox polls one IMAP spamtrap mailbox now and returns what it stored.
func PollMailbox(ctx context.Context, c client.Client, cfg config.Temporal, box catalog.Mailbox) (contract.IngestResult, error) {
	run, err := start(ctx, c, cfg, contract.MailboxWorkflowID(box.Name),
		temporal.NewSearchAttributes(workflows.Module.ValueSet(contract.SpamModule), workflows.Mailbox.ValueSet(box.Name)),
		contract.SpamMailboxPollWorkflow, box)
	return result[contract.IngestResult](ctx, run, err)
}

// SyncAgent pulls one spamtrap agent's mail now and returns what it stored.
func SyncAgent(ctx context.Context, c client.Client, cfg config.Temporal, ag catalog.Agent) (contract.IngestResult, error) {
	run, err := start(ctx, c, cfg, contract.AgentWorkflowID(ag.Name),
		temporal.NewSearchAttributes(workflows.Module.ValueSet(contract.SpamModule), workflows.Source.ValueSet(ag.Name), workflows.Agent.ValueSet(ag.Name)),
		contract.AgentSyncWorkflow, ag)
	return result[contract.IngestResult](ctx, run, err)
}

// start starts a workflow by hand on the configured task queue, with the SDK's
// default ID reuse and conflict policies.
func start(ctx context.Context, c client.Client, cfg config.Temporal, id string, attrs temporal.SearchAttributes, workflow string, arg any) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: cfg.TaskQueue, TypedSearchAttributes: attrs}, workflow, arg)
	if err != nil {
		return nil, ExplainTemporal(cfg.Address, err)
	}
	return run, nil
}

// result waits for the result of a run start returned, or returns its error.
func result[T any](ctx context.Context, run client.WorkflowRun, err error) (T, error) {
	var res T
	if err != nil {
		return res, err
	}
	err = run.Get(ctx, &res)
	return res, err
}
