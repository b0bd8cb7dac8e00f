package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/internal/testenv"
)

// TestAgentCommands drives tip agent init, fingerprint, token add/list/revoke
// and serve on a loopback port, with a collector's Client.
func TestAgentCommands(t *testing.T) {
	t.Chdir(t.TempDir())
	dir := filepath.Join(t.TempDir(), "agent")
	addr := testenv.FreeAddr(t)

	out, err := runTip(t, "agent", "init", "--dir", dir, "--id", "mx1.test", "--listen", addr, "--maildir", dir+"/Maildir:spam", "--host", "mail.test")
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	fp := regexp.MustCompile(`fingerprint \(SHA-256\): ([0-9a-f]{64})`).FindStringSubmatch(out)
	if fp == nil || !strings.Contains(out, "mail.test") || !strings.Contains(out, "has no new/ and cur/") {
		t.Fatalf("init printed:\n%s", out)
	}
	for _, p := range []string{"agent.yaml", "tls/cert.pem", "tls/key.pem", "batches", "raw", "state"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("init left no %s: %v", p, err)
		}
	}
	if out, err := runTip(t, "agent", "fingerprint", "--dir", dir); err != nil || strings.TrimSpace(out) != fp[1] {
		t.Fatalf("fingerprint = %q, %v; want %s", out, err, fp[1])
	}
	if out, err := runTip(t, "agent", "init", "--dir", dir); err != nil || !strings.Contains(out, "exists: kept") || !strings.Contains(out, fp[1]) {
		t.Fatalf("init again = %v\n%s", err, out)
	}
	if _, err := runTip(t, "agent", "init", "--dir", dir, "--id", "other"); err == nil {
		t.Fatal("init --id over an existing agent.yaml")
	}

	out, err = runTip(t, "agent", "token", "add", "alice", "--dir", dir)
	facts := regexp.MustCompile(`tipa_[A-Za-z0-9_-]{43}`).FindString(out)
	if err != nil || facts == "" {
		t.Fatalf("token add = %v\n%s", err, out)
	}
	out, err = runTip(t, "agent", "token", "add", "bob", "--scope", "raw", "--expires", "90d", "--json", "--dir", dir)
	var bob struct {
		Token   string
		Scope   string
		Expires time.Time
	}
	if err != nil || json.Unmarshal([]byte(out), &bob) != nil || bob.Scope != "raw" || time.Until(bob.Expires) < 89*24*time.Hour {
		t.Fatalf("token add --json = %v\n%s", err, out)
	}
	if _, err := runTip(t, "agent", "token", "add", "carol", "--scope", "all", "--dir", dir); err == nil {
		t.Fatal("scope all accepted")
	}

	// Publish quickly, then deliver a spam to the trap.
	c0, err := agent.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	c0.ScanInterval, c0.BatchMaxWait = 20*time.Millisecond, 50*time.Millisecond
	c0.Metrics = testenv.FreeAddr(t)
	if err := c0.Save(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, "Maildir", sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	raw := "Received: from spammer.example (spammer.example [203.0.113.9])\r\n\tby mx1.test; Thu, 26 Nov 2026 10:00:00 +0000\r\n" +
		"From: Win <win@spammer.example>\r\nTo: trap@mx1.test\r\nSubject: You won\r\nMessage-ID: <1@spammer.example>\r\n\r\nClaim at http://claim.spammer.example/now\r\n"
	if err := os.WriteFile(filepath.Join(dir, "Maildir", "new", "1764151200.M1P1.mx1"), []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		root := newRoot()
		root.SetOut(io.Discard)
		root.SetArgs([]string{"agent", "serve", "--dir", dir})
		served <- root.ExecuteContext(ctx)
	}()
	c := &agent.Client{URL: "https://" + addr, Token: facts, Fingerprint: fp[1]}
	var h agent.Head
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if h, err = c.Latest(context.Background()); (err == nil && h.Latest > 0) || time.Since(start) > 10*time.Second {
			break
		}
	}
	if err != nil || h.Latest != 1 || h.Agent != "mx1.test" {
		t.Fatalf("Latest from tip agent serve = %+v, %v", h, err)
	}
	var mails []agent.Mail
	last, err := c.Stream(context.Background(), 0, 0, func(it agent.StreamItem, r io.Reader) error {
		b, err := agent.DecodeBatch(r, it.Version)
		mails = append(mails, b.Mails...)
		return err
	})
	if err != nil || last != 1 || len(mails) != 1 || mails[0].Facts.Subject != "You won" || !mails[0].Raw {
		t.Fatalf("Stream = %d, %+v, %v", last, mails, err)
	}
	body, err := (&agent.Client{URL: c.URL, Token: bob.Token, Fingerprint: fp[1]}).Raw(context.Background(), 1, mails[0].Facts.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || string(got) != raw {
		t.Fatalf("Raw = %q, %v", got, err)
	}

	// The metrics listener of agent.yaml serves the agent's counters.
	resp, err := http.Get("http://" + c0.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte("tip_agent_latest_version 1\n")) || !bytes.Contains(metrics, []byte("tip_agent_requests_total")) {
		t.Fatalf("/metrics:\n%s", metrics)
	}

	if out, err := runTip(t, "agent", "token", "revoke", "alice", "--dir", dir); err != nil || !strings.Contains(out, "revoked alice") {
		t.Fatalf("token revoke = %v\n%s", err, out)
	}
	var se *agent.StatusError
	if _, err := c.Latest(context.Background()); !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Fatalf("a revoked token on the running agent: %v", err)
	}
	out, err = runTip(t, "agent", "token", "list", "--dir", dir)
	if err != nil || !regexp.MustCompile(`alice\s+facts\s+revoked`).MatchString(out) || !regexp.MustCompile(`bob\s+raw\s+active`).MatchString(out) || strings.Contains(out, "tipa_") {
		t.Fatalf("token list = %v\n%s", err, out)
	}
	out, err = runTip(t, "agent", "token", "list", "--json", "--dir", dir)
	if err != nil || !bytes.Contains([]byte(out), []byte(`"status":"revoked"`)) || strings.Contains(out, "tipa_") || strings.Contains(out, "sha256") {
		t.Fatalf("token list --json = %v\n%s", err, out)
	}

	cancel()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// --expires takes days or a Go duration, positive and at most 100 years; a
// number of days that would overflow a duration is refused, not wrapped.
func TestParseTTL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration // 0: refused
	}{
		{"90d", 90 * 24 * time.Hour},
		{"720h", 720 * time.Hour},
		{"36500d", agent.MaxTokenTTL},
		{"876000h", agent.MaxTokenTTL},
		{"36501d", 0},
		{"999999999999d", 0},
		{"18446744073709551615d", 0},
		{"99999999999999999999999d", 0},
		{"876001h", 0},
		{"2562047h", 0},
		{"0d", 0},
		{"-1d", 0},
		{"-5h", 0},
		{"d", 0},
		{"1.5d", 0},
		{"soon", 0},
	} {
		got, err := parseTTL(tc.in)
		if got != tc.want || (err == nil) != (tc.want != 0) {
			t.Errorf("parseTTL(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
