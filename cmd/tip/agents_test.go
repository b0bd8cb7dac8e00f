package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/trap"
	"github.com/tip-project/tip/lab/world"
)

// TestAgentsCommands runs an agent with `tip agent serve` on a lab Maildir and
// drives the collector's side: tip agents add, list, sync (twice), reset.
func TestAgentsCommands(t *testing.T) {
	site, err := lab.NewSpamSite(300, world.FixedClock(world.DefaultStart.Add(10*time.Hour)), filepath.Join(t.TempDir(), "archive"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := startCollector(t, site.Catalog("http://127.0.0.1:1", "lab"))

	// The agent: init, trust rules, a token of scope raw, and the lab's spam.
	dir := filepath.Join(t.TempDir(), "agent")
	addr := testenv.FreeAddr(t)
	maildir := filepath.Join(dir, "Maildir")
	out, err := runTip(t, "agent", "init", "--dir", dir, "--id", "mx-lab", "--listen", addr, "--maildir", maildir+":spam")
	fp := regexp.MustCompile(`fingerprint \(SHA-256\): ([0-9a-f]{64})`).FindStringSubmatch(out)
	if err != nil || fp == nil {
		t.Fatalf("agent init = %v\n%s", err, out)
	}
	ac, err := agent.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	ac.Trap.MX, ac.Trap.MXAddrs, ac.Trap.Trusted = site.Rules()
	ac.ScanInterval, ac.BatchMaxWait, ac.BatchMaxMails = 20*time.Millisecond, 50*time.Millisecond, 100
	if err := ac.Save(); err != nil {
		t.Fatal(err)
	}
	out, err = runTip(t, "agent", "token", "add", "collector", "--scope", "raw", "--dir", dir)
	token := regexp.MustCompile(`tipa_[A-Za-z0-9_-]{43}`).FindString(out)
	if err != nil || token == "" {
		t.Fatalf("token add = %v\n%s", err, out)
	}
	delivered, err := trap.NewDelivery(lab.MailSource(site.Gen), site.Clock, maildir, filepath.Join(t.TempDir(), "delivery")).DeliverDue()
	if err != nil || delivered == 0 {
		t.Fatalf("delivered %d, %v", delivered, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		root := newRoot()
		root.SetOut(io.Discard)
		root.SetArgs([]string{"agent", "serve", "--dir", dir})
		served <- root.ExecuteContext(ctx)
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("agent serve: %v", err)
		}
	}()
	// Wait until the agent has published every delivered mail.
	c := &agent.Client{URL: "https://" + addr, Token: token, Fingerprint: fp[1]}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		page, err := c.Manifest(context.Background(), 0, 0)
		n := 0
		for _, e := range page.Versions {
			n += e.Mails
		}
		if err == nil && n == delivered {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the agent published %d of %d mails in 30 s (%v)", n, delivered, err)
		}
	}

	// The collector's side.
	t.Setenv("TIP_TEST_AGENT_TOKEN", token)
	colons := strings.ToUpper(regexp.MustCompile(`(..)`).ReplaceAllString(fp[1], "$1:"))
	out, err = runTip(t, "agents", "add", "--name", "mx1", "--url", "https://"+addr, "--token-env", "TIP_TEST_AGENT_TOKEN",
		"--fingerprint", strings.TrimSuffix(colons, ":"), "--raw")
	if err != nil || !strings.Contains(out, "added agent mx1") {
		t.Fatalf("agents add = %v\n%s", err, out)
	}
	if data, _ := os.ReadFile(cfg.Spam.Catalog); strings.Contains(string(data), token) || !strings.Contains(string(data), fp[1]) {
		t.Fatalf("catalog after agents add:\n%s", data)
	}
	out, err = runTip(t, "agents", "sync", "mx1")
	if want := "mx1: " + strconv.Itoa(delivered) + " mails pulled, " + strconv.Itoa(delivered) + " new to TIP"; err != nil || !strings.Contains(out, want) {
		t.Fatalf("agents sync = %v, want %q in\n%s", err, want, out)
	}
	if out, err := runTip(t, "agents", "sync", "mx1"); err != nil || !strings.Contains(out, "mx1: up to date") {
		t.Fatalf("second agents sync = %v\n%s", err, out)
	}
	out, err = runTip(t, "agents", "list", "--json")
	var row struct {
		Name   string `json:"name"`
		Raw    bool   `json:"raw"`
		Cursor struct {
			AgentID string `json:"agent_id"`
			Version uint64 `json:"version"`
			Mails   int    `json:"mails"`
		} `json:"cursor"`
	}
	if err != nil || json.Unmarshal([]byte(out), &row) != nil || row.Name != "mx1" || !row.Raw || row.Cursor.AgentID != "mx-lab" ||
		row.Cursor.Version == 0 || row.Cursor.Mails != delivered {
		t.Fatalf("agents list --json = %v\n%s", err, out)
	}
	if out, err := runTip(t, "agents", "reset", "mx1"); err != nil || !strings.Contains(out, "cursor reset") {
		t.Fatalf("agents reset = %v\n%s", err, out)
	}
	if out, err := runTip(t, "agents", "sync", "mx1"); err != nil || !strings.Contains(out, strconv.Itoa(delivered)+" mails pulled, 0 new to TIP") {
		t.Fatalf("agents sync after a reset = %v\n%s", err, out)
	}
	if out, err := runTip(t, "spam", "stats", "--json"); err != nil || !strings.Contains(out, `"mails":`+strconv.Itoa(delivered)+",") {
		t.Fatalf("spam stats after the agent's mail = %v\n%s", err, out)
	}
	if _, err := runTip(t, "agents", "sync", "absent"); err == nil {
		t.Error("agents sync of an agent the catalog does not name")
	}
}

// tip agents add takes the token's variable or its file, one of them.
func TestAgentsAddTokenFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	cat := filepath.Join(dir, "spam.yaml")
	if err := os.WriteFile(cat, []byte("traps:\n  - {name: t, mx: [mx.example.org]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TIP_SPAM_CATALOG", cat)
	add := []string{"agents", "add", "--name", "mx1", "--url", "https://mx1.example.org:8443", "--fingerprint", strings.Repeat("ab", 32)}
	for _, bad := range [][]string{nil, {"--token-env", "T", "--token-file", "mx1.token"}} {
		if out, err := runTip(t, append(add, bad...)...); err == nil {
			t.Errorf("agents add %q passed:\n%s", bad, out)
		}
	}
	out, err := runTip(t, append(add, "--token-file", "mx1.token")...)
	if err != nil || !strings.Contains(out, "reads the token from "+filepath.Join(dir, "mx1.token")) {
		t.Fatalf("agents add --token-file = %v\n%s", err, out)
	}
	if data, _ := os.ReadFile(cat); !strings.Contains(string(data), "token_file: "+filepath.Join(dir, "mx1.token")) {
		t.Fatalf("catalog:\n%s", data)
	}
}
