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

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/catalog"
)

func TestBlacklistRefreshToleratesBrokenSources(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(SourceRefresh)
	env.RegisterActivity(&activities.Activities{})

	var sources []catalog.Source
	for i := 0; i < 12; i++ {
		sources = append(sources, catalog.Source{Name: fmt.Sprintf("src-%02d", i), Format: "ip-list", Type: "ipv4"})
	}
	env.OnActivity(a.ReadCatalog, mock.Anything).Return(sources, nil)
	env.OnActivity(a.FetchSource, mock.Anything, mock.Anything).Return(func(_ context.Context, src catalog.Source) (activities.FetchResult, error) {
		switch src.Name {
		case "src-03": // unreachable every time: retried, then recorded as failed
			return activities.FetchResult{}, temporal.NewApplicationError("connection refused", "net")
		case "src-05":
			return activities.FetchResult{Source: src.Name, Status: activities.FetchDead, Error: "404"}, nil
		}
		return activities.FetchResult{Source: src.Name, Status: activities.FetchChanged, SHA256: "x"}, nil
	})
	var mu sync.Mutex
	keys := map[string]string{}
	env.OnActivity(a.LoadSource, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.LoadInput) (activities.LoadResult, error) {
		mu.Lock()
		keys[in.Source.Name] = in.RunKey
		mu.Unlock()
		switch in.Fetch.Status {
		case activities.FetchFailed:
			if !strings.Contains(in.Fetch.Error, "connection refused") {
				return activities.LoadResult{}, errors.New("fetch error lost: " + in.Fetch.Error)
			}
			return activities.LoadResult{Source: in.Source.Name, Status: activities.RunFailed, Error: in.Fetch.Error}, nil
		case activities.FetchDead:
			return activities.LoadResult{Source: in.Source.Name, Status: activities.RunDead}, nil
		}
		return activities.LoadResult{Source: in.Source.Name, Status: activities.RunLoaded, Added: 10}, nil
	})

	// An allowlist that failed is reported but does not fail the refresh; metrics still run.
	env.OnActivity(a.RefreshAllowlists, mock.Anything).Return([]activities.AllowlistResult{
		{Name: "tranco-top", Status: activities.RunLoaded, Entries: 10000},
		{Name: "cdn", Status: activities.FetchUnchanged, Entries: 12},
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
	env.ExecuteWorkflow(BlacklistRefresh, ModuleInput{Module: BlacklistModule})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("refresh failed: %v", err)
	}
	var res ModuleResult
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
	want := []Event{{Kind: EventDomainsDiscovered, Items: []string{"flux-one.example", "flux-two.example"}, From: BlacklistModule}}
	if !reflect.DeepEqual(res.Events, want) || !strings.Contains(res.Summary, "2 new domains to flux triage") {
		t.Errorf("events %+v (summary %q), want %+v", res.Events, res.Summary, want)
	}
}

func TestBlacklistRefreshSurvivesAllowlistFailure(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(SourceRefresh)
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.ReadCatalog, mock.Anything).Return([]catalog.Source{{Name: "a"}}, nil)
	env.OnActivity(a.FetchSource, mock.Anything, mock.Anything).Return(activities.FetchResult{Source: "a", Status: activities.FetchUnchanged}, nil)
	env.OnActivity(a.LoadSource, mock.Anything, mock.Anything).Return(activities.LoadResult{Source: "a", Status: activities.RunUnchanged}, nil)
	env.OnActivity(a.RefreshAllowlists, mock.Anything).Return(nil, errors.New("database is shutting down"))
	env.OnActivity(a.ComputeMetrics, mock.Anything).Return("weights of 1 source computed", nil).Once()
	env.OnActivity(a.NewListedDomains, mock.Anything, mock.Anything).Return(nil, errors.New("database is shutting down"))
	env.ExecuteWorkflow(BlacklistRefresh, ModuleInput{Module: BlacklistModule})
	var res ModuleResult
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
	got := onlyRequested(all, []Event{{Kind: "domains-discovered", Items: []string{"a"}}, {Kind: EventRefreshSources, Items: []string{"c", "zz"}}})
	if len(got) != 1 || got[0].Name != "c" {
		t.Fatalf("requested c: %v", got)
	}
}
