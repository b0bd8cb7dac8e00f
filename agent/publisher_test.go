package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// moveToCur does what a mail client does: new/ → cur/ with flags, then a flag
// change; every k-th mail.
func moveToCur(t *testing.T, maildir string, k int) (moved int) {
	t.Helper()
	names, _ := readNames(filepath.Join(maildir, "new"))
	for i, n := range names {
		if i%k != 0 {
			continue
		}
		cur := filepath.Join(maildir, "cur", n+":2,S")
		if err := os.Rename(filepath.Join(maildir, "new", n), cur); err != nil {
			t.Fatal(err)
		}
		if i%(2*k) == 0 {
			if err := os.Rename(cur, filepath.Join(maildir, "cur", n+":2,RS")); err != nil {
				t.Fatal(err)
			}
		}
		moved++
	}
	return moved
}

func TestPublisherPublishesEachMailOnce(t *testing.T) {
	ctx := context.Background()
	l := newTrapLab(t, 2000, 3)
	delivered := len(present(t, l.maildir))
	if delivered < 100 {
		t.Fatalf("only %d mails delivered", delivered)
	}
	// A mail being delivered sits in tmp/: not a mail yet.
	os.WriteFile(filepath.Join(l.maildir, "tmp", "1764205323.M1P2.mx1"), []byte("Subject: half"), 0o600)
	_, p := l.open(t)
	n, err := p.ScanOnce(ctx)
	if err != nil || n != delivered {
		t.Fatalf("first scan published %d of %d: %v", n, delivered, err)
	}
	if got := exactlyOnce(t, l); got != delivered {
		t.Fatalf("%d published, %d delivered", got, delivered)
	}
	pub := published(t, l.cfg.Dir)
	withSender := 0
	for _, m := range pub {
		if !m.Raw || m.Folder != "spam" || m.Delivered.IsZero() || m.Facts.SHA256 == "" {
			t.Fatalf("mail %+v", m)
		}
		if m.Facts.SenderIP != "" {
			withSender++
		}
	}
	if withSender < len(pub)*9/10 {
		t.Errorf("only %d of %d mails have a trusted sender: the trap rules did not reach the extraction", withSender, len(pub))
	}

	// Reading mail moves it to cur/ and changes its flags: nothing new.
	if moveToCur(t, l.maildir, 3) == 0 {
		t.Fatal("nothing moved")
	}
	if n, err := p.ScanOnce(ctx); err != nil || n != 0 {
		t.Fatalf("after new→cur and flag changes: %d published, %v", n, err)
	}
	// Nor after a restart.
	_, p = l.open(t)
	if n, err := p.ScanOnce(ctx); err != nil || n != 0 {
		t.Fatalf("after a restart: %d published, %v", n, err)
	}
	// New mail, and mail deleted by its reader: only the new is published.
	names, _ := readNames(filepath.Join(l.maildir, "cur"))
	for _, n := range names[:10] {
		os.Remove(filepath.Join(l.maildir, "cur", n))
	}
	more := l.deliver(t, time.Hour)
	if n, err := p.ScanOnce(ctx); err != nil || n != more || more == 0 {
		t.Fatalf("published %d of %d new mails: %v", n, more, err)
	}
	if got := exactlyOnce(t, l); got != delivered+more {
		t.Fatalf("%d published, want %d", got, delivered+more)
	}
	// Batches hold at most batch_max_mails, in delivery order.
	s, _ := l.open(t)
	for _, e := range s.Entries(0, 0) {
		b, err := s.ReadBatch(e.Version)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Mails) > l.cfg.BatchMaxMails {
			t.Fatalf("batch %d has %d mails", e.Version, len(b.Mails))
		}
		for i := 1; i < len(b.Mails); i++ {
			if b.Mails[i].Delivered.Before(b.Mails[i-1].Delivered) {
				t.Fatalf("batch %d is not in delivery order", e.Version)
			}
		}
	}
}

