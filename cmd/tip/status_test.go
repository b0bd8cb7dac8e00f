package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/status"
	"github.com/tip-project/tip/workflows/contract"
)

// With neither PostgreSQL nor Temporal answering, status still prints what it
// tried and exits 1; --json says the same.
func TestStatusWithNothingToReadExitsOne(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("TIP_TEMPORAL_ADDRESS", testenv.FreeAddr(t))
	t.Setenv("TIP_POSTGRES_DSN", "postgres://tip:tip@"+testenv.FreeAddr(t)+"/tip?sslmode=disable&connect_timeout=2")
	for _, args := range [][]string{{"status"}, {"status", "--json"}} {
		out, err := runTip(t, args...)
		var exit exitError
		if !errors.As(err, &exit) || exit != 1 {
			t.Errorf("tip %v = %v, want exit status 1\n%s", args, err, out)
		}
		if !strings.Contains(out, "not reachable") {
			t.Errorf("tip %v does not say why:\n%s", args, out)
		}
	}
}

// TestStatusShowsTheRunningStack runs the core on a worker with a blacklist
// catalog of two feeds, one of them gone (404), and a spam catalog whose only
// collector is an agent without a token: status shows the core's modules with
// their results, the feeds' health, the agent with no good run, and both
// failures under errors (the dead feed from PostgreSQL, the failed agent sync
// from Temporal).
func TestStatusShowsTheRunningStack(t *testing.T) {
	testenv.Stack(t) // skips in -short mode
	ctx := context.Background()
	feeds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/good.txt" {
			fmt.Fprint(w, "198.51.100.7\n198.51.100.8\n")
			return
		}
		http.NotFound(w, r)
	}))
	defer feeds.Close()
	sources := filepath.Join(t.TempDir(), "sources.yaml")
	if err := os.WriteFile(sources, []byte(fmt.Sprintf(`allow_private: true
sources:
  - {name: good-feed, url: "%[1]s/good.txt", format: ip-list, type: ipv4}
  - {name: gone-feed, url: "%[1]s/gone.txt", format: ip-list, type: ipv4}
`, feeds.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TIP_TEST_STATUS_TOKEN", "") // the agent's token is missing: its syncs fail at once
	cfg := startCollector(t, `traps:
  - {name: one, mx: [mx.one.example]}
agents:
  - {name: tokenless, url: "https://127.0.0.1:9", token_env: TIP_TEST_STATUS_TOKEN, fingerprint: "`+strings.Repeat("ab", 32)+`"}
`, func(c *config.Config) { c.Blacklists.Catalog = sources })
	t.Setenv("TIP_BLACKLISTS_CATALOG", sources)
	if out, err := runTip(t, "core", "start"); err != nil {
		t.Fatalf("core start: %v\n%s", err, out)
	}
	tc, err := starter.Dial(ctx, cfg.Temporal, slog.New(slog.DiscardHandler), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	defer func() { _ = tc.TerminateWorkflow(ctx, contract.CoreWorkflowID, "", "test over") }()

	var out string
	waitFor(t, 45*time.Second, "the first runs' results and failures in tip status", func() (bool, string) {
		out, err = runTip(t, "status")
		return err == nil && strings.Contains(out, "source gone-feed") && strings.Contains(out, "workflow agent/tokenless") &&
			strings.Contains(out, "ok ") && !strings.Contains(out, "never  "), errText(err) + "\n" + out
	})
	t.Logf("tip status:\n%s", out)
	lines := strings.Split(out, "\n")
	hasLine := func(prefix string, parts ...string) bool {
		return slices.ContainsFunc(lines, func(l string) bool {
			if !strings.HasPrefix(l, prefix) {
				return false
			}
			for _, p := range parts {
				if !strings.Contains(l, p) {
					return false
				}
			}
			return true
		})
	}
	for _, want := range []struct {
		prefix string
		parts  []string
	}{
		{"temporal " + cfg.Temporal.Address, []string{"queue test-", "): 1 worker"}}, // cut at the width: the queue's name is long
		{"core: tip-core, 5 modules", nil},
		{"  blacklist-refresh  ", []string{" ok ", "2 sources: 1 loaded, 1 dead"}},
		{"  spam-collect  ", []string{" ok ", "0 new mails"}},
		{"  flux-triage  ", []string{" ok "}},
		{"  flux-networks  ", []string{" ok "}},
		{"  data-retention  ", []string{" ok ", "flux observations before"}},
		{"flux: 0 running (0 watching, 0 stable, 0 paused) · Temporal runs 0 · 0 networks", nil},
		{"sources: 4 — 3 ok, 0 failing, 1 dead", nil}, // and TIP's own two, from the spam and flux modules
		{"  gone-feed ", []string{"dead", "404"}},
		{"  agent:tokenless  ", []string{" 0 ", " - "}},
		{"errors: the 2 most recent", nil},
		{"  ", []string{"source gone-feed", "dead", "404"}},
		{"  ", []string{"workflow agent/tokenless", "failed", "agent tokenless: no token: set TIP_TEST_STATUS_TOKEN"}},
	} {
		if !hasLine(want.prefix, want.parts...) {
			t.Errorf("no line starting %q with %q", want.prefix, want.parts)
		}
	}

	out, err = runTip(t, "status", "--json", "--errors", "5")
	var r status.Report
	if err != nil || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("status --json = %v\n%s", err, out)
	}
	var where []string
	for _, p := range r.Problems {
		where = append(where, p.Where)
	}
	spamResult := ""
	if r.Core != nil {
		for _, m := range r.Core.Modules {
			if m.Name == contract.SpamModule && m.Last != nil {
				spamResult = m.Last.Summary
			}
		}
	}
	if !strings.Contains(spamResult, "problems: tokenless: agent tokenless: no token") {
		t.Errorf("spam-collect's last result %q does not name the agent's failure", spamResult)
	}
	if r.Core == nil || len(r.Core.Modules) != 5 || r.Temporal.Workers != 1 || len(r.Sources) != 4 || r.FluxWorkflows == nil ||
		!slices.Contains(where, "source gone-feed") || !slices.Contains(where, "workflow agent/tokenless") {
		t.Errorf("status --json: core %+v, workers %d, %d sources, problems %v", r.Core, r.Temporal.Workers, len(r.Sources), where)
	}
}
