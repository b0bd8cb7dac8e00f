package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/worker"
)

// TestSpamCommands drives `tip spam` against a worker and the lab's spam archive:
// ingest a month, ingest it again, the stats, one mail's facts and raw copy, a
// local parse, and a mailbox added to the catalog.
func TestSpamCommands(t *testing.T) {
	site, err := lab.NewSpamSite(300, world.FixedClock(world.DefaultStart.Add(20*time.Hour)), filepath.Join(t.TempDir(), "archive"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(site.Handler())
	defer srv.Close()
	cfg := startCollector(t, site.Catalog(srv.URL, "lab-cli"))
	sent := site.Sent()
	first := sent[0]
	sum := sha256.Sum256(first.Raw)
	sha := hex.EncodeToString(sum[:])

	out, err := runTip(t, "spam", "ingest", "--month", "2026-09", "--source", "lab-cli")
	if want := strings.Join([]string{strconv.Itoa(len(sent)) + " mails in the archive", strconv.Itoa(len(sent)) + " new to TIP", "0 already ingested"}, ", "); err != nil || !strings.Contains(out, want) {
		t.Fatalf("spam ingest = %v, want %q in:\n%s", err, want, out)
	}
	if out, err := runTip(t, "spam", "ingest", "--month", "2026-09"); err != nil || !strings.Contains(out, "2026-09.7z: unchanged since its last complete ingest") {
		t.Fatalf("second spam ingest = %v:\n%s", err, out)
	}
	for _, bad := range [][]string{{"--month", "09-2026"}, {"--archive", "file:///etc/passwd"}, {}, {"--month", "2026-09", "--source", "absent"}} {
		if out, err := runTip(t, append([]string{"spam", "ingest"}, bad...)...); err == nil {
			t.Errorf("spam ingest %v succeeded:\n%s", bad, out)
		}
	}

	out, err = runTip(t, "spam", "stats", "--json")
	var st storage.SpamStats
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("spam stats --json = %v:\n%s", err, out)
	}
	var inCampaigns int64
	for _, c := range st.Campaigns {
		inCampaigns += c.Mails
	}
	if st.Mails != int64(len(sent)) || len(st.Campaigns) == 0 || inCampaigns < 2*int64(len(st.Campaigns)) || len(st.ASNs) == 0 || len(st.Domains) == 0 {
		t.Errorf("spam stats: %d mails (lab %d), campaigns %+v, ASNs %+v, domains %+v", st.Mails, len(sent), st.Campaigns, st.ASNs, st.Domains)
	}
	out, err = runTip(t, "spam", "stats", "--top", "3")
	if err != nil || !strings.HasPrefix(out, strconv.Itoa(len(sent))+" mails from ") || !strings.Contains(out, "CAMPAIGN") || !strings.Contains(out, "archive:"+srv.URL+"/spam-archive/  "+strconv.Itoa(len(sent))) {
		t.Errorf("spam stats = %v:\n%s", err, out)
	}

	out, err = runTip(t, "spam", "show", sha)
	var shown struct {
		Facts struct {
			SenderIP string `json:"sender_ip"`
		} `json:"facts"`
		Seen []string `json:"seen"` // "origin name"
	}
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil {
		t.Fatalf("spam show = %v:\n%s", err, out)
	}
	if shown.Facts.SenderIP != first.Truth.SenderIP.String() || len(shown.Seen) != 1 || !strings.HasSuffix(shown.Seen[0], "/"+first.Name) {
		t.Errorf("spam show: sender %s (lab %s), seen %+v (lab name %s)", shown.Facts.SenderIP, first.Truth.SenderIP, shown.Seen, first.Name)
	}
	if out, err := runTip(t, "spam", "show", "--raw", sha); err != nil || out != string(first.Raw) {
		t.Errorf("spam show --raw = %v: %d bytes, the lab's mail has %d", err, len(out), len(first.Raw))
	}
	if out, err := runTip(t, "spam", "show", strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("spam show of an unknown mail = %v:\n%s", err, out)
	}

	// parse needs no stack: the catalog's trust rules pick the same sender.
	file := filepath.Join(t.TempDir(), "mail.eml")
	if err := os.WriteFile(file, first.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runTip(t, "spam", "parse", file)
	var parsed struct {
		Name     string `json:"name"`
		SenderIP string `json:"sender_ip"`
	}
	if err != nil || json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &parsed) != nil || parsed.SenderIP != first.Truth.SenderIP.String() || !strings.Contains(out, "1 mails, ") {
		t.Errorf("spam parse = %v, sender %q (lab %s):\n%s", err, parsed.SenderIP, first.Truth.SenderIP, out)
	}

	out, err = runTip(t, "spam", "imap", "add", "--name", "mx2", "--address", "127.0.0.1:993", "--username", "trap",
		"--password-env", "TIP_TEST_MX2_PASSWORD", "--trap", site.World.TrapMX[0].Trap)
	if err != nil || !strings.Contains(out, "added mailbox mx2") {
		t.Fatalf("spam imap add = %v:\n%s", err, out)
	}
	if out, err := runTip(t, "spam", "imap", "add", "--name", "mx2", "--address", "127.0.0.1:993", "--username", "trap",
		"--password-env", "TIP_TEST_MX2_PASSWORD", "--trap", site.World.TrapMX[0].Trap); err == nil {
		t.Errorf("a second mailbox mx2 was added:\n%s", out)
	}
	out, err = runTip(t, "spam", "imap", "list", "--json")
	var box struct {
		Name        string `json:"name"`
		Address     string `json:"address"`
		LastUID     uint32 `json:"last_uid"`
		UIDValidity uint32 `json:"uid_validity"`
	}
	if err != nil || json.Unmarshal([]byte(out), &box) != nil || box.Name != "mx2" || box.Address != "127.0.0.1:993" || box.LastUID != 0 {
		t.Errorf("spam imap list --json = %v:\n%s", err, out)
	}
	if data, _ := os.ReadFile(cfg.Spam.Catalog); strings.Contains(string(data), "password:") {
		t.Errorf("imap add wrote a password into the catalog:\n%s", data)
	}
}

// startCollector writes a spam catalog, points the tip commands at a fresh
// database and bucket of the test stack, sets them up and runs a worker until
// the test ends.
func startCollector(t *testing.T, catalog string, edits ...func(*config.Config)) config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spam.yaml")
	if err := os.WriteFile(path, []byte(catalog), 0o644); err != nil {
		t.Fatal(err)
	}
	return startCollectorOn(t, path, edits...)
}

// startCollectorOn is startCollector with the spam catalog file at catalogPath;
// edits change the worker's configuration before it starts.
func startCollectorOn(t *testing.T, catalogPath string, edits ...func(*config.Config)) config.Config {
	t.Helper()
	cfg := testenv.NewBucket(t, testenv.Config(t))
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	cfg.Spam.Catalog = catalogPath
	for _, edit := range edits {
		edit(&cfg)
	}
	setEnv(t, cfg)
	t.Setenv("TIP_SPAM_CATALOG", cfg.Spam.Catalog)
	if err := starter.Setup(context.Background(), cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	return cfg
}
