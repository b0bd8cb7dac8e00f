package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// secretFile writes a file holding marker, a mail by its looks so extraction
// would carry it into the facts, and returns its SHA-256.
func secretFile(t *testing.T, path, marker string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	data := []byte("From: a@example.org\r\nSubject: " + marker + "\r\n\r\n" + strings.Repeat(marker+"\r\n", 20))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// replace puts a symbolic link to target (or, with hard, a hard link) in place
// of path, atomically as a rename does.
func replace(path, target string, hard bool) error {
	tmp := filepath.Join(filepath.Dir(filepath.Dir(path)), "tmp", "swap-"+filepath.Base(path))
	os.Remove(tmp)
	var err error
	if hard {
		err = os.Link(target, tmp)
	} else {
		err = os.Symlink(target, tmp)
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// leaked says which markers the agent's published files hold, or which
// targets' SHA-256 they name.
func leaked(t *testing.T, dir string, markers, shas []string) []string {
	t.Helper()
	var found []string
	check := func(what string, data []byte) {
		for _, m := range append(append([]string{}, markers...), shas...) {
			if bytes.Contains(data, []byte(m)) {
				found = append(found, fmt.Sprintf("%s holds %s", what, m))
			}
		}
	}
	for _, sub := range []string{BatchesDir, RawDir} {
		names, err := readNames(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			data, err := os.ReadFile(filepath.Join(dir, sub, n))
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(n, ".gz") {
				zr, err := gzip.NewReader(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				if data, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			check(sub+"/"+n, data)
		}
	}
	return found
}

// Whoever can write into the Maildir cannot make the agent publish a file from
// elsewhere: a mail swapped for a symbolic link to a secret (between the
// listing and the reading, and at random while scans run), for a hard link to
// the agent's own key, or new/ itself swapped for a link to another folder.
func TestPublisherReadsOnlyTheMaildir(t *testing.T) {
	ctx := context.Background()
	l := newTrapLab(t, 2000, 2)
	delivered := len(present(t, l.maildir))
	nonce := rand.Text()
	keyMarker, secretMarker := "KEYMARKER"+nonce, "SECRETMARKER"+nonce
	// The agent's own key (the publisher never loads it) and a secret outside
	// both folders, in a folder shaped like a Maildir's new/.
	keySHA := secretFile(t, l.cfg.Path(l.cfg.TLS.Key), keyMarker)
	outside := filepath.Join(t.TempDir(), "elsewhere")
	secret := filepath.Join(outside, "1764205323.M1P1.secret")
	secretSHA := secretFile(t, secret, secretMarker)
	_, p := l.open(t)

	// Between the listing and the reading.
	i := 0
	p.beforeRead = func(path string) {
		i++
		switch i % 3 {
		case 0:
			if err := replace(path, secret, false); err != nil {
				t.Error(err)
			}
		case 1:
			if err := replace(path, l.cfg.Path(l.cfg.TLS.Key), true); err != nil {
				t.Error(err)
			}
		}
	}
	first, err := p.ScanOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if found := leaked(t, l.cfg.Dir, []string{keyMarker, secretMarker}, []string{keySHA, secretSHA}); len(found) > 0 {
		t.Fatalf("published outside the Maildir: %s", strings.Join(found, "; "))
	}
	if first == 0 || first > delivered/3+1 {
		t.Fatalf("first scan: %d of %d published; want the third not swapped", first, delivered)
	}
	p.beforeRead = nil

	// At random, while scans run: mails delivered, swapped for links, swapped
	// back; new/ swapped for a link to the secret's folder and back.
	newDir := filepath.Join(l.maildir, "new")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var swaps atomic.Int64
	go func() {
		defer wg.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			path := filepath.Join(newDir, fmt.Sprintf("17642%05d.M%dP9.swap", k, k))
			os.WriteFile(path, []byte(fmt.Sprintf("From: b@example.org\r\nSubject: swap %d\r\n\r\nbody\r\n", k)), 0o600)
			for j := range 4 {
				if replace(path, []string{secret, l.cfg.Path(l.cfg.TLS.Key)}[j%2], j%2 == 1) == nil {
					swaps.Add(1)
				}
				// Back to a mail, delivered through tmp/ as a delivery agent does.
				back := filepath.Join(l.maildir, "tmp", filepath.Base(path))
				os.WriteFile(back, []byte("From: c@example.org\r\n\r\nback\r\n"), 0o600)
				os.Rename(back, path)
			}
			if k%10 == 0 {
				os.Rename(newDir, newDir+".real")
				os.Symlink(outside, newDir)
				time.Sleep(time.Millisecond)
				os.Remove(newDir)
				os.Rename(newDir+".real", newDir)
			}
		}
	}()
	want := int64(400)
	if testing.Short() {
		want = 100
	}
	scans := 0
	for ; scans < 1000 && (scans < 20 || swaps.Load() < want); scans++ {
		if _, err := p.ScanOnce(ctx); err != nil {
			close(stop)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()

	// new/ a link to elsewhere, for a whole scan.
	if err := os.Rename(newDir, newDir+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, newDir); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	os.Remove(newDir)
	os.Rename(newDir+".real", newDir)
	last, err := p.ScanOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first scan %d mails, then %d scans during %d swaps, last scan %d mails", first, scans, swaps.Load(), last)
	if found := leaked(t, l.cfg.Dir, []string{keyMarker, secretMarker}, []string{keySHA, secretSHA}); len(found) > 0 {
		t.Fatalf("published outside the Maildir: %s", strings.Join(found, "; "))
	}
	if len(published(t, l.cfg.Dir)) <= first {
		t.Fatal("nothing published after the first scan")
	}
}

// A FIFO in the Maildir, there from the start or swapped in for a mail between
// the listing and the reading, does not hold the publisher up.
func TestPublisherFIFONotWaitedOn(t *testing.T) {
	ctx := context.Background()
	l := newTrapLab(t, 2000, 1)
	if err := syscall.Mkfifo(filepath.Join(l.maildir, "new", "1764205323.M1P1.fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, p := l.open(t)
	swapped := 0
	p.beforeRead = func(path string) {
		if swapped < 3 && os.Remove(path) == nil && syscall.Mkfifo(path, 0o600) == nil {
			swapped++
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.ScanOnce(ctx)
		if err == nil {
			_, err = p.ScanOnce(ctx)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil || swapped != 3 {
			t.Fatalf("scans: %v, %d FIFOs swapped in", err, swapped)
		}
	case <-time.After(time.Minute):
		t.Fatal("the publisher waits on a FIFO")
	}
	if n, mails := len(published(t, l.cfg.Dir)), len(present(t, l.maildir))-1-swapped; n != mails || n == 0 {
		t.Fatalf("%d published, %d mails in the Maildir", n, mails)
	}
}
