package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/spamarchive"
	"github.com/tip-project/tip/workflows/contract"
)

func TestSpamCollectIngestsArchivesAndMailboxesAndReportsDomains(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(SpamArchiveIngest)
	env.RegisterWorkflow(SpamMailboxPoll)
	env.RegisterWorkflow(AgentSync)
	registerActivities(env)
	plan := contract.SpamPlan{
		Archives:  []catalog.SpamArchive{{Name: "lab", Index: "http://x/spam/", Trap: "t"}},
		Mailboxes: []catalog.Mailbox{{Name: "inbox", Trap: "t"}, {Name: "broken", Trap: "t"}},
		Agents:    []catalog.Agent{{Name: "mx1"}, {Name: "mx2"}},
	}
	env.OnActivity(a.ReadSpamCatalog, mock.Anything).Return(plan, nil)
	env.OnActivity(a.ListSpamArchives, mock.Anything, mock.Anything).Return([]spamarchive.Archive{
		{Name: "2026-08.7z", Period: "2026-08"}, {Name: "2026-09.7z", Period: "2026-09"}}, nil)
	var domains []string
	for i := 0; i < 2500; i++ {
		domains = append(domains, fmt.Sprintf("d%04d.example", i))
	}
	env.OnActivity(a.IngestSpamArchive, mock.Anything, mock.Anything).Return(func(_ context.Context, in contract.ArchiveIngestInput) (contract.IngestResult, error) {
		if in.Archive.Period == "2026-08" {
			return contract.IngestResult{Status: contract.FetchUnchanged}, nil
		}
		return contract.IngestResult{Status: "ingested", New: 40, Members: 40, Domains: domains[:2000]}, nil
	})
	env.OnActivity(a.PollMailbox, mock.Anything, mock.Anything).Return(func(_ context.Context, box catalog.Mailbox) (contract.IngestResult, error) {
		if box.Name == "broken" {
			return contract.IngestResult{}, errors.New("imap broken: login as trap: authentication failed")
		}
		return contract.IngestResult{Status: "ingested", New: 3, Members: 3, Domains: domains[1990:]}, nil
	})
	env.OnActivity(a.SyncAgent, mock.Anything, mock.Anything).Return(func(_ context.Context, ag catalog.Agent) (contract.IngestResult, error) {
		if ag.Name == "mx2" {
			return contract.IngestResult{}, temporal.NewNonRetryableApplicationError("agent mx2 refused the token", "AgentAuth", nil)
		}
		return contract.IngestResult{Status: "ingested", New: 4, Members: 5, Domains: domains[:10]}, nil
	})
	env.OnActivity(a.RefreshSpamSenders, mock.Anything, mock.Anything).Return(contract.LoadResult{Status: contract.RunLoaded, Entries: 12, Added: 12}, nil)
	env.ExecuteWorkflow(SpamCollect, contract.ModuleInput{Module: contract.SpamModule})
	var res contract.ModuleResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"47 new mails", "lab: 1 of 2 archives changed", "inbox: 3 fetched", "mx1: 5 mails pulled",
		"tip-spamtrap-senders: 12 listed (+12 -0)", "problems: broken: ", "authentication failed", "mx2: agent mx2 refused the token"} {
		if !strings.Contains(res.Summary, want) {
			t.Errorf("summary %q lacks %q", res.Summary, want)
		}
	}
	// 2,500 distinct domains in events of at most 2,000.
	n := 0
	for _, ev := range res.Events {
		if ev.Kind != contract.EventDomainsDiscovered || ev.From != contract.SpamModule || len(ev.Items) > maxDomainsPerEvent {
			t.Errorf("event %s from %s with %d items", ev.Kind, ev.From, len(ev.Items))
		}
		n += len(ev.Items)
	}
	if len(res.Events) != 2 || n != 2500 {
		t.Errorf("%d events with %d domains, want 2 with 2500", len(res.Events), n)
	}
}
