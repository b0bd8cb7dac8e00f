package spamarchive

import (
	"archive/zip"
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParseIndex(f *testing.F) {
	f.Add(`<a href="2026-09.7z">x</a><a href="2026.7z">y</a><a href="../">p</a>`)
	f.Add(`<a href="https://x.org/a/2020-01.zip">`)
	f.Add(`<a href=2020-02.tar.gz><a href="?C=N;O=D">`)
	base, _ := url.Parse("https://example.org/spam/")
	f.Fuzz(func(t *testing.T, page string) {
		got, err := ParseIndex(strings.NewReader(page), base)
		if err != nil {
			return
		}
		for i, a := range got {
			u, err := url.Parse(a.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.HasSuffix(a.URL, a.Name) {
				t.Fatalf("bad entry %+v", a)
			}
			if i > 0 && got[i-1].Period > a.Period {
				t.Fatalf("not sorted: %+v", got)
			}
		}
	})
}

// FuzzEach: whatever bytes an archive holds, Each returns an error or members,
// never panics, and a member's read honours its limit.
func FuzzEach(f *testing.F) {
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("2026/09/01/1.txt")
	w.Write([]byte("Subject: x\r\n\r\nbody\r\n"))
	zw.Close()
	f.Add(zb.Bytes())
	f.Add([]byte("7z\xbc\xaf\x27\x1c\x00\x04garbage"))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0})
	if b, err := os.ReadFile(filepath.Join("testdata", "small.7z")); err == nil {
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "fuzz.bin")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		n := 0
		_ = Each(p, func(m Member) error {
			if n++; n > 1000 {
				return ErrStop
			}
			b, _, err := m.Read(4096)
			if err == nil && len(b) > 4096 {
				t.Fatalf("read %d bytes past a 4096 limit", len(b))
			}
			if strings.HasPrefix(m.Name, "/") || strings.Contains("/"+m.Name+"/", "/../") {
				t.Fatalf("unclean name %q", m.Name)
			}
			return nil
		})
	})
}
