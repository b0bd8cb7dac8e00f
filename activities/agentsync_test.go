package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/trap"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// agentLab is a lab trap's Maildir watched by a real agent serving HTTPS on
// loopback, and a spam catalog that names the agent.
type agentLab struct {
	site     *lab.SpamSite
	delivery *trap.Delivery
	pub      *agent.Publisher
	store    *agent.Store
	cfg      agent.Config
	catalog  string
}

func newAgentLab(t *testing.T, scope agent.Scope) *agentLab {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	site, err := lab.NewSpamSite(600, world.FixedClock(world.DefaultStart.Add(10*time.Hour)), filepath.Join(t.TempDir(), "archive"))
	if err != nil {
		t.Fatal(err)
	}
	maildir := filepath.Join(t.TempDir(), "Maildir")
	l := &agentLab{site: site, delivery: trap.NewDelivery(lab.MailSource(site.Gen), site.Clock, maildir, filepath.Join(t.TempDir(), "delivery"))}

	dir := t.TempDir()
	cfg := agent.DefaultConfig(dir)
	cfg.ID = "mx-lab"
	cfg.Maildirs = []agent.Maildir{{Path: maildir, Folder: "spam"}}
	cfg.Trap.MX, cfg.Trap.MXAddrs, cfg.Trap.Trusted = site.Rules()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = ln.Addr().String()
	if err := cfg.Save(); err != nil {
		t.Fatal(err)
	}
	fp, _, err := agent.EnsureCert(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := agent.OpenStore(dir, cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if l.pub, err = agent.NewPublisher(cfg, st, nil); err != nil {
		t.Fatal(err)
	}
	token, _, err := agent.OpenTokens(dir).Add("collector", scope, 0)
	if err != nil {
		t.Fatal(err)
	}
	conf, _, err := agent.ServerTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- agent.NewServer(st, agent.OpenTokens(dir), 1000, nil).Serve(ctx, ln, conf) }()
	t.Cleanup(func() { cancel(); <-done })
	l.cfg, l.store = cfg, st

	t.Setenv("TIP_TEST_AGENT_TOKEN", token)
	y := site.Catalog("http://127.0.0.1:1", "lab") + fmt.Sprintf("agents:\n  - {name: mx1, url: \"https://%s\", token_env: TIP_TEST_AGENT_TOKEN, fingerprint: %s, raw: true, interval: 1h}\n", cfg.Listen, fp)
	l.catalog = filepath.Join(t.TempDir(), "spam.yaml")
	if err := os.WriteFile(l.catalog, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

// deliver has the lab deliver its due spam and the agent publish it.
func (l *agentLab) deliver(t *testing.T) int {
	t.Helper()
	n, err := l.delivery.DeliverDue()
	if err != nil {
		t.Fatal(err)
	}
	published, err := l.pub.ScanOnce(context.Background())
	if err != nil || published != n {
		t.Fatalf("delivered %d, the agent published %d: %v", n, published, err)
	}
	return n
}

func TestSyncAgentRecordsEachMailOnce(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	l := newAgentLab(t, agent.ScopeRaw)
	a.setSpamCatalog(l.catalog)
	first := l.deliver(t)
	plan, err := runActivity[contract.SpamPlan](t, a, a.ReadSpamCatalog)
	if err != nil || len(plan.Agents) != 1 {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	ag := plan.Agents[0]
	ag.TokenEnv = "" // as it arrives through a workflow: the token is read from the catalog
	sync := func() contract.IngestResult {
		t.Helper()
		if err := a.DB.ReleaseCollectorRun(ctx, "agent:mx1"); err != nil {
			t.Fatal(err)
		}
		res, err := runActivity[contract.IngestResult](t, a, a.SyncAgent, ag)
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		return res
	}
	res := sync()
	if res.Members != first || res.New != first || len(res.SenderIPs) == 0 || len(res.Domains) == 0 {
		t.Fatalf("first sync %+v, the lab delivered %d", res, first)
	}
	// Every mail's facts are the lab's truth, its raw copy is in S3, and its
	// sighting names the agent's folder and Maildir name.
	wrong := 0
	for _, m := range l.site.Sent() {
		sum := sha256.Sum256(m.Raw)
		sha := hex.EncodeToString(sum[:])
		var ip, name string
		err := testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT coalesce(host(m.sender_ip), ''), s.name FROM spam_messages m JOIN spam_sightings s ON s.sha256 = m.sha256
			WHERE m.sha256 = $1 AND s.origin = 'agent:mx1'`, sha).Scan(&ip, &name)
		if err != nil {
			t.Fatalf("%s not recorded: %v", m.Name, err)
		}
		if want := m.Truth.SenderIP; (want.IsValid() && ip != want.String()) || !strings.HasPrefix(name, "spam/") {
			wrong++
		}
		if raw, err := storage.RawMail(ctx, a.DB, a.Blobs, sha); err != nil || string(raw) != string(m.Raw) {
			t.Fatalf("raw copy of %s: %v", m.Name, err)
		}
	}
	if wrong > 0 {
		t.Fatalf("%d of %d mails recorded with another sender or name", wrong, first)
	}
	cur, err := a.DB.AgentCursor(ctx, "mx1")
	if err != nil || cur.AgentID != "mx-lab" || cur.Version != l.store.Latest() || cur.Mails != int64(first) {
		t.Fatalf("cursor %+v (agent's latest %d), %v", cur, l.store.Latest(), err)
	}

	// Up to date: nothing is pulled.
	if again := sync(); again.Status != contract.FetchUnchanged || again.Members != 0 {
		t.Fatalf("up-to-date sync %+v", again)
	}
	// Only the new mail comes.
	l.site.Clock.Advance(3 * time.Hour)
	more := l.deliver(t)
	if next := sync(); next.Members != more || next.New != more {
		t.Fatalf("third sync %+v, the lab delivered %d more", next, more)
	}
	// A crash after recording a batch but before the cursor moved past it pulls
	// the batch again: here every batch, after a reset. Nothing is recorded twice.
	if err := a.DB.ResetAgentCursor(ctx, "mx1"); err != nil {
		t.Fatal(err)
	}
	if again := sync(); again.Members != first+more || again.New != 0 {
		t.Fatalf("sync after a reset %+v", again)
	}
	var mails, sightings int
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT count(*) FROM spam_messages`).Scan(&mails)
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT count(*) FROM spam_sightings WHERE origin = 'agent:mx1'`).Scan(&sightings)
	if mails != first+more || sightings != first+more {
		t.Fatalf("%d mails and %d sightings recorded, the lab delivered %d", mails, sightings, first+more)
	}

	// A batch changed on the agent's disk is refused, and nothing of it kept.
	l.site.Clock.Advance(3 * time.Hour)
	l.deliver(t)
	latest := l.store.Latest()
	path := filepath.Join(l.cfg.Dir, "batches", agent.BatchName(latest))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x55
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	a.DB.ReleaseCollectorRun(ctx, "agent:mx1")
	_, err = runActivity[contract.IngestResult](t, a, a.SyncAgent, ag)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() || app.Type() != "AgentTampered" {
		t.Fatalf("sync of a tampered batch: %v", err)
	}
	if cur, _ := a.DB.AgentCursor(ctx, "mx1"); cur.Version != latest-1 {
		t.Fatalf("cursor at %d after a tampered batch %d", cur.Version, latest)
	}

	// So is a batch whose raw pack was changed (same size): its facts hash right,
	// one raw mail does not.
	data[len(data)/2] ^= 0x55
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	pack := filepath.Join(l.cfg.Dir, "raw", agent.PackName(latest))
	if data, err = os.ReadFile(pack); err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 0x55
	if err := os.WriteFile(pack, data, 0o644); err != nil {
		t.Fatal(err)
	}
	a.DB.ReleaseCollectorRun(ctx, "agent:mx1")
	_, err = runActivity[contract.IngestResult](t, a, a.SyncAgent, ag)
	if !errors.As(err, &app) || !app.NonRetryable() || app.Type() != "AgentTampered" {
		t.Fatalf("sync of a batch with a forged raw mail: %v", err)
	}
	if cur, _ := a.DB.AgentCursor(ctx, "mx1"); cur.Version != latest-1 {
		t.Fatalf("cursor at %d after a forged raw mail in batch %d", cur.Version, latest)
	}
}

func TestSyncAgentRefusesWhatRetryingCannotFix(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	l := newAgentLab(t, agent.ScopeFacts)
	a.setSpamCatalog(l.catalog)
	l.deliver(t)
	plan, err := runActivity[contract.SpamPlan](t, a, a.ReadSpamCatalog)
	if err != nil {
		t.Fatal(err)
	}
	kind := func(ag catalog.Agent) string {
		t.Helper()
		a.DB.ReleaseCollectorRun(ctx, "agent:"+ag.Name)
		_, err := runActivity[contract.IngestResult](t, a, a.SyncAgent, ag)
		var app *temporal.ApplicationError
		if !errors.As(err, &app) || !app.NonRetryable() {
			t.Fatalf("sync: %v, want a non-retryable error", err)
		}
		return app.Type()
	}
	// raw: true with a token of scope facts: the agent answers 403 for the raw mail.
	if k := kind(plan.Agents[0]); k != "AgentAuth" {
		t.Errorf("a facts token pulling raw mail: %s", k)
	}
	wrongPin := plan.Agents[0]
	wrongPin.Fingerprint = strings.Repeat("0", 64)
	if k := kind(wrongPin); k != "AgentPin" {
		t.Errorf("a certificate that is not the pinned one: %s", k)
	}
	t.Setenv("TIP_TEST_AGENT_TOKEN", "tipa_"+strings.Repeat("A", 43))
	if k := kind(plan.Agents[0]); k != "AgentAuth" {
		t.Errorf("an unknown token: %s", k)
	}
	var mails int
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT count(*) FROM spam_sightings`).Scan(&mails)
	if mails != 0 {
		t.Errorf("%d mails recorded by refused syncs", mails)
	}
}
