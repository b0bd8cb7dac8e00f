package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tip-project/tip/mail"
)

func testMail(name, raw string) Mail {
	f := mail.Extract([]byte(raw), mail.Config{})
	return Mail{Name: name, Folder: "spam", Delivered: time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC), Raw: true, Facts: f}
}

// putMail puts raw into the store's next pack and returns its Mail.
func putMail(t testing.TB, s *Store, name, raw string) Mail {
	t.Helper()
	m := testMail(name, raw)
	sha, size, off, err := s.PutRaw(strings.NewReader(raw))
	if err != nil || sha != m.Facts.SHA256 || size != int64(len(raw)) {
		t.Fatalf("PutRaw = %s, %d, %v; the mail is %s, %d bytes", sha, size, err, m.Facts.SHA256, len(raw))
	}
	m.RawOffset = off
	return m
}

func TestStoreAppendAndRead(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, "mx1.test")
	if err != nil {
		t.Fatal(err)
	}
	if s.Latest() != 0 || len(s.Entries(0, 0)) != 0 {
		t.Fatalf("a new store has versions")
	}
	raw := "From: a@example.org\r\nSubject: hi\r\n\r\nhttp://spam.example/x\r\n"
	other := "From: b@example.org\r\nSubject: another\r\n\r\nhttp://spam.example/y\r\n"
	first := putMail(t, s, "m0", raw)
	sha := first.Facts.SHA256
	if _, _, err := s.OpenRaw(1, sha); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a raw mail is served before its batch is committed: %v", err)
	}
	if _, err := s.Append([]Mail{first, testMail("m1", other)}); err == nil {
		t.Fatal("a mail said to be raw without its bytes in the pack was appended")
	}
	for i := range 3 {
		mails := []Mail{first}
		if i > 0 {
			mails = []Mail{putMail(t, s, fmt.Sprintf("m%d", i), other), putMail(t, s, fmt.Sprintf("m%d", i+10), raw)}
		}
		e, err := s.Append(mails)
		if err != nil || e.Version != uint64(i+1) || e.Mails != len(mails) || e.RawSize != int64(len(raw)+len(other)*min(i, 1)) {
			t.Fatalf("append %d: %+v, %v", i, e, err)
		}
	}
	if e, err := s.Append([]Mail{{Name: "m9", Folder: "spam", Facts: testMail("", raw).Facts}}); err != nil || e.RawSize != 0 {
		t.Fatalf("a batch without raw mails: %+v, %v", e, err)
	}
	if _, _, err := s.OpenPack(4); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a batch without raw mails has a pack: %v", err)
	}
	if got := s.Entries(1, 1); len(got) != 1 || got[0].Version != 2 {
		t.Fatalf("Entries(1, 1) = %+v", got)
	}
	if got := s.Entries(0, 0); len(got) != 4 {
		t.Fatalf("Entries(0, 0) = %+v", got)
	}
	for _, after := range []uint64{4, 5, 1 << 63} {
		if got := s.Entries(after, 10); len(got) != 0 {
			t.Fatalf("Entries(%d) = %+v", after, got)
		}
	}
	m := s.Manifest()
	m.Versions[0].Size = -1 // a copy: the store's own is untouched
	if s.Manifest().Versions[0].Size <= 0 {
		t.Fatal("Manifest returns the store's own slice")
	}

	r, e, err := s.OpenBatch(2)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r)
	r.Close()
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != e.SHA256 || int64(len(data)) != e.Size {
		t.Fatal("batch bytes do not match the entry")
	}
	for _, v := range []uint64{0, 5, 1<<64 - 1} {
		if _, _, err := s.OpenBatch(v); !errors.Is(err, ErrNotFound) {
			t.Errorf("OpenBatch(%d): %v, want ErrNotFound", v, err)
		}
	}
	for v := uint64(1); v <= 3; v++ { // each batch's copy of raw, wherever it lies in its pack
		rr, n, err := s.OpenRaw(v, sha)
		if err != nil || n != int64(len(raw)) {
			t.Fatal(n, err)
		}
		got, _ := io.ReadAll(rr)
		rr.Close()
		if string(got) != raw {
			t.Fatalf("raw mail of batch %d differs: %q", v, got)
		}
	}
	for _, bad := range []string{"", "../../manifest.json", strings.ToUpper(sha), sha[:63], sha + "0", "../" + sha[3:], sha[:62] + "/.", sha[:63] + "\x00"} {
		if _, _, err := s.OpenRaw(1, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("OpenRaw(%q): %v, want ErrInvalid", bad, err)
		}
	}
	if _, _, err := s.OpenRaw(1, strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenRaw of an unknown mail: %v", err)
	}
	if _, _, err := s.OpenRaw(4, sha); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenRaw of a mail its batch does not keep raw: %v", err)
	}
	if _, _, err := s.OpenRaw(5, sha); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenRaw in a batch not published: %v", err)
	}
	// The folder as a collector reads it.
	if pub := published(t, dir); len(pub) != 6 {
		t.Fatalf("%d mails published", len(pub))
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"7", 7, true}, {"007", 7, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false}, {"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {" 1", 0, false},
		{"1.0", 0, false}, {"0x10", 0, false}, {"1e3", 0, false}, {"../1", 0, false}, {"1%2F", 0, false}, {"١", 0, false},
	} {
		v, err := ParseVersion(tc.in)
		if (err == nil) != tc.ok || v != tc.want {
			t.Errorf("ParseVersion(%q) = %d, %v", tc.in, v, err)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseVersion(%q): %v does not wrap ErrInvalid", tc.in, err)
		}
	}
}

