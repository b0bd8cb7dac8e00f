package spamimap

import (
	"context"
	"crypto/sha256"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/spam"
	"github.com/tip-project/tip/lab/trap"
	"github.com/tip-project/tip/lab/world"
)

// publicDir is a temporary folder Dovecot's unprivileged users can enter, with a
// short path (Dovecot's sockets live under it and Unix socket paths are short).
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "imap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type labTrap struct {
	dovecot  *trap.Dovecot
	delivery *trap.Delivery
	clock    *world.Clock
	maildir  string
}

func startTrap(t *testing.T) *labTrap {
	t.Helper()
	if _, err := os.Stat(trap.DovecotBinary); err != nil {
		t.Skip("dovecot is not installed (deploy/local/tools.sh installs dovecot-imapd)")
	}
	dir := publicDir(t)
	w := world.NewWorld(3)
	clock := world.FixedClock(w.Start.Add(2 * time.Hour))
	lt := &labTrap{clock: clock, maildir: filepath.Join(dir, "Maildir")}
	lt.delivery = trap.NewDelivery(lab.MailSource(spam.NewGenerator(w, spam.Options{PerDay: 2400})), clock, lt.maildir, filepath.Join(dir, "delivery.state"))
	if n, err := lt.delivery.DeliverDue(); err != nil || n == 0 {
		t.Fatalf("deliver: %d, %v", n, err)
	}
	// a folder to move stored mail into (Maildir++ layout)
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(lt.maildir, ".Archive", sub), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	lt.dovecot, err = trap.StartDovecot(ctx, trap.DovecotConfig{Dir: filepath.Join(dir, "dovecot"), Maildir: lt.maildir,
		User: "trap", Password: "pw", TLSPort: tlsPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lt.dovecot.Stop() })
	return lt
}

func (lt *labTrap) box(mode string) catalog.Mailbox {
	addr := lt.dovecot.Addr()
	if mode == "tls" {
		addr = lt.dovecot.TLSAddr()
	}
	return catalog.Mailbox{Name: "lab", Address: addr, TLS: mode, CAFile: lt.dovecot.CertFile(), Username: "trap",
		Password: "pw", Mailbox: "INBOX", After: "keep", Trap: "t", Enabled: true}
}

func countFiles(t *testing.T, dirs ...string) int {
	t.Helper()
	n := 0
	for _, d := range dirs {
		es, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		n += len(es)
	}
	return n
}

func TestPollFetchesOnlyNewMailOverStartTLSAndTLS(t *testing.T) {
	lt := startTrap(t)
	ctx := context.Background()
	inBox := countFiles(t, filepath.Join(lt.maildir, "new"), filepath.Join(lt.maildir, "cur"))
	seen := map[[32]byte]bool{}
	stored := func(batch []Mail, next Cursor) error {
		for _, m := range batch {
			seen[sha256.Sum256(m.Raw)] = true
		}
		return nil
	}
	cur, n, err := Poll(ctx, lt.box("starttls"), Cursor{}, Options{Batch: 7}, stored)
	if err != nil || n != inBox || len(seen) != inBox || cur.LastUID != uint32(inBox) || cur.UIDValidity == 0 {
		t.Fatalf("first poll: %d fetched (%d distinct), cursor %+v, %v; the Maildir holds %d", n, len(seen), cur, err, inBox)
	}
	// Nothing new: nothing fetched, over implicit TLS this time.
	again, n, err := Poll(ctx, lt.box("tls"), cur, Options{}, stored)
	if err != nil || n != 0 || again != cur {
		t.Fatalf("second poll: %d fetched, cursor %+v, %v", n, again, err)
	}
	// Two more lab hours of spam: only those are fetched.
	lt.clock.Advance(2 * time.Hour)
	more, err := lt.delivery.DeliverDue()
	if err != nil || more == 0 {
		t.Fatalf("deliver: %d, %v", more, err)
	}
	cur2, n, err := Poll(ctx, lt.box("starttls"), cur, Options{}, stored)
	if err != nil || n != more || len(seen) != inBox+more {
		t.Fatalf("third poll: %d fetched, want %d; %d distinct; %v", n, more, len(seen), err)
	}
	// A store that fails does not advance the cursor: the same mail comes again.
	lt.clock.Advance(time.Hour)
	if more, _ = lt.delivery.DeliverDue(); more == 0 {
		t.Fatal("no mail in the third hour")
	}
	failed, _, err := Poll(ctx, lt.box("starttls"), cur2, Options{}, func([]Mail, Cursor) error { return os.ErrDeadlineExceeded })
	if err == nil || failed != cur2 {
		t.Fatalf("failed store: cursor %+v, %v", failed, err)
	}
	// A renumbered mailbox (new UIDVALIDITY) is read from the start: all of it.
	all := countFiles(t, filepath.Join(lt.maildir, "new"), filepath.Join(lt.maildir, "cur"))
	_, n, err = Poll(ctx, lt.box("starttls"), Cursor{UIDValidity: cur.UIDValidity + 1, LastUID: 1 << 30}, Options{}, func([]Mail, Cursor) error { return nil })
	if err != nil || n != all {
		t.Fatalf("after UIDVALIDITY changed: %d fetched, %v; the mailbox holds %d", n, err, all)
	}
}

