package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// TestDevUpLabRunsAnAgentTheCoreSyncs starts the lab and its spamtrap agent the way
// `tip dev up --lab` does, beside a collector whose spam catalog is the shipped
// config/spam-lab.yaml (on this test's ports). Up starts the agent with a token
// kept out of the catalog and leaves the shipped catalog as it is: it pins the
// certificate in the agent's folder, so a fresh install is pinned anew without a
// change to the catalog either. Once lab time has passed, the agent publishes the spam of its trap, the
// core's spam-collect syncs it, and the spam stats show agent:lab-agent beside the
// lab's archive and IMAP mailbox; later mail is published and pulled in turn.
func TestDevUpLabRunsAnAgentTheCoreSyncs(t *testing.T) {
	testenv.Stack(t) // skips in -short mode
	ctx := context.Background()
	tip := testenv.BuildTip(t)

	ls := newLabLayout(t)
	s, catalogPath, onOurPorts, port := ls.stack, ls.spamCatalog, ls.spamShipped, ls.port
	cfg := startCollectorOn(t, catalogPath)

	if err := upLab(ctx, s, tip, catalogPath, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	registered, _ := os.ReadFile(catalogPath)
	fp, err := agent.CertFingerprint(filepath.Join(s.Dir(devstack.Agent), "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	// The shipped entry is the one up writes: the catalog is as shipped.
	if changed := changedLines(onOurPorts, string(registered)); len(changed) != 0 {
		t.Fatalf("up changed the catalog's lines %q", changed)
	}
	tokenFile := filepath.Join(s.StateDir, "collector", labAgentName+".token")
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", fi, err)
	}
	token, _ := os.ReadFile(tokenFile)
	if strings.Contains(string(registered), strings.TrimSpace(string(token))) {
		t.Fatal("the token is in the catalog")
	}
	agentPID := servicePID(t, s, devstack.Agent)

	// Up again: nothing restarted, rewritten or added.
	if err := upLab(ctx, s, tip, catalogPath, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("second up: %v", err)
	}
	if again, _ := os.ReadFile(catalogPath); string(again) != string(registered) {
		t.Fatalf("the second up changed the catalog:\n%s", again)
	}
	if again, _ := os.ReadFile(tokenFile); string(again) != string(token) {
		t.Fatal("the second up made another token")
	}
	if pid := servicePID(t, s, devstack.Agent); pid != agentPID {
		t.Fatalf("the second up restarted the agent (pid %d, then %d)", agentPID, pid)
	}
	// A fresh install of the agent (as after `tip dev wipe`) has a certificate of its
	// own: up pins that one instead, with a new token.
	if err := s.Stop(ctx, devstack.Agent); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(s.Dir(devstack.Agent))
	os.RemoveAll(filepath.Dir(tokenFile))
	if err := upLab(ctx, s, tip, catalogPath, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("up after a wipe of the agent: %v", err)
	}
	old := fp
	if fp, err = agent.CertFingerprint(filepath.Join(s.Dir(devstack.Agent), "tls", "cert.pem")); err != nil || fp == old {
		t.Fatalf("fingerprint of the new install %s (was %s), %v", fp, old, err)
	}
	registered, _ = os.ReadFile(catalogPath)
	if changed := changedLines(onOurPorts, string(registered)); len(changed) != 0 {
		t.Fatalf("up of a new install changed the catalog's lines %q", changed)
	}
	if again, _ := os.ReadFile(tokenFile); len(again) == 0 || string(again) == string(token) {
		t.Fatalf("the new install's token: %q", again)
	} else {
		token = again
	}

	if out, err := runTip(t, "agents", "list", "--json"); err != nil || !strings.Contains(out, `"name":"lab-agent"`) ||
		!strings.Contains(out, `"fingerprint":"`+fp+`"`) || strings.Count(out, "\n") != 1 {
		t.Fatalf("agents list = %v\n%s", err, out)
	}

	// Lab time passes (a lab day every two minutes): the agent publishes its trap's spam.
	c := &agent.Client{URL: "https://" + port(s.AgentPort), Token: strings.TrimSpace(string(token)), Fingerprint: fp}
	waitFor(t, 60*time.Second, "the agent's first batch", func() (bool, string) {
		h, err := c.Latest(ctx)
		return err == nil && h.Latest > 0, "latest " + strconv.FormatUint(h.Latest, 10) + ", " + errText(err)
	})

	// The core schedules spam-collect, which syncs the agent beside the archive and the mailbox.
	tc, err := starter.Dial(ctx, cfg.Temporal, slog.New(slog.DiscardHandler), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	var spamModule []contract.ModuleSpec
	for _, m := range starter.DefaultModules(cfg) {
		if m.Name == contract.SpamModule {
			spamModule = append(spamModule, m)
		}
	}
	if _, _, err := starter.StartCore(ctx, tc, cfg.Temporal.TaskQueue, contract.CoreInput{Modules: spamModule}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tc.TerminateWorkflow(ctx, contract.CoreWorkflowID, "", "test over") }()
	db, err := storage.OpenDB(ctx, cfg.Postgres.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := []string{"agent:" + labAgentName, "archive:http://" + port(s.LabHTTPPort) + "/spam-archive/", "imap:lab-imap"}
	var st storage.SpamStats
	waitFor(t, 60*time.Second, "spam-collect to record the agent's, the archive's and the mailbox's mail", func() (bool, string) {
		st, err = db.SpamStats(ctx, 10)
		var origins []string
		for _, o := range st.Origins {
			origins = append(origins, o.Key)
		}
		return err == nil && slices.Equal(sorted(origins), want), strings.Join(origins, ", ") + " " + errText(err)
	})
	// A sync records a batch's mails, then advances the cursor past it: the
	// cursor may follow the mails by a moment.
	var cur storage.AgentCursor
	waitFor(t, 60*time.Second, "the agent's cursor to advance", func() (bool, string) {
		cur, err = db.AgentCursor(ctx, labAgentName)
		return err == nil && cur.Version > 0, fmt.Sprintf("%+v %s", cur, errText(err))
	})
	if cur.AgentID != "mx.trap-three.org" || cur.Mails == 0 {
		t.Fatalf("cursor %+v", cur)
	}
	// The agent's mails are its trap's own: none was seen by the archive or the mailbox.
	for _, o := range st.Origins {
		if o.Key == "agent:"+labAgentName && o.Mails != cur.Mails {
			t.Errorf("stats count %d mails from the agent, its cursor %d", o.Mails, cur.Mails)
		}
	}
	if st.Mails < cur.Mails+2 {
		t.Errorf("%d mails in all, %d of them the agent's", st.Mails, cur.Mails)
	}
	out, err := runTip(t, "spam", "stats")
	if err != nil || !strings.Contains(out, "agent:lab-agent") || !strings.Contains(out, "imap:lab-imap") {
		t.Fatalf("spam stats = %v\n%s", err, out)
	}
	out, err = runTip(t, "agents", "list", "--json")
	var row struct {
		Cursor storage.AgentCursor `json:"cursor"`
	}
	if err != nil || json.Unmarshal([]byte(out), &row) != nil || row.Cursor.Version != cur.Version {
		t.Fatalf("agents list after the sync = %v\n%s", err, out)
	}
	t.Logf("%d mails: %+v; agent cursor %+v", st.Mails, st.Origins, cur)

	// The trap keeps receiving spam: the agent publishes more, and a sync pulls
	// only that.
	waitFor(t, 60*time.Second, "a newer batch", func() (bool, string) {
		h, err := c.Latest(ctx)
		return err == nil && h.Latest > cur.Version, "latest " + strconv.FormatUint(h.Latest, 10) + ", " + errText(err)
	})
	out, err = runTip(t, "agents", "sync", labAgentName)
	if err != nil || !strings.Contains(out, "mails pulled") || strings.Contains(out, ": 0 mails pulled") {
		t.Fatalf("agents sync = %v\n%s", err, out)
	}
	if later, err := db.AgentCursor(ctx, labAgentName); err != nil || later.Version <= cur.Version || later.Mails <= cur.Mails {
		t.Fatalf("cursor after a later sync %+v (was %+v), %v", later, cur, err)
	}
}

// labLayout is the repository's layout for a test of the demo: config/ with the
// shipped lab catalogs rewritten to this test's ports, beside the state folder of
// an ephemeral stack whose lab and agent services the test starts (Temporal,
// PostgreSQL and MinIO are testenv's).
type labLayout struct {
	root  string
	stack *devstack.Stack
	// spamCatalog and blacklistCatalog are the rewritten copies of
	// config/spam-lab.yaml and config/lab.yaml; spamShipped is the former's text.
	spamCatalog, blacklistCatalog string
	spamShipped                   string
	port                          func(int) string
}

func newLabLayout(t *testing.T) *labLayout {
	t.Helper()
	ctx := context.Background()
	root, err := os.MkdirTemp("", "tip-devlab-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(root, 0o755) // Dovecot's users must reach the lab's Maildir
	s, err := devstack.Ephemeral(filepath.Join(root, "state"), testenv.ToolsDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Log = slog.New(slog.DiscardHandler)
	t.Cleanup(func() {
		_ = s.Stop(ctx, devstack.Agent)
		_ = s.Stop(ctx, devstack.Lab)
		if t.Failed() {
			for _, svc := range []devstack.Service{devstack.Lab, devstack.Agent} {
				if log, err := os.ReadFile(filepath.Join(s.Dir(svc), string(svc)+".log")); err == nil {
					t.Logf("%s log:\n%s", svc, log)
				}
			}
		}
		os.RemoveAll(root)
	})
	l := &labLayout{root: root, stack: s, port: func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }}
	onOurPorts := strings.NewReplacer("127.0.0.1:8480", l.port(s.LabHTTPPort), "127.0.0.1:1143", l.port(s.LabIMAPPort),
		"127.0.0.1:8443", l.port(s.AgentPort))
	for _, c := range []struct {
		name string
		path *string
	}{{"spam-lab.yaml", &l.spamCatalog}, {"lab.yaml", &l.blacklistCatalog}} {
		shipped, err := os.ReadFile(filepath.Join("..", "..", "config", c.name))
		if err != nil {
			t.Fatal(err)
		}
		*c.path = filepath.Join(root, "config", c.name)
		text := onOurPorts.Replace(string(shipped))
		if c.name == "spam-lab.yaml" {
			l.spamShipped = text
		}
		if err := os.MkdirAll(filepath.Dir(*c.path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*c.path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// changedLines lists the lines of b that differ from a's at the same place.
func changedLines(a, b string) []string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i, l := range bl {
		if i >= len(al) || al[i] != l {
			out = append(out, l)
		}
	}
	if len(al) > len(bl) {
		out = append(out, al[len(bl):]...)
	}
	return out
}

func servicePID(t *testing.T, s *devstack.Stack, svc devstack.Service) int {
	t.Helper()
	pid, ok := s.PID(context.Background(), svc)
	if !ok {
		t.Fatalf("%s is not running", svc)
	}
	return pid
}

// waitFor polls done every half second until it holds, failing the test with
// done's last word after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, done func() (bool, string)) {
	t.Helper()
	start := time.Now()
	for {
		ok, last := done()
		if ok {
			t.Logf("%s after %s", what, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("no %s within %s: %s", what, timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestPathFromTheCatalog(t *testing.T) {
	for _, c := range []struct{ catalog, p, want string }{
		{"/repo/config/spam-lab.yaml", "/repo/state/collector/lab-agent.token", "../state/collector/lab-agent.token"},
		{"/repo/config/spam-lab.yaml", "/repo/config/x.token", "x.token"},
		{"/repo/config/spam-lab.yaml", "/tmp/demo-state/collector/lab-agent.token", "/tmp/demo-state/collector/lab-agent.token"},
	} {
		if got := pathFrom(c.catalog, c.p); got != c.want {
			t.Errorf("pathFrom(%q, %q) = %q, want %q", c.catalog, c.p, got, c.want)
		}
	}
}
