package workflows

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/workflows/contract"
)

func TestBlacklistRefreshToleratesBrokenSources(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(SourceRefresh)
	registerActivities(env)

	var sources []catalog.Source
	for i := 0; i < 12; i++ {
		sources = append(sources, catalog.Source{Name: fmt.Sprintf("src-%02d", i), Format: "ip-list", Type: "ipv4"})
	}
	env.OnActivity(a.ReadCatalog, mock.Anything).Return(sources, nil)
	env.OnActivity(a.FetchSource, mock.Anything, mock.Anything).Return(func(_ context.Context, src catalog.Source) (contract.FetchResult, error) {
		switch src.Name {
		case "src-03": // unreachable every time: retried, then recorded as failed
			return contract.FetchResult{}, temporal.NewApplicationError("connection refused", "net")
		case "src-05":
			return contract.FetchResult{Source: src.Name, Status: contract.FetchDead, Error: "404"}, nil
		}
		return contract.FetchResult{Source: src.Name, Status: contract.FetchChanged, SHA256: "x"}, nil
	})
	var mu sync.Mutex
	keys := map[string]string{}
	env.OnActivity(a.LoadSource, mock.Anything, mock.Anything).Return(func(_ context.Context, in contract.LoadInput) (contract.LoadResult, error) {
		mu.Lock()
		keys[in.Source.Name] = in.RunKey
		mu.Unlock()
		switch in.Fetch.Status {
		case contract.FetchFailed:
			if !strings.Contains(in.Fetch.Error, "connection refused") {
				return contract.LoadResult{}, errors.New("fetch error lost: " + in.Fetch.Error)
			}
			return contract.LoadResult{Source: in.Source.Name, Status: contract.RunFailed, Error: in.Fetch.Error}, nil
		case contract.FetchDead:
			return contract.LoadResult{Source: in.Source.Name, Status: contract.RunDead}, nil
		}
		return contract.LoadResult{Source: in.Source.Name, Status: contract.RunLoaded, Added: 10}, nil
	})

	// An allowlist that failed is reported but does not fail the refresh; metrics still run.
	env.OnActivity(a.RefreshAllowlists, mock.Anything).Return([]contract.AllowlistResult{
		{Name: "tranco-top", Status: contract.RunLoaded, Entries: 10000},
		{Name: "cdn", Status: contract.FetchUnchanged, Entries: 12},
		{Name: "broken", Status: "failed", Error: "answers 500"}}, nil).Once()
	env.OnActivity(a.ComputeMetrics, mock.Anything).Return("weights of 12 sources computed (highest: src-00 0.90)", nil).Once()
	// Domains new to the blacklists since the refresh began go to flux triage.
	start := env.Now()
	env.OnActivity(a.NewListedDomains, mock.Anything, mock.Anything).Return(func(_ context.Context, since time.Time) ([]string, error) {
		if !since.Equal(start) {
			return nil, fmt.Errorf("since %s, want the refresh's start %s", since, start)
		}
		return []string{"flux-one.example", "flux-two.example"}, nil
	}).Once()
	env.ExecuteWorkflow(BlacklistRefresh, contract.ModuleInput{Module: contract.BlacklistModule})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("refresh failed: %v", err)
	}
	var res contract.ModuleResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"12 sources: 10 loaded, 1 dead, 1 failed", "+100 -0", "src-03 failed", "src-05 dead",
		"allowlists: tranco-top 10000 entries, broken failed: answers 500", "weights of 12 sources"} {
		if !strings.Contains(res.Summary, want) {
			t.Errorf("summary %q lacks %q", res.Summary, want)
		}
	}
	if len(keys) != 12 || !strings.HasPrefix(keys["src-07"], "blacklist/src-07/") {
		t.Errorf("run keys: %v", keys)
	}
	if strings.Contains(res.Summary, "cdn") {
		t.Errorf("an unchanged allowlist is not news: %q", res.Summary)
	}
	want := []contract.Event{{Kind: contract.EventDomainsDiscovered, Items: []string{"flux-one.example", "flux-two.example"}, From: contract.BlacklistModule}}
	if !reflect.DeepEqual(res.Events, want) || !strings.Contains(res.Summary, "2 new domains to flux triage") {
		t.Errorf("events %+v (summary %q), want %+v", res.Events, res.Summary, want)
	}
}

func TestBlacklistRefreshSurvivesAllowlistFailure(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(SourceRefresh)
	registerActivities(env)
	env.OnActivity(a.ReadCatalog, mock.Anything).Return([]catalog.Source{{Name: "a"}}, nil)
	env.OnActivity(a.FetchSource, mock.Anything, mock.Anything).Return(contract.FetchResult{Source: "a", Status: contract.FetchUnchanged}, nil)
	env.OnActivity(a.LoadSource, mock.Anything, mock.Anything).Return(contract.LoadResult{Source: "a", Status: contract.RunUnchanged}, nil)
	env.OnActivity(a.RefreshAllowlists, mock.Anything).Return(nil, errors.New("database is shutting down"))
	env.OnActivity(a.ComputeMetrics, mock.Anything).Return("weights of 1 source computed", nil).Once()
	env.OnActivity(a.NewListedDomains, mock.Anything, mock.Anything).Return(nil, errors.New("database is shutting down"))
	env.ExecuteWorkflow(BlacklistRefresh, contract.ModuleInput{Module: contract.BlacklistModule})
	var res contract.ModuleResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Summary, "allowlists not refreshed: database is shutting down") || !strings.Contains(res.Summary, "weights of 1 source") ||
		!strings.Contains(res.Summary, "new domains not sent to triage: database is shutting down") || len(res.Events) != 0 {
		t.Errorf("summary %q, events %v", res.Summary, res.Events)
	}
}

func TestOnlyRequestedSources(t *testing.T) {
	all := []catalog.Source{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	if got := onlyRequested(all, nil); len(got) != 3 {
		t.Fatalf("no request: %v", got)
	}
	got := onlyRequested(all, []contract.Event{{Kind: "domains-discovered", Items: []string{"a"}}, {Kind: contract.EventRefreshSources, Items: []string{"c", "zz"}}})
	if len(got) != 1 || got[0].Name != "c" {
		t.Fatalf("requested c: %v", got)
	}
}