func TestPollMovesOrDeletesWhatWasStored(t *testing.T) {
	lt := startTrap(t)
	ctx := context.Background()
	inBox := countFiles(t, filepath.Join(lt.maildir, "new"), filepath.Join(lt.maildir, "cur"))
	box := lt.box("starttls")
	box.After, box.MoveTo = "move", "Archive"
	_, n, err := Poll(ctx, box, Cursor{}, Options{Batch: 50}, func([]Mail, Cursor) error { return nil })
	if err != nil || n != inBox {
		t.Fatalf("move poll: %d, %v", n, err)
	}
	if left := countFiles(t, filepath.Join(lt.maildir, "new"), filepath.Join(lt.maildir, "cur")); left != 0 {
		t.Fatalf("%d messages left in INBOX after moving", left)
	}
	if moved := countFiles(t, filepath.Join(lt.maildir, ".Archive", "new"), filepath.Join(lt.maildir, ".Archive", "cur")); moved != inBox {
		t.Fatalf("%d messages in Archive, want %d", moved, inBox)
	}
	lt.clock.Advance(time.Hour)
	more, _ := lt.delivery.DeliverDue()
	box.After = "delete"
	_, n, err = Poll(ctx, box, Cursor{}, Options{}, func([]Mail, Cursor) error { return nil })
	if err != nil || n != more {
		t.Fatalf("delete poll: %d, want %d, %v", n, more, err)
	}
	if left := countFiles(t, filepath.Join(lt.maildir, "new"), filepath.Join(lt.maildir, "cur")); left != 0 {
		t.Fatalf("%d messages left after deleting", left)
	}
}

func TestPollRefusesBadCredentialsAndCleartextOffLoopback(t *testing.T) {
	lt := startTrap(t)
	box := lt.box("starttls")
	box.Password = "wrong"
	if _, _, err := Poll(context.Background(), box, Cursor{}, Options{}, nil); err == nil || !strings.Contains(err.Error(), "login as trap") {
		t.Fatalf("wrong password: %v", err)
	}
	box = lt.box("starttls")
	box.CAFile = ""
	if _, _, err := Poll(context.Background(), box, Cursor{}, Options{}, nil); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("an untrusted certificate must be refused: %v", err)
	}
	box = lt.box("none")
	box.Address = "192.0.2.1:143"
	if _, _, err := Poll(context.Background(), box, Cursor{}, Options{Timeout: time.Second}, nil); err == nil || !strings.Contains(err.Error(), "loopback only") {
		t.Fatalf("cleartext IMAP off loopback: %v", err)
	}
	// on loopback it is allowed (the lab's Dovecot offers LOGIN in clear there)
	if _, n, err := Poll(context.Background(), lt.box("none"), Cursor{}, Options{}, func([]Mail, Cursor) error { return nil }); err != nil || n == 0 {
		t.Fatalf("cleartext on loopback: %d, %v", n, err)
	}
}
