package reliability_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/testenv"
	tiplab "github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/trap"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/storage"
)

// agentBatchMails keeps the agent's batches small, so that the lab's mail makes
// hundreds of versions and a sync advances its cursor hundreds of times over some
// seconds: a worker can be killed between two of them.
const agentBatchMails = 5

// labAgent is a spamtrap agent, `tip agent serve` as a process of its own, serving
// a Maildir of the lab's spam over HTTPS on loopback.
type labAgent struct {
	url, fingerprint, token string
	client                  *agent.Client // facts only: waiting for publication, the latest version
	maildir                 string
	latest                  uint64
	mails                   map[string]string // each sighting name the agent publishes ("spam/<unique name>") to the mail's SHA-256
	files                   map[string]string // each sighting name to the mail's file
}

// startAgent delivers the lab's spam up to at into a Maildir, sets up an agent
// on it with `tip agent init` and `tip agent token add` (scope raw), runs `tip
// agent serve`, and returns once the agent has published every mail.
func startAgent(t *testing.T, tip string, site *tiplab.SpamSite) *labAgent {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "agent")
	addr := testenv.FreeAddr(t)
	a := &labAgent{url: "https://" + addr, maildir: filepath.Join(dir, "Maildir")}
	out := runTip(t, tip, nil, "agent", "init", "--dir", dir, "--id", "mx-"+strings.ToLower(t.Name()), "--listen", addr, "--maildir", a.maildir+":spam")
	fp := regexp.MustCompile(`fingerprint \(SHA-256\): ([0-9a-f]{64})`).FindStringSubmatch(out)
	if fp == nil {
		t.Fatalf("tip agent init printed no fingerprint:\n%s", out)
	}
	a.fingerprint = fp[1]
	conf, err := agent.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	conf.Trap.MX, conf.Trap.MXAddrs, conf.Trap.Trusted = site.Rules()
	conf.ScanInterval, conf.BatchMaxWait, conf.BatchMaxMails = 20*time.Millisecond, 50*time.Millisecond, agentBatchMails
	conf.RateLimit = 1e6 // the test is about the worker, not about throttling its requests
	if err := conf.Save(); err != nil {
		t.Fatal(err)
	}
	out = runTip(t, tip, nil, "agent", "token", "add", "collector", "--scope", "raw", "--dir", dir)
	if a.token = regexp.MustCompile(`tipa_[A-Za-z0-9_-]{43}`).FindString(out); a.token == "" {
		t.Fatalf("tip agent token add printed no token:\n%s", out)
	}
	delivered, err := trap.NewDelivery(tiplab.MailSource(site.Gen), site.Clock, a.maildir, filepath.Join(t.TempDir(), "delivery")).DeliverDue()
	if err != nil || delivered == 0 {
		t.Fatalf("delivered %d mails to the Maildir: %v", delivered, err)
	}
	a.mails, a.files = maildirMails(t, a.maildir)
	if len(a.mails) != delivered {
		t.Fatalf("delivered %d mails, the Maildir holds %d", delivered, len(a.mails))
	}

	logPath := filepath.Join(t.TempDir(), "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(tip, "agent", "serve", "--dir", dir)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "TIP_LOG_LEVEL=warn") // refused requests, not each batch published
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			if log, err := os.ReadFile(logPath); err == nil && len(log) > 0 {
				t.Logf("log of the agent:\n%s", log)
			}
		}
	})

	a.client = &agent.Client{URL: a.url, Token: a.token, Fingerprint: a.fingerprint}
	start := time.Now()
	for n := 0; n != delivered; time.Sleep(100 * time.Millisecond) {
		var err error
		n, a.latest, err = a.published()
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("the agent published %d of %d mails in 2 min (%v)", n, delivered, err)
		}
	}
	t.Logf("the agent published %d mails in %d versions in %s", delivered, a.latest, time.Since(start).Round(100*time.Millisecond))
	if a.latest < 20 {
		t.Fatalf("the agent published only %d versions: too few to kill a sync between two of them", a.latest)
	}
	return a
}

// published counts the mails of the agent's manifest and returns its latest version.
func (a *labAgent) published() (mails int, latest uint64, err error) {
	for after := uint64(0); ; {
		page, err := a.client.Manifest(context.Background(), after, 0)
		if err != nil {
			return mails, latest, err
		}
		for _, e := range page.Versions {
			mails += e.Mails
			after = e.Version
		}
		if len(page.Versions) == 0 || after >= page.Latest {
			return mails, page.Latest, nil
		}
	}
}

