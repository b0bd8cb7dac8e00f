package reliability_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/internal/testenv"
	tiplab "github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

// spamPerDay sizes the lab's spam so that its archive (one month, 20 lab hours in:
// about 2,500 mails) takes seconds to ingest: long enough to interrupt.
const spamPerDay = 3000

// spamSite serves the lab's spam archive on a loopback port and writes a spam
// catalog for it, naming the archive after the test: the ingest's workflow ID
// holds that name, and the tests share a Temporal namespace.
func spamSite(t *testing.T) (*tiplab.SpamSite, string) {
	t.Helper()
	testenv.Stack(t) // skips with -short before the lab builds its archive
	site, err := tiplab.NewSpamSite(spamPerDay, world.FixedClock(world.DefaultStart.Add(20*time.Hour)), filepath.Join(t.TempDir(), "archive"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(site.Handler())
	t.Cleanup(srv.Close)
	catalog := filepath.Join(t.TempDir(), "spam.yaml")
	if err := os.WriteFile(catalog, []byte(site.Catalog(srv.URL, archiveName(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	return site, catalog
}

// archiveName names a test's archive source.
func archiveName(t *testing.T) string { return "lab-" + strings.ToLower(t.Name()) }

// archiveChild is the ID of the ingest of the test's only archive month.
func archiveChild(t *testing.T) string { return "spam/archive/" + archiveName(t) + "/2026-09" }

// startSpamCollect starts a spam collection run of the catalog's collectors.
func startSpamCollect(t *testing.T, c client.Client, cfg config.Config) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: "spam-collect/" + t.Name(), TaskQueue: cfg.Temporal.TaskQueue,
	}, workflows.SpamCollect, contract.ModuleInput{Module: contract.SpamModule})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// waitIngesting waits until the archive's ingest has committed its first batches
// of mails to PostgreSQL, while it is still running.
func waitIngesting(t *testing.T, c client.Client, cfg config.Config) {
	t.Helper()
	ctx := context.Background()
	db, err := storage.OpenDB(ctx, cfg.Postgres.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	child := archiveChild(t)
	waitFor(t, c, child, 2*time.Minute, "the archive ingest commits mails", func(info *workflowpb.WorkflowExecutionInfo, _ []*workflowpb.PendingActivityInfo, _ []*workflowpb.PendingChildExecutionInfo) bool {
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("%s ended (%s) before it could be interrupted; raise spamPerDay", child, info.GetStatus())
		}
		var n int
		_ = testenv.SQL(t, db).QueryRow(ctx, `SELECT count(*) FROM spam_sightings`).Scan(&n)
		return n > 0
	})
}

// checkEachMailOnce asserts that PostgreSQL holds every mail of the archive
// exactly once, with one sighting per archive member, and that S3 holds every
// raw mail, byte for byte.
func checkEachMailOnce(t *testing.T, cfg config.Config, site *tiplab.SpamSite) {
	t.Helper()
	ctx := context.Background()
	sent := site.Sent()
	db, err := storage.OpenDB(ctx, cfg.Postgres.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs, err := storage.NewBlobStoreFromConfig(cfg.S3)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := testenv.SQL(t, db).Query(ctx, `SELECT name, sha256 FROM spam_sightings WHERE origin LIKE 'archive:%'`)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for rows.Next() {
		var name, sha string
		if err := rows.Scan(&name, &sha); err != nil {
			t.Fatal(err)
		}
		names[path.Base(name)] = sha
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var messages int
	if err := testenv.SQL(t, db).QueryRow(ctx, `SELECT count(*) FROM spam_messages`).Scan(&messages); err != nil {
		t.Fatal(err)
	}
	missing, wrong, noRaw := 0, 0, 0
	for i, m := range sent {
		sum := sha256.Sum256(m.Raw)
		sha := hex.EncodeToString(sum[:])
		switch got := names[m.Name]; {
		case got == "":
			missing++
		case got != sha:
			wrong++
		}
		// Every raw mail is checked for presence; a sample byte for byte.
		if i%25 == 0 {
			if b, err := storage.RawMail(ctx, db, blobs, sha); err != nil || string(b) != string(m.Raw) {
				noRaw++
			}
		} else if _, err := db.PackedMail(ctx, sha); err != nil {
			noRaw++
		}
	}
	if len(names) != len(sent) || messages != len(sent) || missing+wrong+noRaw > 0 {
		t.Errorf("the lab archived %d mails; PostgreSQL holds %d sightings and %d mails: %d missing, %d recorded with another content, %d without their raw copy in S3",
			len(sent), len(names), messages, missing, wrong, noRaw)
	}
}

// ingestResult is the archive ingest's result.
func ingestResult(t *testing.T, c client.Client) contract.IngestResult {
	t.Helper()
	var r contract.IngestResult
	if err := c.GetWorkflow(context.Background(), archiveChild(t), "").Get(context.Background(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestWorkerKilledMidArchiveIngestsEachMailOnce SIGKILLs a `tip worker` process
// while it ingests a spam archive; another worker resumes the ingest where the
// last committed batch ended, and every mail is stored exactly once.
func TestWorkerKilledMidArchiveIngestsEachMailOnce(t *testing.T) {
	t.Parallel()
	site, catalog := spamSite(t)
	cfg := newConfig(t, "", testenv.NewDatabase(t))
	cfg.Spam.Catalog = catalog
	tip := testenv.BuildTip(t)
	c := dial(t, cfg)

	first := testenv.StartWorker(t, tip, cfg)
	run := startSpamCollect(t, c, cfg)
	waitIngesting(t, c, cfg)
	first.Kill(t)

	second := testenv.StartWorker(t, tip, cfg)
	expireAttempts(t, c, cfg, run, first.Identity)
	res := finish(t, c, run, 3*time.Minute)
	sent := len(site.Sent())
	if !strings.Contains(res.Summary, archiveName(t)+": 1 of 1 archives changed") {
		t.Errorf("summary %q: the archive was not ingested", res.Summary)
	}
	if n, identity := attempt(t, c, archiveChild(t), "IngestSpamArchive"); n < 2 || identity != second.Identity {
		t.Errorf("the ingest completed in attempt %d by %q; want a retry by the second worker %q", n, identity, second.Identity)
	}
	// The retry resumed: it skipped what the killed worker had committed and
	// recorded only the rest.
	r := ingestResult(t, c)
	if r.Members != sent || r.Skipped == 0 || r.Skipped+r.New != sent {
		t.Errorf("the retry read %d members, skipped %d as recorded and recorded %d new; the lab archived %d", r.Members, r.Skipped, r.New, sent)
	}
	t.Logf("the killed worker had committed %d of %d mails", r.Skipped, sent)
	checkEachMailOnce(t, cfg, site)
}

// minioOutage is how long the MinIO test keeps MinIO down.
const minioOutage = 30 * time.Second

// TestArchiveIngestSurvivesMinIODown stops MinIO for 30 s while a spam archive
// is ingested: the ingest's attempts fail while it is down, retry, and every
// mail ends up stored once, its raw copy included.
func TestArchiveIngestSurvivesMinIODown(t *testing.T) {
	t.Parallel()
	site, catalog := spamSite(t)
	s3 := privateMinIO(t)
	cfg := newConfig(t, "", testenv.NewDatabase(t))
	cfg.S3.Endpoint, cfg.S3.AccessKey, cfg.S3.SecretKey = s3.S3Endpoint(), s3.S3AccessKey, s3.S3SecretKey
	cfg.Spam.Catalog = catalog
	runWorker(t, cfg)
	c := dial(t, cfg)

	run := startSpamCollect(t, c, cfg)
	waitIngesting(t, c, cfg)
	minioDown(t, s3, minioOutage)

	res := finish(t, c, run, 4*time.Minute)
	if !strings.Contains(res.Summary, archiveName(t)+": 1 of 1 archives changed") || strings.Contains(res.Summary, "problems") {
		t.Errorf("summary %q: the archive was not ingested cleanly", res.Summary)
	}
	if n, _ := attempt(t, c, archiveChild(t), "IngestSpamArchive"); n < 2 {
		t.Errorf("the ingest completed in attempt %d: the outage did not interrupt it, the test proved nothing", n)
	}
	checkEachMailOnce(t, cfg, site)
}

// privateMinIO starts a MinIO of the test's own, through the code behind `make up`,
// so that stopping it disturbs no other test.
func privateMinIO(t *testing.T) *devstack.Stack {
	t.Helper()
	ctx := context.Background()
	s, err := devstack.Ephemeral(t.TempDir(), testenv.ToolsDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Log = nil
	if err := s.Start(ctx, devstack.MinIO); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(ctx, devstack.MinIO); err != nil {
			t.Error(err)
		}
	})
	return s
}

// minioDown kills MinIO's process, keeps it down for d, and starts it again on
// the same port and data.
func minioDown(t *testing.T, s *devstack.Stack, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	port := s.MinIOPort
	if err := s.Stop(ctx, devstack.MinIO); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	time.Sleep(d)
	if err := s.Start(ctx, devstack.MinIO); err != nil {
		t.Fatal(err)
	}
	if s.MinIOPort != port {
		t.Fatalf("MinIO came back on port %d, not %d: another program took its port while it was down", s.MinIOPort, port)
	}
	t.Logf("MinIO was down for %s", time.Since(down).Round(100*time.Millisecond))
}