// A crash at each step of publishing a batch, then a restart: nothing lost,
// nothing published twice.
func TestPublisherCrashAtEachStep(t *testing.T) {
	ctx := context.Background()
	for _, step := range []string{stepRaws, stepBatch, stepManifest} {
		t.Run(step, func(t *testing.T) {
			l := newTrapLab(t, 2000, 2)
			delivered := len(present(t, l.maildir))
			s, p := l.open(t)
			crash := errors.New("crash")
			appends := 0
			s.hook = func(at string) error {
				if at == stepRaws {
					appends++
				}
				if at == step && appends == 3 {
					return crash
				}
				return nil
			}
			if _, err := p.ScanOnce(ctx); !errors.Is(err, crash) {
				t.Fatalf("scan: %v", err)
			}
			// What a collector sees now: the batches committed before the crash.
			before := len(published(t, l.cfg.Dir))
			if want := 2 * l.cfg.BatchMaxMails; before < want || (step != stepManifest && before != want) {
				t.Fatalf("%d mails published before the crash, want %d (and the crashed batch's for %s)", before, want, stepManifest)
			}
			// The crashed publisher is dead; whatever it left on disk stays.
			if _, err := p.ScanOnce(ctx); !errors.Is(err, crash) {
				t.Fatalf("a failed publisher went on: %v", err)
			}
			// Mail keeps coming and going while the agent is down.
			names, _ := readNames(filepath.Join(l.maildir, "new"))
			for _, n := range names[:5] {
				os.Remove(filepath.Join(l.maildir, "new", n))
			}
			moveToCur(t, l.maildir, 4)
			more := l.deliver(t, 30*time.Minute)

			_, p = l.open(t)
			n, err := p.ScanOnce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			total := exactlyOnce(t, l)
			if n != total-before {
				t.Fatalf("the restart published %d, %d published in all, %d before the crash", n, total, before)
			}
			if total < delivered+more-5 || total > delivered+more {
				t.Fatalf("%d published of %d delivered (5 deleted)", total, delivered+more)
			}
			tmps, _ := filepath.Glob(filepath.Join(l.cfg.Dir, RawDir, ".tmp-*"))
			if len(tmps) != 0 {
				t.Fatalf("temporary raw files left after the restart: %d", len(tmps))
			}
		})
	}
}

// Mail deleted, or moved to cur/, between the listing and the reading.
func TestPublisherMailGoneBeforeRead(t *testing.T) {
	ctx := context.Background()
	l := newTrapLab(t, 2000, 1)
	_, p := l.open(t)
	i, deleted, moved := 0, 0, map[string]bool{}
	p.beforeRead = func(path string) {
		i++
		switch i % 5 {
		case 0:
			os.Remove(path)
			deleted++
		case 1:
			if strings.Contains(path, "/new/") {
				os.Rename(path, strings.Replace(path, "/new/", "/cur/", 1)+":2,S")
				moved[filepath.Base(path)] = true
			}
		}
	}
	first, err := p.ScanOnce(ctx)
	if err != nil || deleted == 0 || len(moved) == 0 {
		t.Fatalf("scan: %d, %v (%d deleted, %d moved)", first, err, deleted, len(moved))
	}
	p.beforeRead = nil
	second, err := p.ScanOnce(ctx)
	if err != nil || second != len(moved) {
		t.Fatalf("the mails moved while being read: %d published, %d moved, %v", second, len(moved), err)
	}
	if got := exactlyOnce(t, l); got != first+second {
		t.Fatalf("%d published", got)
	}
}

// A mail over the size limit is parsed truncated, known by the whole file's
// SHA-256 and size, and kept whole when keep_raw is on.
func TestPublisherLargeMail(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprint("keep_raw=", keep), func(t *testing.T) {
			l := newTrapLab(t, 2000, 0)
			l.cfg.KeepRaw = keep
			os.MkdirAll(filepath.Join(l.maildir, "new"), 0o700)
			os.MkdirAll(filepath.Join(l.maildir, "cur"), 0o700)
			big := []byte("From: a@example.org\r\nSubject: big\r\n\r\n" + strings.Repeat("http://big.example/ spam spam\r\n", 200))
			os.WriteFile(filepath.Join(l.maildir, "new", "1.M1.big,S=1"), big, 0o600)
			os.WriteFile(filepath.Join(l.maildir, "new", "2.M1.small"), big[:1000], 0o600)
			_, p := l.open(t)
			p.mcfg.Limits.MaxSize = 2000
			if n, err := p.ScanOnce(context.Background()); err != nil || n != 2 {
				t.Fatal(n, err)
			}
			pub := published(t, l.cfg.Dir) // checks a kept raw hashes to its SHA-256
			m := pub["spam/1.M1.big,S=1"]
			sum := sha256.Sum256(big)
			if m.Facts.SHA256 != hex.EncodeToString(sum[:]) || m.Facts.Size != int64(len(big)) || m.Raw != keep {
				t.Fatalf("large mail: sha %s size %d raw %v", m.Facts.SHA256, m.Facts.Size, m.Raw)
			}
			if d := m.Facts.Defects; len(d) == 0 || !strings.Contains(d[len(d)-1], "larger than the 2000-byte limit") {
				t.Fatalf("defects %q", d)
			}
			if s := pub["spam/2.M1.small"]; len(s.Facts.Defects) != 0 && strings.Contains(strings.Join(s.Facts.Defects, ";"), "limit") {
				t.Fatalf("small mail marked: %q", s.Facts.Defects)
			}
		})
	}
}

