package mail

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type walked struct{ name, raw string }

func walkAll(t *testing.T, path string) []walked {
	t.Helper()
	var out []walked
	if err := Walk(path, func(name string, raw []byte) error {
		out = append(out, walked{name, string(raw)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWalkMbox(t *testing.T) {
	path := filepath.Join("testdata", "spam.mbox")
	got := walkAll(t, path)
	want := []walked{
		{"mbox:" + path + "#1", "From: a@example.com\nSubject: one\n\nFirst body.\nFrom the quoted line.\n>From doubly quoted.\n"},
		{"mbox:" + path + "#2", "From: b@example.com\nSubject: two\n\nSecond body\nFrom here on a line that is not a separator\n"},
		{"mbox:" + path + "#3", "From: c@example.com\r\nSubject: three\r\n\r\nThird body.\r\n"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestWalkMaildir(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"new/1788220800.M1P2.trap":     "Subject: new\n\nnew\n",
		"cur/1788220700.M1P1.trap:2,S": "Subject: seen\n\ncur\n",
		"cur/1788220600.M1P0.trap:2,":  "Subject: old\n\nold\n",
		"cur/.hidden":                  "not mail",
		"tmp/1788220900.M1P3.trap":     "Subject: partial\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := []walked{
		{"1788220800.M1P2.trap", "Subject: new\n\nnew\n"},
		{"1788220600.M1P0.trap", "Subject: old\n\nold\n"},
		{"1788220700.M1P1.trap", "Subject: seen\n\ncur\n"},
	}
	if got := walkAll(t, dir); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}

	// A folder that is no Maildir: its files by path, Maildirs inside walked
	// as such, an mbox inside split.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "2026", "09", "01"), 0o755)
	os.WriteFile(filepath.Join(root, "2026", "09", "01", "1788220800.1_0.txt"), []byte("Subject: a\n\na\n"), 0o644)
	os.Rename(dir, filepath.Join(root, "trap"))
	got := walkAll(t, root)
	var names []string
	for _, w := range got {
		names = append(names, w.name)
	}
	if want := []string{"2026/09/01/1788220800.1_0.txt", "1788220800.M1P2.trap", "1788220600.M1P0.trap", "1788220700.M1P1.trap"}; !slices.Equal(names, want) {
		t.Errorf("got %q, want %q", names, want)
	}
}

func TestWalkFile(t *testing.T) {
	path := filepath.Join("testdata", "folded-2047.eml")
	got := walkAll(t, path)
	raw, _ := os.ReadFile(path)
	if len(got) != 1 || got[0].name != "folded-2047.eml" || got[0].raw != string(raw) {
		t.Errorf("got %d messages, first %q", len(got), got[0].name)
	}
	if err := Walk(filepath.Join("testdata", "nothing-here"), func(string, []byte) error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing path: %v", err)
	}
}

// A file saved by an old Mac client, its lines ended in bare CRs, is one
// message even when it starts with an mbox "From " line, and reaches the
// callback as it is.
func TestWalkBareCRFile(t *testing.T) {
	dir := t.TempDir()
	raw := strings.ReplaceAll("From mac@example.org Tue Sep  1 00:00:00 2026\nFrom: Mac User <mac@example.org>\nSubject: from a Mac\n\nhttps://mac.example.com/x\n", "\n", "\r")
	path := filepath.Join(dir, "mac.eml")
	if err := os.WriteFile(path, []byte(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	got := walkAll(t, path)
	if len(got) != 1 || got[0].raw != raw {
		t.Fatalf("got %q", got)
	}
	f := Extract([]byte(got[0].raw), Config{})
	if f.Subject != "from a Mac" || f.From != "mac@example.org" || len(f.URLs) != 1 {
		t.Errorf("subject %q, from %q, urls %v", f.Subject, f.From, f.URLs)
	}
}

// A callback's error stops the walk and comes back; fs.SkipAll stops it quietly.
func TestWalkStops(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Walk(filepath.Join("testdata", "spam.mbox"), func(string, []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d messages", err, n)
	}
	n = 0
	err = Walk(filepath.Join("testdata", "spam.mbox"), func(string, []byte) error { n++; return fs.SkipAll })
	if err != nil || n != 1 {
		t.Errorf("err %v after %d messages", err, n)
	}
}

// No message is read past the size bound, in a file or in an mbox, and a long
// one reaches Extract cut there, which records it as over the limit.
func TestWalkBounded(t *testing.T) {
	max := DefaultLimits().MaxSize
	dir := t.TempDir()
	line := strings.Repeat("x", 1000) + "\n"
	body := strings.Repeat(line, int(max)/len(line)+100)
	big := filepath.Join(dir, "big.eml")
	os.WriteFile(big, []byte("Subject: big\n\n"+body), 0o644)
	mbox := filepath.Join(dir, "big.mbox")
	os.WriteFile(mbox, []byte("From x Tue Sep  1 00:00:00 2026\nSubject: big\n\n"+body+"\nFrom y Tue Sep  1 00:00:00 2026\nSubject: small\n\nsmall\n"), 0o644)
	for _, path := range []string{big, mbox} {
		var sizes []int
		err := Walk(path, func(name string, raw []byte) error {
			sizes = append(sizes, len(raw))
			if len(raw) > int(max) {
				if f := Extract(raw, Config{}); !hasDefect(f, "message of") || f.Subject != "big" {
					t.Errorf("%s: %q", name, f.Defects)
				}
			}
			return nil
		})
		if err != nil || sizes[0] != int(max)+1 {
			t.Errorf("%s: sizes %v, %v", path, sizes, err)
		}
		if path == mbox && (len(sizes) != 2 || sizes[1] != len("Subject: small\n\nsmall\n")) {
			t.Errorf("mbox: sizes %v", sizes)
		}
	}
}