// A crash leaves temporary files and a batch file the manifest does not name;
// opening the store removes them and keeps what was committed.
func TestOpenStoreRecovers(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, "mx1.test")
	if err != nil {
		t.Fatal(err)
	}
	raw := "Subject: x\r\n\r\nbody\r\n"
	if _, err := s.Append([]Mail{putMail(t, s, "a", raw)}); err != nil {
		t.Fatal(err)
	}
	leftovers := []string{
		filepath.Join(BatchesDir, BatchName(2)),
		filepath.Join(BatchesDir, BatchName(9)),
		filepath.Join(BatchesDir, "."+BatchName(2)+".tmp-123"),
		filepath.Join(RawDir, PackName(2)),
		filepath.Join(RawDir, ".tmp-pack-456"),
		"." + ManifestFile + ".tmp-789",
		filepath.Join(StateDir, "."+checkpointFile+".tmp-1"),
	}
	for _, p := range leftovers {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keep := filepath.Join(dir, BatchesDir, "README") // not ours: left alone
	os.WriteFile(keep, nil, 0o600)

	s, err = OpenStore(dir, "mx1.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s survived the reopen", p)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Error("a file that is not the store's was removed")
	}
	if s.Latest() != 1 {
		t.Fatalf("latest %d", s.Latest())
	}
	e, err := s.Append([]Mail{putMail(t, s, "b", raw)})
	if err != nil || e.Version != 2 {
		t.Fatalf("append after recovery: %+v, %v", e, err)
	}
	if pub := published(t, dir); len(pub) != 2 {
		t.Fatalf("%d published", len(pub))
	}

	if _, err := OpenStore(dir, "mx2.test"); err == nil || !strings.Contains(err.Error(), "mx1.test") {
		t.Errorf("another agent's folder opened: %v", err)
	}
	pack := filepath.Join(dir, RawDir, PackName(1))
	os.WriteFile(pack, []byte(raw+"x"), 0o644)
	if _, err := OpenStore(dir, "mx1.test"); err == nil || !strings.Contains(err.Error(), "raw pack 1 is") {
		t.Errorf("a raw pack of the wrong size opened: %v", err)
	}
	os.Remove(pack)
	if _, err := OpenStore(dir, "mx1.test"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a manifest naming a missing raw pack opened: %v", err)
	}
	os.Remove(filepath.Join(dir, BatchesDir, BatchName(1)))
	if _, err := OpenStore(dir, "mx1.test"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a manifest naming a missing batch opened: %v", err)
	}
}

