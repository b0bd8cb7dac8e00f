package trap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/lab/world"
)

// maildirFiles reads every message in new/ and cur/, by base name.
func maildirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			base, _, _ := strings.Cut(e.Name(), ":")
			if _, dup := out[base]; dup {
				t.Errorf("%s delivered twice", base)
			}
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[base] = b
		}
	}
	return out
}

// checkMaildir asserts the Maildir holds exactly the source's mail before to, once
// each, byte for byte, with nothing left in tmp/.
func checkMaildir(t *testing.T, dir string, to time.Time) {
	t.Helper()
	got := maildirFiles(t, dir)
	want := newFakeSource().Between(time.Time{}, to)
	if len(got) != len(want) {
		t.Errorf("maildir has %d messages, want %d", len(got), len(want))
	}
	byContent := map[string]bool{}
	for _, b := range got {
		byContent[string(b)] = true
	}
	for _, m := range want {
		if !byContent[string(m.Raw)] {
			t.Errorf("mail %s missing", m.Name)
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ holds %d files", len(tmp))
	}
}

func TestDeliveryExactlyOnceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	maildir, state := filepath.Join(dir, "Maildir"), filepath.Join(dir, "delivery.state")
	clock := world.FixedClock(epoch.Add(5 * time.Hour))
	src := newFakeSource()

	d := NewDelivery(src, clock, maildir, state)
	n, err := d.DeliverDue()
	if err != nil {
		t.Fatal(err)
	}
	if want := len(src.Between(time.Time{}, clock.Now())); n != want || n == 0 {
		t.Fatalf("first delivery: %d, want %d", n, want)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if fi, err := os.Stat(filepath.Join(maildir, sub)); err != nil || !fi.IsDir() {
			t.Errorf("maildir lacks %s/", sub)
		}
	}
	if n, _ := d.DeliverDue(); n != 0 {
		t.Errorf("second delivery at the same lab time: %d", n)
	}
	clock.Advance(10 * time.Hour)
	if _, err := d.DeliverDue(); err != nil {
		t.Fatal(err)
	}
	checkMaildir(t, maildir, clock.Now())

	// Restart: a new Delivery on the same state file picks up where the last one was.
	d2 := NewDelivery(src, clock, maildir, state)
	if n, err := d2.DeliverDue(); n != 0 || err != nil {
		t.Errorf("after restart, nothing new: delivered %d, %v", n, err)
	}
	clock.Advance(30 * time.Hour)
	n, err = d2.DeliverDue()
	if err != nil {
		t.Fatal(err)
	}
	if want := len(src.Between(epoch.Add(15*time.Hour), clock.Now())); n != want {
		t.Errorf("after restart delivered %d, want %d", n, want)
	}
	checkMaildir(t, maildir, clock.Now())
	total, _ := d2.Delivered()
	if want := len(src.Between(time.Time{}, clock.Now())); total != want {
		t.Errorf("Delivered() = %d, want %d", total, want)
	}

	// Files carry the lab receipt time (Dovecot's INTERNALDATE) and Maildir names.
	entries, _ := os.ReadDir(filepath.Join(maildir, "new"))
	times := map[int64]bool{}
	for _, m := range src.Between(time.Time{}, clock.Now()) {
		times[m.Time.Unix()] = true
	}
	for _, e := range entries {
		fi, _ := e.Info()
		if !times[fi.ModTime().Unix()] {
			t.Errorf("%s: mtime %s is no mail's receipt time", e.Name(), fi.ModTime())
		}
		if parts := strings.SplitN(e.Name(), ".", 3); len(parts) != 3 || !strings.Contains(parts[2], ",S=") {
			t.Errorf("%s is not <time>.<unique>.<host>,S=<size>", e.Name())
		}
	}
}

func TestDeliveryResumesAnInterruptedRun(t *testing.T) {
	dir := t.TempDir()
	maildir, state := filepath.Join(dir, "Maildir"), filepath.Join(dir, "delivery.state")
	clock := world.FixedClock(epoch.Add(20 * time.Hour))
	src := newFakeSource()
	d := NewDelivery(src, clock, maildir, state)
	if _, err := d.DeliverDue(); err != nil {
		t.Fatal(err)
	}

	// Simulate a crash in the middle of delivering [10h, 20h): the state still says
	// pending, some of that window's mails never made it, one was already read (cur/),
	// and a half-written file lies in tmp/.
	mid := epoch.Add(10 * time.Hour)
	window := src.Between(mid, clock.Now())
	if len(window) < 4 {
		t.Fatalf("window too small: %d", len(window))
	}
	for i, m := range window {
		name := d.fileName(m)
		switch {
		case i%2 == 0:
			if err := os.Remove(filepath.Join(maildir, "new", name)); err != nil {
				t.Fatal(err)
			}
		case i == 1:
			if err := os.Rename(filepath.Join(maildir, "new", name), filepath.Join(maildir, "cur", name+":2,S")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(maildir, "tmp", d.fileName(window[0])), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	end := clock.Now()
	before := len(src.Between(time.Time{}, mid))
	st, _ := json.Marshal(deliveryState{Until: mid, Pending: &end, Delivered: before})
	if err := os.WriteFile(state, st, 0o644); err != nil {
		t.Fatal(err)
	}

	d2 := NewDelivery(src, clock, maildir, state)
	n, err := d2.DeliverDue()
	if err != nil {
		t.Fatal(err)
	}
	if want := (len(window) + 1) / 2; n != want {
		t.Errorf("resumed delivery: %d, want the %d missing", n, want)
	}
	checkMaildir(t, maildir, clock.Now())
	if total, _ := d2.Delivered(); total != len(src.Between(time.Time{}, clock.Now())) {
		t.Errorf("Delivered() = %d after resume", total)
	}
}

func TestDeliveryRun(t *testing.T) {
	dir := t.TempDir()
	maildir := filepath.Join(dir, "Maildir")
	clock := world.FixedClock(epoch.Add(3 * time.Hour))
	d := NewDelivery(newFakeSource(), clock, maildir, filepath.Join(dir, "state"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, 10*time.Millisecond) }()

	clock.Advance(24 * time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	want := len(newFakeSource().Between(time.Time{}, clock.Now()))
	for {
		if n, _ := d.Delivered(); n == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run did not deliver the day's mail")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	checkMaildir(t, maildir, clock.Now())
}

func TestFileNamesAreStable(t *testing.T) {
	d := NewDelivery(newFakeSource(), world.FixedClock(epoch), t.TempDir(), "")
	m := newFakeSource().Between(epoch, epoch.Add(3*time.Hour))
	if len(m) < 2 {
		t.Fatal("need two mails")
	}
	if d.fileName(m[0]) != d.fileName(m[0]) || d.fileName(m[0]) == d.fileName(m[1]) {
		t.Errorf("names: %s %s", d.fileName(m[0]), d.fileName(m[1]))
	}
	if !bytes.Contains([]byte(d.fileName(m[0])), []byte(",S=")) {
		t.Errorf("no size hint: %s", d.fileName(m[0]))
	}
}