// The checkpoint spares a restart reading every batch; one that does not match
// the manifest is not used.
func TestPublisherCheckpoint(t *testing.T) {
	ctx := context.Background()
	l := newTrapLab(t, 2000, 2)
	_, p := l.open(t)
	if _, err := p.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// Some mail leaves the Maildir before the checkpoint: it is not in it.
	names, _ := readNames(filepath.Join(l.maildir, "new"))
	for _, n := range names[:7] {
		os.Remove(filepath.Join(l.maildir, "new", n))
	}
	if _, err := p.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	more := l.deliver(t, time.Hour)
	if n, err := p.ScanOnce(ctx); err != nil || n != more {
		t.Fatal(n, err)
	}
	cp, err := p.loadCheckpoint()
	if err != nil || cp.Version == 0 || len(cp.Folders["spam"]) != len(names)-7+countNames(t, l.maildir, "cur") {
		t.Fatalf("checkpoint of version %d with %d names, %v", cp.Version, len(cp.Folders["spam"]), err)
	}

	s, p := l.open(t)
	if n, err := p.ScanOnce(ctx); err != nil || n != 0 {
		t.Fatalf("after a restart from the checkpoint: %d published, %v", n, err)
	}
	// A checkpoint that does not match the manifest (a folder restored from a
	// backup, say) is ignored: every batch is read.
	data := fmt.Sprintf(`{"version":%d,"sha256":"%s","folders":{}}`, s.Latest(), strings.Repeat("0", 64))
	writeGzip(t, filepath.Join(l.cfg.Dir, StateDir, checkpointFile), data)
	_, p = l.open(t)
	if n, err := p.ScanOnce(ctx); err != nil || n != 0 {
		t.Fatalf("after a restart with a stale checkpoint: %d published, %v", n, err)
	}
	exactlyOnce(t, l)
}

func countNames(t *testing.T, maildir, sub string) int {
	names, err := readNames(filepath.Join(maildir, sub))
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

func writeGzip(t *testing.T, path, data string) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(data))
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Run closes a batch at batch_max_mails, or batch_max_wait after its first mail,
// and publishes the open batch when it stops.
func TestPublisherRun(t *testing.T) {
	l := newTrapLab(t, 2000, 0)
	l.cfg.BatchMaxMails, l.cfg.ScanInterval, l.cfg.BatchMaxWait = 20, 10*time.Millisecond, 300*time.Millisecond
	s, p := l.open(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	n := l.deliver(t, 30*time.Minute)
	if n <= 20 || n%20 == 0 {
		t.Skipf("%d mails delivered: not a full and a partial batch", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Latest() < uint64(n/20) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	full := s.Latest()
	if full != uint64(n/20) {
		t.Fatalf("%d batches after the full ones, want %d", full, n/20)
	}
	for s.Latest() == full && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	es := s.Entries(0, 0)
	if len(es) != n/20+1 || es[len(es)-1].Mails != n%20 {
		t.Fatalf("batches %+v for %d mails", es, n)
	}
	// Stopping publishes the open batch.
	l.deliver(t, 10*time.Minute)
	time.Sleep(50 * time.Millisecond) // a scan reads it into the open batch
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := exactlyOnce(t, l); got != len(present(t, l.maildir)) {
		t.Fatalf("%d published", got)
	}
}

// TestPublisherKilled runs the agent in a child process and kills it with
// SIGKILL at random moments while it publishes; mail keeps arriving between the
// runs. Afterwards every mail is published exactly once.
func TestPublisherKilled(t *testing.T) {
	if dir := os.Getenv("TIP_AGENT_KILL_CHILD"); dir != "" {
		runKilledChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	l := newTrapLab(t, 4000, 2)
	l.cfg.BatchMaxMails = 5
	os.MkdirAll(l.cfg.Dir, 0o700)
	if err := l.cfg.Save(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	midway := 0
	for round := range 6 {
		l.deliver(t, 30*time.Minute)
		cmd := exec.Command(os.Args[0], "-test.run=^TestPublisherKilled$", "-test.v")
		cmd.Env = append(os.Environ(), "TIP_AGENT_KILL_CHILD="+l.cfg.Dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: the child ended by itself: %v\n%s", round, err, out.String())
		}
		if pub := len(published(t, l.cfg.Dir)); pub < len(present(t, l.maildir)) {
			midway++
		}
	}
	_, p := l.open(t)
	if _, err := p.ScanOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	total := exactlyOnce(t, l)
	t.Logf("%d mails published exactly once; %d of 6 kills hit mid-publication", total, midway)
	if midway == 0 {
		t.Error("no kill hit the agent while it was publishing")
	}
}

// runKilledChild is the agent of TestPublisherKilled: it publishes until killed.
func runKilledChild(t *testing.T, dir string) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ScanInterval = 5 * time.Millisecond
	s, err := OpenStore(cfg.Dir, cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}
