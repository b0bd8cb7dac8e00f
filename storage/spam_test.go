package storage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/mail"
	"github.com/tip-project/tip/storage"
)

func TestRecordSpamIsIdempotentAndRemembersSightings(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	skew := int64(-30)
	mail := func(sha, name string) storage.SpamRecord {
		return storage.SpamRecord{SHA256: sha, Size: 100, ReceivedAt: &at, SenderIP: netip.MustParseAddr("198.51.100.7"), SenderASN: 64500,
			HELO: "bot", Subject: "hi", DateSkew: &skew, Campaign: "c1", Defects: []string{"no Date"},
			URLs:        []storage.SpamURL{{URL: "http://evil.example/a", Host: "evil.example", Registrable: "evil.example"}},
			Attachments: []storage.SpamAttachment{{Name: "a.zip", Type: "application/zip", Size: 10, ContentSHA256: "ff"}},
			Facts:       json.RawMessage(`{"subject":"hi"}`), Origin: "archive:x", Name: name}
	}
	batch := []storage.SpamRecord{mail("aa", "2026/09/01/1.txt"), mail("bb", "2026/09/01/2.txt"), mail("aa", "2026/09/01/3.txt")}
	n, err := db.RecordSpam(ctx, batch)
	if err != nil || n != 2 {
		t.Fatalf("first batch: %d new, %v", n, err)
	}
	// A retried batch adds nothing; the same mail seen elsewhere adds a sighting only.
	if n, err := db.RecordSpam(ctx, batch); err != nil || n != 0 {
		t.Fatalf("retried batch: %d new, %v", n, err)
	}
	other := mail("bb", "1:17")
	other.Origin = "imap:trap"
	if n, err := db.RecordSpam(ctx, []storage.SpamRecord{other}); err != nil || n != 0 {
		t.Fatalf("seen elsewhere: %d new, %v", n, err)
	}
	seen, err := db.SeenNames(ctx, "archive:x")
	if err != nil || len(seen) != 3 || !seen["2026/09/01/3.txt"] {
		t.Fatalf("seen: %v, %v", seen, err)
	}
	var msgs, urls, atts, sightings int
	testenv.SQL(t, db).QueryRow(ctx, `SELECT (SELECT count(*) FROM spam_messages), (SELECT count(*) FROM spam_urls),
		(SELECT count(*) FROM spam_attachments), (SELECT count(*) FROM spam_sightings)`).Scan(&msgs, &urls, &atts, &sightings)
	if msgs != 2 || urls != 2 || atts != 2 || sightings != 4 {
		t.Fatalf("%d messages, %d urls, %d attachments, %d sightings", msgs, urls, atts, sightings)
	}
	var ip, subject string
	testenv.SQL(t, db).QueryRow(ctx, `SELECT host(sender_ip), facts->>'subject' FROM spam_messages WHERE sha256 = 'aa'`).Scan(&ip, &subject)
	if ip != "198.51.100.7" || subject != "hi" {
		t.Fatalf("stored %s %q", ip, subject)
	}

	u := "https://x.org/spam/2026-09.7z"
	if r, err := db.SpamArchive(ctx, u); err != nil || r.IngestedAt != nil {
		t.Fatalf("unknown archive: %+v, %v", r, err)
	}
	if err := db.SpamArchiveIngested(ctx, storage.SpamArchiveRow{URL: u, Name: "2026-09.7z", Period: "2026-09", ETag: `"e"`, SHA: "abc", Members: 3}); err != nil {
		t.Fatal(err)
	}
	if r, err := db.SpamArchive(ctx, u); err != nil || r.IngestedAt == nil || r.ETag != `"e"` || r.Members != 3 {
		t.Fatalf("archive: %+v, %v", r, err)
	}
}

// TestACopyWithOtherLineEndsIsASighting: the same mail read from a file (LF) and
// fetched over IMAP (CRLF) hashes differently but has one digest: it is recorded
// once, under the first copy's SHA-256, with both sightings; its URLs and
// attachments once.
func TestACopyWithOtherLineEndsIsASighting(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	lf := []byte("Subject: hi\nMessage-ID: <1@x>\n\nhttp://evil.example/a\n")
	crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
	rec := func(raw []byte, origin, name string) storage.SpamRecord {
		f := mail.Extract(raw, mail.Config{})
		return storage.SpamRecord{SHA256: f.SHA256, Digest: f.Digest, Size: f.Size, Subject: "hi",
			URLs:        []storage.SpamURL{{URL: "http://evil.example/a", Host: "evil.example", Registrable: "evil.example"}},
			Attachments: []storage.SpamAttachment{{Name: "a.zip", Type: "application/zip", Size: 10, ContentSHA256: "ff"}},
			Origin:      origin, Name: name}
	}
	first, second := rec(lf, "archive:x", "2026/09/01/1.txt"), rec(crlf, "imap:trap", "7:1")
	if first.SHA256 == second.SHA256 || first.Digest != second.Digest {
		t.Fatalf("sha256 %s and %s, digests %s and %s", first.SHA256, second.SHA256, first.Digest, second.Digest)
	}
	for i, b := range [][]storage.SpamRecord{{first}, {second}, {first, second}} {
		n, err := db.RecordSpam(ctx, b)
		if want := map[int]int{0: 1}[i]; err != nil || n != want {
			t.Fatalf("batch %d: %d new, %v; want %d", i, n, err, want)
		}
	}
	var msgs, urls, atts int
	var shas []string
	testenv.SQL(t, db).QueryRow(ctx, `SELECT (SELECT count(*) FROM spam_messages), (SELECT count(*) FROM spam_urls),
		(SELECT count(*) FROM spam_attachments), (SELECT array_agg(sha256 ORDER BY origin) FROM spam_sightings)`).Scan(&msgs, &urls, &atts, &shas)
	if msgs != 1 || urls != 1 || atts != 1 || !slices.Equal(shas, []string{first.SHA256, first.SHA256}) {
		t.Fatalf("%d messages, %d urls, %d attachments, sightings of %v", msgs, urls, atts, shas)
	}
}

