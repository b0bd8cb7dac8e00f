package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/spam"
	"github.com/tip-project/tip/lab/trap"
	"github.com/tip-project/tip/lab/world"
)

// trapLab is a lab trap delivering its spam into a Maildir as lab time passes,
// and an agent folder configured to publish it.
type trapLab struct {
	clock    *world.Clock
	delivery *trap.Delivery
	maildir  string
	cfg      Config
}

// newTrapLab delivers perDay lab spams a day, hours lab hours of them at once.
func newTrapLab(t testing.TB, perDay int, hours int) *trapLab {
	t.Helper()
	dir := t.TempDir()
	w := world.NewWorld(1)
	gen := spam.NewGenerator(w, spam.Options{PerDay: perDay})
	l := &trapLab{clock: world.FixedClock(w.Start), maildir: filepath.Join(dir, "Maildir")}
	l.delivery = trap.NewDelivery(lab.MailSource(gen), l.clock, l.maildir, filepath.Join(dir, "delivery.state"))
	l.cfg = DefaultConfig(filepath.Join(dir, "agent"))
	l.cfg.ID = "mx1.test"
	l.cfg.Maildirs = []Maildir{{Path: l.maildir, Folder: "spam"}}
	l.cfg.BatchMaxMails = 50
	for _, mx := range w.TrapMX {
		l.cfg.Trap.MX = append(l.cfg.Trap.MX, mx.Name)
		l.cfg.Trap.MXAddrs = append(l.cfg.Trap.MXAddrs, netip.PrefixFrom(mx.Addr, mx.Addr.BitLen()))
	}
	for _, a := range gen.TrustedRelays() {
		l.cfg.Trap.Trusted = append(l.cfg.Trap.Trusted, netip.PrefixFrom(a, a.BitLen()))
	}
	l.deliver(t, time.Duration(hours)*time.Hour)
	return l
}

// deliver advances lab time by d and delivers what arrived meanwhile.
func (l *trapLab) deliver(t testing.TB, d time.Duration) int {
	t.Helper()
	l.clock.Advance(d)
	n, err := l.delivery.DeliverDue()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// open opens the agent's store and a publisher on it, as a start of the agent does.
func (l *trapLab) open(t testing.TB) (*Store, *Publisher) {
	t.Helper()
	s, err := OpenStore(l.cfg.Dir, l.cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(l.cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

// present is the unique names of the mail in the Maildir's new/ and cur/.
func present(t testing.TB, maildir string) map[string]bool {
	t.Helper()
	have := map[string]bool{}
	for _, sub := range []string{"new", "cur"} {
		names, err := readNames(filepath.Join(maildir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			name, _, _ := strings.Cut(n, ":")
			have[name] = true
		}
	}
	return have
}

// published reads an agent folder as a collector would: the manifest from disk,
// every batch checked against its SHA-256 and size and decoded, every kept raw
// mail hashing to its facts' SHA-256. It fails on a mail published twice and
// returns the mails by unique name (folder "spam").
func published(t testing.TB, dir string) map[string]Mail {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, ManifestFile))
	if os.IsNotExist(err) {
		return map[string]Mail{}
	}
	if err != nil {
		t.Fatal(err)
	}
	man, err := DecodeManifest(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Mail{}
	for _, e := range man.Versions {
		data, err := os.ReadFile(filepath.Join(dir, BatchesDir, BatchName(e.Version)))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != e.SHA256 || int64(len(data)) != e.Size {
			t.Fatalf("batch %d does not match its manifest entry", e.Version)
		}
		b, err := DecodeBatch(bytes.NewReader(data), e.Version)
		if err != nil {
			t.Fatal(err)
		}
		if b.Header.Agent != man.Agent || len(b.Mails) != e.Mails || len(b.Mails) == 0 {
			t.Fatalf("batch %d: header %+v, %d mails, entry %+v", e.Version, b.Header, len(b.Mails), e)
		}
		for _, m := range b.Mails {
			key := m.Folder + "/" + m.Name
			if _, dup := out[key]; dup {
				t.Fatalf("%s published twice (again in version %d)", key, e.Version)
			}
			out[key] = m
		}
		if e.RawSize == 0 {
			continue
		}
		pack, err := os.ReadFile(filepath.Join(dir, RawDir, PackName(e.Version)))
		if err != nil || int64(len(pack)) != e.RawSize {
			t.Fatalf("batch %d: raw pack of %d bytes (%v), the manifest says %d", e.Version, len(pack), err, e.RawSize)
		}
		kept := 0
		err = ReadPack(bytes.NewReader(pack), b, func(m *Mail, raw io.Reader) error {
			kept++
			_, err := io.Copy(io.Discard, raw) // the reader checks the SHA-256 at the end
			return err
		})
		if err != nil {
			t.Fatalf("batch %d: %v", e.Version, err)
		}
		if want := e.Mails; kept != want {
			t.Fatalf("batch %d: %d raw mails in the pack, want %d", e.Version, kept, want)
		}
	}
	return out
}

// exactlyOnce checks every mail of the Maildir is published, once (published
// fails on twice), and returns how many mails are published.
func exactlyOnce(t testing.TB, l *trapLab) int {
	t.Helper()
	pub := published(t, l.cfg.Dir)
	for name := range present(t, l.maildir) {
		if _, ok := pub["spam/"+name]; !ok {
			t.Fatalf("mail %s is in the Maildir but not published (%d published)", name, len(pub))
		}
	}
	return len(pub)
}