// A stop at each step of Append (as a crash would) leaves the store as it was
// before, or with the version committed; never half of it.
func TestAppendStoppedAtEachStep(t *testing.T) {
	for _, step := range []string{stepRaws, stepBatch, stepManifest} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := OpenStore(dir, "mx1.test")
			raw := "Subject: x\r\n\r\nbody\r\n"
			m := putMail(t, s, "a", raw)
			crash := errors.New("crash")
			s.hook = func(at string) error {
				if at == step {
					return crash
				}
				return nil
			}
			if _, err := s.Append([]Mail{m}); !errors.Is(err, crash) {
				t.Fatal(err)
			}
			if s.Latest() != 0 {
				t.Fatal("a version is visible before Append returned")
			}
			s2, err := OpenStore(dir, "mx1.test")
			if err != nil {
				t.Fatal(err)
			}
			want := uint64(0)
			if step == stepManifest {
				want = 1
			}
			if s2.Latest() != want || len(published(t, dir)) != int(want) {
				t.Fatalf("after the reopen latest %d, want %d", s2.Latest(), want)
			}
			names, _ := readNames(filepath.Join(dir, BatchesDir))
			packs, _ := readNames(filepath.Join(dir, RawDir))
			if len(names) != int(want) || len(packs) != int(want) {
				t.Fatalf("batches/ holds %v, raw/ %v", names, packs)
			}
		})
	}
}

// Readers run while the publisher appends: they see only whole versions.
func TestStoreConcurrentReaders(t *testing.T) {
	dir := t.TempDir()
	s, _ := OpenStore(dir, "mx1.test")
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				latest := s.Latest()
				es := s.Entries(0, 0)
				if uint64(len(es)) < latest {
					t.Error("Entries behind Latest")
					return
				}
				if err := CheckEntries(es, 0); err != nil {
					t.Error(err)
					return
				}
				if latest > 0 {
					if _, err := s.ReadBatch(latest); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	for i := range 30 {
		if _, err := s.Append([]Mail{putMail(t, s, fmt.Sprint(i), "Subject: x\r\n\r\n"+fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if _, err := s.ReadBatch(30); err != nil {
		t.Fatal(err)
	}
	// A batch file changed on disk is refused.
	p := filepath.Join(dir, BatchesDir, BatchName(3))
	data, _ := os.ReadFile(p)
	data[len(data)-5] ^= 1
	os.WriteFile(p, data, 0o644)
	if _, err := s.ReadBatch(3); err == nil || !bytes.Contains([]byte(err.Error()), []byte("SHA-256")) {
		t.Fatalf("a tampered batch was read: %v", err)
	}
}

// An Append stopped before its commit by an error (not a crash) can be called
// again: the raw pack already renamed into place is the retried version's.
func TestAppendRetriedAfterAnError(t *testing.T) {
	for _, step := range []string{stepRaws, stepBatch} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := OpenStore(dir, "mx1.test")
			m := putMail(t, s, "a", "Subject: x\r\n\r\nbody\r\n")
			s.hook = func(at string) error {
				if at == step {
					return errors.New("disk full")
				}
				return nil
			}
			if _, err := s.Append([]Mail{m}); err == nil {
				t.Fatal("the hook did not stop Append")
			}
			s.hook = nil
			e, err := s.Append([]Mail{m})
			if err != nil || e.Version != 1 || e.RawSize != m.Facts.Size {
				t.Fatalf("retried Append: %+v, %v", e, err)
			}
			if pub := published(t, dir); len(pub) != 1 {
				t.Fatalf("%d published", len(pub))
			}
		})
	}
}
