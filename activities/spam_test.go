package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/spam"
	"github.com/tip-project/tip/lab/trap"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/mail"
	"github.com/tip-project/tip/spamimap/imaptest"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// spamLab serves a lab world's spam archive and ASN table, and writes a spam
// catalog for its traps.
type spamLab struct {
	*lab.SpamSite
	catalog string
}

func newSpamLab(t *testing.T, perDay int) *spamLab {
	t.Helper()
	site, err := lab.NewSpamSite(perDay, world.FixedClock(world.DefaultStart.Add(20*time.Hour)), filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(site.Handler())
	t.Cleanup(srv.Close)
	l := &spamLab{SpamSite: site, catalog: filepath.Join(t.TempDir(), "spam.yaml")}
	if err := os.WriteFile(l.catalog, []byte(site.Catalog(srv.URL, "lab")), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestArchiveIngestMatchesTheLabAndIsIncremental(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	l := newSpamLab(t, 600)
	a.setSpamCatalog(l.catalog)
	plan, err := runActivity[contract.SpamPlan](t, a, a.ReadSpamCatalog)
	if err != nil || len(plan.Archives) != 1 {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	due, err := a.ListSpamArchives(ctx, plan.Archives[0])
	if err != nil || len(due) != 1 || due[0].Period != "2026-09" {
		t.Fatalf("due %+v, %v", due, err)
	}
	in := contract.ArchiveIngestInput{Source: plan.Archives[0], Archive: due[0]}
	first, err := runActivity[contract.IngestResult](t, a, a.IngestSpamArchive, in)
	msgs := l.Sent()
	if err != nil || first.Members != len(msgs) || first.New != len(msgs) || first.Skipped != 0 || len(first.Domains) == 0 {
		t.Fatalf("first ingest %+v (%d lab mails), %v", first, len(msgs), err)
	}
	// Every mail's true sender, as the lab knows it, is what TIP recorded.
	wrong := 0
	for _, m := range msgs {
		sum := sha256.Sum256(m.Raw)
		var ip *string
		if err := testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT host(sender_ip) FROM spam_messages WHERE sha256 = $1`, hex.EncodeToString(sum[:])).Scan(&ip); err != nil {
			t.Fatalf("%s not recorded: %v", m.Name, err)
		}
		got := ""
		if ip != nil {
			got = *ip
		}
		if want := m.Truth.SenderIP; (want.IsValid() && got != want.String()) || (!want.IsValid() && got != "") {
			wrong++
		}
	}
	if wrong > 0 {
		t.Fatalf("%d of %d mails recorded with a sender other than the lab's truth", wrong, len(msgs))
	}
	// With the rules of both traps, no mail lacks its trap's header.
	var untrusted int
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT count(*) FROM spam_messages WHERE array_to_string(defects, ' ') LIKE '%no Received header written by the trap%'`).Scan(&untrusted)
	if untrusted != 0 {
		t.Fatalf("%d mails found no header of their trap's MX", untrusted)
	}
	var raw int
	for _, m := range msgs[:5] {
		sum := sha256.Sum256(m.Raw)
		if b, err := storage.RawMail(ctx, a.DB, a.Blobs, hex.EncodeToString(sum[:])); err == nil && string(b) == string(m.Raw) {
			raw++
		}
	}
	if raw != 5 {
		t.Fatalf("raw mails in S3: %d of 5", raw)
	}

	// Unchanged archive: a 304, nothing read.
	if again, err := runActivity[contract.IngestResult](t, a, a.IngestSpamArchive, in); err != nil || again.Status != contract.FetchUnchanged || again.New != 0 {
		t.Fatalf("unchanged ingest %+v, %v", again, err)
	}
	// The month grows: only the new members are read.
	l.Clock.Advance(6 * time.Hour)
	grown, err := runActivity[contract.IngestResult](t, a, a.IngestSpamArchive, in)
	all := l.Sent()
	if err != nil || grown.Skipped != len(msgs) || grown.New != len(all)-len(msgs) || grown.Members != len(all) {
		t.Fatalf("delta ingest %+v; lab now has %d mails, had %d; %v", grown, len(all), len(msgs), err)
	}
	var stored int
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT count(*) FROM spam_messages`).Scan(&stored)
	if stored != len(all) {
		t.Fatalf("%d mails stored, the lab sent %d", stored, len(all))
	}

	// The senders become TIP's own blacklist source.
	senders, err := runActivity[contract.LoadResult](t, a, a.RefreshSpamSenders, "run-1")
	var distinct int
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT count(DISTINCT sender_ip) FROM spam_messages`).Scan(&distinct)
	if err != nil || senders.Status != contract.RunLoaded || senders.Entries != distinct || senders.Added != distinct || distinct == 0 {
		t.Fatalf("senders %+v (distinct %d), %v", senders, distinct, err)
	}
	if again, err := runActivity[contract.LoadResult](t, a, a.RefreshSpamSenders, "run-1"); err != nil || again != senders {
		t.Fatalf("retried senders refresh %+v, %v", again, err)
	}
	ls, err := a.DB.Lookup(ctx, "ipv4", all[0].Truth.SenderIP.String(), "", "")
	if err != nil || len(ls) == 0 || ls[0].Source != contract.SpamSendersSource {
		t.Fatalf("lookup of a spam sender: %+v, %v", ls, err)
	}
}

func TestPollMailboxReadsTheSecretFromTheCatalogAndOnlyNewMail(t *testing.T) {
	if _, err := os.Stat(trap.DovecotBinary); err != nil {
		t.Skip("dovecot is not installed (deploy/local/tools.sh installs dovecot-imapd)")
	}
	ctx := context.Background()
	a := newActivities(t)
	l := newSpamLab(t, 1200)
	dir, err := os.MkdirTemp("", "imap")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	maildir := filepath.Join(dir, "Maildir")
	d := trap.NewDelivery(lab.MailSource(l.Gen), l.Clock, maildir, filepath.Join(dir, "state"))
	delivered, err := d.DeliverDue()
	if err != nil || delivered == 0 {
		t.Fatalf("deliver %d, %v", delivered, err)
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dc, err := trap.StartDovecot(dctx, trap.DovecotConfig{Dir: filepath.Join(dir, "dovecot"), Maildir: maildir, User: "trap", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Stop()
	t.Setenv("TIP_TEST_IMAP_PASSWORD", "s3cret")
	y, _ := os.ReadFile(l.catalog)
	y = append(y, fmt.Sprintf("mailboxes:\n  - {name: trap, address: %q, tls: starttls, ca_file: %q, username: trap, password_env: TIP_TEST_IMAP_PASSWORD, trap: all, interval: 1h}\n",
		dc.Addr(), dc.CertFile())...)
	os.WriteFile(l.catalog, y, 0o644)
	a.setSpamCatalog(l.catalog)
	plan, err := runActivity[contract.SpamPlan](t, a, a.ReadSpamCatalog)
	if err != nil || len(plan.Mailboxes) != 1 || plan.Mailboxes[0].Secret() != "s3cret" {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	box := plan.Mailboxes[0]
	box.PasswordEnv = "" // as it arrives through a workflow: no secret in the payload
	first, err := runActivity[contract.IngestResult](t, a, a.PollMailbox, box)
	if err != nil || first.Members != delivered || first.New != delivered || len(first.SenderIPs) == 0 {
		t.Fatalf("first poll %+v (delivered %d), %v", first, delivered, err)
	}
	// Within its interval the mailbox is not polled again.
	if again, err := runActivity[contract.IngestResult](t, a, a.PollMailbox, box); err != nil || again.Status != contract.FetchNotDue {
		t.Fatalf("second poll %+v, %v", again, err)
	}
	// Later, only the new mail comes.
	l.Clock.Advance(2 * time.Hour)
	more, _ := d.DeliverDue()
	testenv.SQL(t, a.DB).Exec(ctx, `UPDATE collector_runs SET last_run = last_run - interval '2 hours'`)
	next, err := runActivity[contract.IngestResult](t, a, a.PollMailbox, box)
	if err != nil || more == 0 || next.Members != more || next.New != more {
		t.Fatalf("third poll %+v (delivered %d more), %v", next, more, err)
	}
	var seen int
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT count(*) FROM spam_sightings WHERE origin = 'imap:trap'`).Scan(&seen)
	if seen != delivered+more {
		t.Fatalf("%d sightings, want %d", seen, delivered+more)
	}
}

// A mailbox whose server answers a partial fetch with a 300 MiB literal: that
// message is refused and recorded as such with its UID, the others stored, and
// the cursor moves past it so the next poll does not ask for it again.
func TestPollMailboxRecordsRefusedMail(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	l := newSpamLab(t, 600)
	msgs := l.Sent()[:3]
	srv := imaptest.NewServer(t, imaptest.Options{Mails: map[uint32]string{1: string(msgs[0].Raw), 3: string(msgs[1].Raw), 4: string(msgs[2].Raw)},
		Huge: map[uint32]int64{2: 300 << 20}})
	y, _ := os.ReadFile(l.catalog)
	y = append(y, fmt.Sprintf("mailboxes:\n  - {name: hostile, address: %q, tls: none, username: trap, password: pw, trap: all, interval: 1h}\n", srv.Addr())...)
	os.WriteFile(l.catalog, y, 0o644)
	a.setSpamCatalog(l.catalog)
	plan, err := runActivity[contract.SpamPlan](t, a, a.ReadSpamCatalog)
	if err != nil || len(plan.Mailboxes) != 1 {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	res, err := runActivity[contract.IngestResult](t, a, a.PollMailbox, plan.Mailboxes[0])
	if err != nil || res.Members != 3 || res.New != 3 || res.Refused != 1 || len(res.RefusedSample) != 1 || res.Status != "ingested" {
		t.Fatalf("poll %+v, %v", res, err)
	}
	if want := fmt.Sprintf("UID %d:2: the server answered with 314572800 bytes", imaptest.UIDValidity); !strings.HasPrefix(res.RefusedSample[0], want) {
		t.Errorf("refusal %q, want it to start %q", res.RefusedSample[0], want)
	}
	if v, last, err := a.DB.IMAPCursor(ctx, "hostile"); err != nil || v != imaptest.UIDValidity || last != 4 {
		t.Fatalf("cursor %d:%d, %v", v, last, err)
	}
	testenv.SQL(t, a.DB).Exec(ctx, `UPDATE collector_runs SET last_run = last_run - interval '2 hours'`)
	if again, err := runActivity[contract.IngestResult](t, a, a.PollMailbox, plan.Mailboxes[0]); err != nil || again.Members != 0 || again.Refused != 0 || again.Status != contract.FetchUnchanged {
		t.Fatalf("next poll %+v, %v", again, err)
	}
}

// A batch retried after a crash, whether the crash came after its pack was
// stored or after its facts were committed, writes the same pack under the same
// key and no second row: each mail has one row of facts, one place, and reads
// back verified from it.
func TestSpamRecorderRetriesRewriteTheSamePacks(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	sent := newSpamLab(t, 3000).Sent()
	if len(sent) < 2*spamBatch+50 {
		t.Fatalf("the lab sent %d mails", len(sent))
	}
	sent = sent[:2*spamBatch+50]
	record := func() int {
		res := contract.IngestResult{Origin: "archive:retry"}
		rec := a.Spam.newSpamRecorder(mail.Config{Limits: mail.DefaultLimits()}, nil, &res)
		for _, m := range sent {
			full, err := rec.add(m.Name, m.Raw, false)
			if err == nil && full {
				err = rec.flush(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := rec.wait(ctx); err != nil {
			t.Fatal(err)
		}
		return res.New
	}
	// The first attempt stored its first pack and died before its transaction.
	var first [][]byte
	for _, m := range sent[:spamBatch] {
		first = append(first, m.Raw)
	}
	crashed, err := a.Blobs.PutMailPack(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for _, m := range sent {
		distinct[mail.Digest(m.Raw)] = true
	}
	if n := record(); n != len(distinct) {
		t.Fatalf("the retry recorded %d new mails, want %d", n, len(distinct))
	}
	// And once more, as if the activity died after its last commit.
	if n := record(); n != 0 {
		t.Fatalf("a second retry recorded %d new mails", n)
	}
	var messages, sightings, places int
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT (SELECT count(*) FROM spam_messages), (SELECT count(*) FROM spam_sightings),
		(SELECT count(*) FROM spam_raw)`).Scan(&messages, &sightings, &places)
	shas := map[string]bool{}
	for _, m := range sent {
		sum := sha256.Sum256(m.Raw)
		shas[hex.EncodeToString(sum[:])] = true
	}
	if messages != len(distinct) || sightings != len(sent) || places != len(shas) {
		t.Errorf("%d messages, %d sightings, %d raw places; want %d, %d, %d", messages, sightings, places, len(distinct), len(sent), len(shas))
	}
	s := testenv.Stack(t)
	cl, err := minio.New(s.S3Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(s.S3AccessKey, s.S3SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	var packs []string
	for obj := range cl.ListObjects(ctx, a.Blobs.Bucket(), minio.ListObjectsOptions{Prefix: "spampack/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		packs = append(packs, obj.Key)
	}
	if len(packs) != 3 || !slices.Contains(packs, crashed.Key) {
		t.Errorf("packs in S3: %v; want 3, with the crashed attempt's %s among them", packs, crashed.Key)
	}
	for _, m := range sent {
		sum := sha256.Sum256(m.Raw)
		if raw, err := storage.RawMail(ctx, a.DB, a.Blobs, hex.EncodeToString(sum[:])); err != nil || !bytes.Equal(raw, m.Raw) {
			t.Fatalf("raw copy of %s: %d bytes, %v", m.Name, len(raw), err)
		}
	}
}

// failingSpamStore fails the failAt-th RecordSpam and remembers the batch's
// first mail.
type failingSpamStore struct {
	SpamStore
	mu     sync.Mutex
	calls  int
	failAt int
	failed string
}

func (s *failingSpamStore) RecordSpam(ctx context.Context, batch []storage.SpamRecord) (int, error) {
	s.mu.Lock()
	s.calls++
	fail := s.calls == s.failAt
	if fail {
		s.failed = batch[0].Name
	}
	s.mu.Unlock()
	if fail {
		return 0, errors.New("the database went away")
	}
	return s.SpamStore.RecordSpam(ctx, batch)
}

// When a batch fails to be stored, its mails are not recorded, nothing that
// was to follow it or any later batch runs (a cursor stays before it), and
// what followed the batches before it ran only once they were recorded; the
// error comes back.
func TestSpamRecorderStopsAtTheFirstFailure(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	sent := newSpamLab(t, 600).Sent()
	traps := a.Spam.Spamtraps
	store := &failingSpamStore{SpamStore: a.DB, failAt: 2}
	traps.Store = store
	res := contract.IngestResult{Origin: "imap:failing"}
	rec := traps.newSpamRecorder(mail.Config{Limits: mail.DefaultLimits()}, nil, &res)
	defer rec.stop()
	const batches, size = 4, 50
	var followed []int
	var err error
	for b := 0; b < batches && err == nil; b++ {
		for _, m := range sent[b*size : (b+1)*size] {
			if _, err = rec.add(m.Name, m.Raw, false); err != nil {
				break
			}
		}
		if err == nil {
			err = rec.flushThen(ctx, func() error {
				var n int
				testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT count(*) FROM spam_sightings WHERE name = ANY($1)`, names(sent[:(b+1)*size])).Scan(&n)
				if n != (b+1)*size {
					t.Errorf("what follows batch %d ran with %d of its and the earlier batches' %d mails recorded", b, n, (b+1)*size)
				}
				followed = append(followed, b)
				return nil
			})
		}
	}
	if err = errors.Join(err, rec.wait(ctx)); err == nil || !strings.Contains(err.Error(), "went away") {
		t.Fatalf("the recorder ended with %v", err)
	}
	failed := slices.IndexFunc(sent, func(m spam.Message) bool { return m.Name == store.failed }) / size
	var n int
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT count(*) FROM spam_sightings WHERE name = ANY($1)`, names(sent[failed*size:(failed+1)*size])).Scan(&n)
	if n != 0 || slices.ContainsFunc(followed, func(b int) bool { return b >= failed }) || len(followed) != failed {
		t.Errorf("batch %d failed: %d of its mails recorded, what followed ran for batches %v", failed, n, followed)
	}
}

func names(ms []spam.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// A collector waiting for its batch (an IMAP poll that deletes what it
// stored) hears of the batch's failure instead of waiting for ever.
func TestSpamRecorderSyncReturnsAFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newActivities(t)
	sent := newSpamLab(t, 600).Sent()
	traps := a.Spam.Spamtraps
	traps.Store = &failingSpamStore{SpamStore: a.DB, failAt: 1}
	res := contract.IngestResult{Origin: "imap:failing"}
	rec := traps.newSpamRecorder(mail.Config{Limits: mail.DefaultLimits()}, nil, &res)
	defer rec.stop()
	for _, m := range sent[:10] {
		if _, err := rec.add(m.Name, m.Raw, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.sync(ctx); err == nil || !strings.Contains(err.Error(), "went away") {
		t.Fatalf("sync = %v, want the batch's failure", err)
	}
}