// maildirMails maps the sighting name of each mail of a Maildir (folder "spam")
// to its SHA-256 and to its file.
func maildirMails(t *testing.T, maildir string) (shas, files map[string]string) {
	t.Helper()
	shas, files = map[string]string{}, map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(maildir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			file := filepath.Join(maildir, sub, e.Name())
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			unique, _, _ := strings.Cut(e.Name(), ":")
			sum := sha256.Sum256(raw)
			shas["spam/"+unique], files["spam/"+unique] = hex.EncodeToString(sum[:]), file
		}
	}
	return shas, files
}

// runTip runs the tip binary with extra environment variables and returns its
// output; it fails the test if tip fails.
func runTip(t *testing.T, tip string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tip, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitCursorMoved polls the agent's cursor in PostgreSQL until a sync has
// recorded some batches; it fails the test if the sync reached
// the agent's latest version first, for then a kill would prove nothing.
func waitCursorMoved(t *testing.T, db *storage.DB, name string, latest uint64) {
	t.Helper()
	const some = 3 // batches recorded, cursor advanced past each
	deadline := time.Now().Add(3 * time.Minute)
	for {
		cur, err := db.AgentCursor(context.Background(), name)
		switch {
		case err != nil && time.Now().After(deadline):
			t.Fatal(err)
		case cur.Version >= latest:
			t.Fatalf("the sync recorded all %d versions before the worker could be killed: raise the lab's mail or lower agentBatchMails", latest)
		case cur.Version >= some:
			return
		case time.Now().After(deadline):
			t.Fatalf("the sync recorded %d versions in 3 min", cur.Version)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAgentSyncWorkerKilledRecordsEachMailOnce SIGKILLs a `tip worker` process
// while it syncs a spamtrap agent (real HTTPS on loopback, raw mails pulled too),
// once the sync has advanced the agent's cursor past some batches; another
// worker resumes the sync after the last batch recorded, and afterwards every
// mail of the agent's Maildir is in PostgreSQL exactly once, its raw copy in S3,
// and the cursor is at the agent's latest version.
func TestAgentSyncWorkerKilledRecordsEachMailOnce(t *testing.T) {
	t.Parallel()
	testenv.Stack(t) // skips with -short before the lab builds its spam
	site, err := tiplab.NewSpamSite(spamPerDay, world.FixedClock(world.DefaultStart.Add(12*time.Hour)), filepath.Join(t.TempDir(), "archive"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(site.Handler()) // the ASN table
	t.Cleanup(srv.Close)
	tip := testenv.BuildTip(t)
	ag := startAgent(t, tip, site)

	// The collector: the lab's traps, no archive, and the agent added the way
	// its operator would, its token (scope raw) in the worker's environment.
	cfg := newConfig(t, "", testenv.NewDatabase(t))
	traps, _, _ := strings.Cut(site.Catalog(srv.URL, "unused"), "archives:")
	cfg.Spam.Catalog = filepath.Join(t.TempDir(), "spam.yaml")
	if err := os.WriteFile(cfg.Spam.Catalog, []byte(traps), 0o644); err != nil {
		t.Fatal(err)
	}
	name := "mx-" + strings.ToLower(t.Name())
	tokenEnv := "RELIABILITY_AGENT_TOKEN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	os.Setenv(tokenEnv, ag.token) // a name of this test's own: no other test reads it
	t.Cleanup(func() { os.Unsetenv(tokenEnv) })
	runTip(t, tip, []string{"TIP_SPAM_CATALOG=" + cfg.Spam.Catalog}, "agents", "add", "--name", name, "--url", ag.url,
		"--token-env", tokenEnv, "--fingerprint", ag.fingerprint, "--raw")

	db, err := storage.OpenDB(context.Background(), cfg.Postgres.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := dial(t, cfg)

	first := testenv.StartWorker(t, tip, cfg)
	run := startSpamCollect(t, c, cfg)
	started := time.Now()
	waitCursorMoved(t, db, name, ag.latest)
	first.Kill(t)
	killed := time.Now()
	after, err := db.AgentCursor(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version >= ag.latest {
		t.Fatalf("the killed worker had recorded all %d versions: the kill came too late to prove anything", ag.latest)
	}
	// Mails recorded past the cursor: the killed worker died between recording a
	// batch and advancing the cursor past it, and the retry records them again.
	var recorded int64
	if err := testenv.SQL(t, db).QueryRow(context.Background(), `SELECT count(*) FROM spam_sightings WHERE origin = $1`, "agent:"+name).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the worker %s after the sync's start, its cursor at version %d of %d (%d mails of %d; %d more recorded past it)",
		killed.Sub(started).Round(10*time.Millisecond), after.Version, ag.latest, after.Mails, len(ag.mails), recorded-after.Mails)

	second := testenv.StartWorker(t, tip, cfg)
	expireAttempts(t, c, cfg, run, first.Identity)
	res := finish(t, c, run, 4*time.Minute)
	t.Logf("the sync completed %s after the kill: %s", time.Since(killed).Round(100*time.Millisecond), res.Summary)
	// The retry resumed after the last batch the killed worker recorded.
	if want := fmt.Sprintf("%s: %d mails pulled", name, len(ag.mails)-int(after.Mails)); !strings.Contains(res.Summary, want) || strings.Contains(res.Summary, "problems") {
		t.Errorf("summary %q; want %q and no problems", res.Summary, want)
	}
	if n, identity := attempt(t, c, "agent/"+name, "SyncAgent"); n < 2 || identity != second.Identity {
		t.Errorf("the sync completed in attempt %d by %q; want a retry by the second worker %q", n, identity, second.Identity)
	}
	checkAgentMailsOnce(t, db, cfg.S3, name, ag)
}

// checkAgentMailsOnce asserts that PostgreSQL holds every mail of the agent's
// Maildir exactly once: one sighting of origin agent:<name> per mail, under its
// Maildir name and with its content, one message per distinct content, that S3
// holds each raw mail, and that the agent's cursor is at its latest version with
// every mail counted once.
func checkAgentMailsOnce(t *testing.T, db *storage.DB, s3 config.S3, name string, ag *labAgent) {
	t.Helper()
	ctx := context.Background()
	rows, err := testenv.SQL(t, db).Query(ctx, `SELECT name, sha256 FROM spam_sightings WHERE origin = $1`, "agent:"+name)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	sightings := 0
	for rows.Next() {
		var n, sha string
		if err := rows.Scan(&n, &sha); err != nil {
			t.Fatal(err)
		}
		got[n] = sha
		sightings++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for _, sha := range ag.mails {
		distinct[sha] = true
	}
	var messages, otherSightings int
	if err := testenv.SQL(t, db).QueryRow(ctx, `SELECT count(*) FROM spam_messages`).Scan(&messages); err != nil {
		t.Fatal(err)
	}
	if err := testenv.SQL(t, db).QueryRow(ctx, `SELECT count(*) FROM spam_sightings WHERE origin <> $1`, "agent:"+name).Scan(&otherSightings); err != nil {
		t.Fatal(err)
	}
	blobs, err := storage.NewBlobStoreFromConfig(s3)
	if err != nil {
		t.Fatal(err)
	}
	missing, wrong, noRaw, i := 0, 0, 0, 0
	for n, sha := range ag.mails {
		switch g := got[n]; {
		case g == "":
			missing++
		case g != sha:
			wrong++
		}
		// Every raw mail is checked for presence; a sample byte for byte.
		if i++; i%25 == 0 {
			want, err := os.ReadFile(ag.files[n])
			if err != nil {
				t.Fatal(err)
			}
			if b, err := storage.RawMail(ctx, db, blobs, sha); err != nil || string(b) != string(want) {
				noRaw++
			}
		} else if _, err := db.PackedMail(ctx, sha); err != nil {
			noRaw++
		}
	}
	if sightings != len(ag.mails) || len(got) != len(ag.mails) || messages != len(distinct) || otherSightings != 0 || missing+wrong+noRaw > 0 {
		t.Errorf("the agent's Maildir holds %d mails (%d distinct); PostgreSQL holds %d sightings of agent:%s (%d other) and %d mails: %d missing, %d recorded with another content, %d without their raw copy in S3",
			len(ag.mails), len(distinct), sightings, name, otherSightings, messages, missing, wrong, noRaw)
	}
	cur, err := db.AgentCursor(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Version != ag.latest || cur.Mails != int64(len(ag.mails)) || cur.AgentID != "mx-"+strings.ToLower(t.Name()) {
		t.Errorf("cursor %+v; want version %d (the agent's latest), %d mails, agent id mx-%s", cur, ag.latest, len(ag.mails), strings.ToLower(t.Name()))
	}
}