func TestIMAPCursor(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if v, u, err := db.IMAPCursor(ctx, "trap"); err != nil || v != 0 || u != 0 {
		t.Fatalf("unknown mailbox: %d %d %v", v, u, err)
	}
	for _, step := range []struct{ v, u uint32 }{{7, 10}, {7, 25}, {4000000000, 3}} {
		if err := db.SetIMAPCursor(ctx, "trap", step.v, step.u, 5); err != nil {
			t.Fatal(err)
		}
		if v, u, err := db.IMAPCursor(ctx, "trap"); err != nil || v != step.v || u != step.u {
			t.Fatalf("cursor %d %d %v, want %d %d", v, u, err, step.v, step.u)
		}
	}
	var fetched int
	testenv.SQL(t, db).QueryRow(ctx, `SELECT fetched FROM imap_cursors WHERE mailbox = 'trap'`).Scan(&fetched)
	if fetched != 15 {
		t.Fatalf("fetched %d, want 15", fetched)
	}
}

func TestSpamStatsAndFacts(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	var batch []storage.SpamRecord
	for i, c := range []struct {
		ip, country, campaign, domain string
		asn                           int
	}{
		{"198.51.100.1", "RU", "pharma", "pills.example", 64500},
		{"198.51.100.2", "RU", "pharma", "pills.example", 64500},
		{"198.51.100.2", "CN", "pharma", "pills2.example", 64501},
		{"203.0.113.9", "", "phish", "bank.example", 0},
	} {
		ts := at.Add(time.Duration(i) * time.Hour)
		origin := fmt.Sprintf("archive:http://spam.example/archive/2026-0%d.7z", 8+i/2)
		if i == 3 {
			origin = "agent:mx1"
		}
		batch = append(batch, storage.SpamRecord{SHA256: fmt.Sprintf("%064x", i), Size: 10, ReceivedAt: &ts,
			SenderIP: netip.MustParseAddr(c.ip), SenderASN: c.asn, SenderCountry: c.country, Campaign: c.campaign,
			Subject: "s" + c.campaign, URLs: []storage.SpamURL{{URL: "http://" + c.domain + "/", Host: c.domain, Registrable: c.domain}},
			Facts: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), Origin: origin, Name: fmt.Sprint(i)})
	}
	if _, err := db.RecordSpam(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// The first mail is seen again, by an IMAP trap.
	again := batch[0]
	again.Origin, again.Name = "imap:trap", "1"
	if _, err := db.RecordSpam(ctx, []storage.SpamRecord{again}); err != nil {
		t.Fatal(err)
	}
	st, err := db.SpamStats(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mails != 4 || st.Senders != 3 || !st.First.Equal(at) || !st.Last.Equal(at.Add(3*time.Hour)) {
		t.Errorf("totals %+v", st)
	}
	if len(st.ASNs) != 3 || st.ASNs[0] != (storage.CountRow{Key: "AS64500", Mails: 2}) {
		t.Errorf("ASNs %+v", st.ASNs)
	}
	if len(st.Countries) != 3 || st.Countries[0] != (storage.CountRow{Key: "RU", Mails: 2}) || st.Countries[1].Key != "CN" {
		t.Errorf("countries %+v", st.Countries)
	}
	if len(st.Campaigns) != 2 || st.Campaigns[0].Key != "pharma" || st.Campaigns[0].Mails != 3 || st.Campaigns[0].Senders != 2 {
		t.Errorf("campaigns %+v", st.Campaigns)
	}
	// Origins by collector: an archive's months together, each mailbox and agent.
	wantOrigins := []storage.CountRow{{Key: "archive:http://spam.example/archive/", Mails: 3}, {Key: "agent:mx1", Mails: 1}, {Key: "imap:trap", Mails: 1}}
	if st.Domains[0] != (storage.CountRow{Key: "pills.example", Mails: 2}) || !slices.Equal(st.Origins, wantOrigins) {
		t.Errorf("domains %+v origins %+v", st.Domains, st.Origins)
	}
	facts, seen, err := db.SpamFacts(ctx, fmt.Sprintf("%064x", 2))
	if err != nil || string(facts) != `{"n": 2}` || len(seen) != 1 || seen[0] != "archive:http://spam.example/archive/2026-09.7z 2" {
		t.Errorf("facts %s %v %v", facts, seen, err)
	}
	if _, _, err := db.SpamFacts(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown mail: %v", err)
	}
}

func TestClaimCollectorRun(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, false} {
		if ok, err := db.ClaimCollectorRun(ctx, "imap:trap", time.Hour); err != nil || ok != want {
			t.Fatalf("claim %d: %v, %v; want %v", i, ok, err, want)
		}
	}
	if ok, err := db.ClaimCollectorRun(ctx, "archive:lab", time.Hour); err != nil || !ok {
		t.Fatalf("another collector: %v, %v", ok, err)
	}
	testenv.SQL(t, db).Exec(ctx, `UPDATE collector_runs SET last_run = now() - interval '2 hours'`)
	if ok, err := db.ClaimCollectorRun(ctx, "imap:trap", time.Hour); err != nil || !ok {
		t.Fatalf("after the interval: %v, %v", ok, err)
	}
}
