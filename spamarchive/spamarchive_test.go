package spamarchive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/spam"
	"github.com/tip-project/tip/lab/trap"
	"github.com/tip-project/tip/lab/world"
)

func download(t *testing.T, u, dst string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
}

// The lab serves the untroubled.org layout with real 7z archives: the index parses
// and every member of the month comes out with the bytes the sidecar lists.
func TestLabArchiveRoundTrip(t *testing.T) {
	w := world.NewWorld(1)
	clock := world.FixedClock(w.Start.Add(30 * time.Hour))
	a, err := trap.NewArchive(lab.MailSource(spam.NewGenerator(w, spam.Options{PerDay: 300})), clock, w.Start, filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Skipf("no 7z here: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/spam-archive/", http.StripPrefix("/spam-archive", a.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/spam-archive/")
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(srv.URL + "/spam-archive/")
	list, err := ParseIndex(resp.Body, base)
	resp.Body.Close()
	if err != nil || len(list) != 1 || list[0].Name != "2026-09.7z" || list[0].Period != "2026-09" || list[0].Format != SevenZip ||
		list[0].URL != srv.URL+"/spam-archive/2026-09.7z" {
		t.Fatalf("index: %+v, %v", list, err)
	}
	file := filepath.Join(t.TempDir(), "2026-09.7z")
	download(t, list[0].URL, file)
	side, err := a.Sidecar("2026-09", clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, m := range side.Members {
		want[m.Path] = m.SHA256
	}
	got := map[string]string{}
	var order []string
	err = Each(file, func(m Member) error {
		data, trunc, err := m.Read(1 << 20)
		if err != nil || trunc || int64(len(data)) != m.Size {
			t.Fatalf("%s: %d bytes of %d, truncated %v, %v", m.Name, len(data), m.Size, trunc, err)
		}
		sum := sha256.Sum256(data)
		got[m.Name] = hex.EncodeToString(sum[:])
		order = append(order, m.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(want) < 100 {
		t.Fatalf("%d members read, the sidecar lists %d", len(got), len(want))
	}
	for p, sum := range want {
		if got[p] != sum {
			t.Fatalf("%s: sha256 %s, sidecar %s", p, got[p], sum)
		}
	}
	// Skipping members (not reading them) and stopping early both work: the resume
	// path of an ingest that already stored the first half.
	half := order[len(order)/2]
	n := 0
	err = Each(file, func(m Member) error {
		if m.Name < half {
			return nil
		}
		data, _, err := m.Read(1 << 20)
		if err != nil {
			return err
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != want[m.Name] {
			t.Fatalf("%s read after skipping differs", m.Name)
		}
		if n++; n == 10 {
			return ErrStop
		}
		return nil
	})
	if err != nil || n != 10 {
		t.Fatalf("skip and stop: %d read, %v", n, err)
	}
}

func TestZipAndTarGzMembersWithHostileNames(t *testing.T) {
	mails := map[string]string{"2026/09/01/1.txt": "Subject: a\r\n\r\nx\r\n", "../../etc/passwd": "Subject: b\r\n\r\ny\r\n"}
	dir := t.TempDir()

	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for _, name := range []string{"2026/09/01/1.txt", "../../etc/passwd"} {
		f, _ := zw.Create(name)
		f.Write([]byte(mails[name]))
	}
	zw.Close()
	zipPath := filepath.Join(dir, "a.zip")
	os.WriteFile(zipPath, zb.Bytes(), 0o644)

	var tb bytes.Buffer
	gz := gzip.NewWriter(&tb)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "2026/09/", Typeflag: tar.TypeDir, Mode: 0o755})
	for _, name := range []string{"2026/09/01/1.txt", "../../etc/passwd"} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(mails[name]))})
		tw.Write([]byte(mails[name]))
	}
	tw.Close()
	gz.Close()
	tgzPath := filepath.Join(dir, "a.tar.gz")
	os.WriteFile(tgzPath, tb.Bytes(), 0o644)

	for _, p := range []string{zipPath, tgzPath} {
		var names []string
		err := Each(p, func(m Member) error {
			data, trunc, err := m.Read(8)
			if err != nil || !trunc || len(data) != 8 {
				t.Errorf("%s %s: %q truncated %v, %v", p, m.Name, data, trunc, err)
			}
			names = append(names, m.Name)
			return nil
		})
		slices.Sort(names)
		if err != nil || !slices.Equal(names, []string{"2026/09/01/1.txt", "etc/passwd"}) {
			t.Errorf("%s: %q, %v", filepath.Base(p), names, err)
		}
	}
	junk := filepath.Join(dir, "junk.7z")
	os.WriteFile(junk, []byte("<html>not found</html>"), 0o644)
	if err := Each(junk, func(Member) error { return nil }); err == nil || !strings.Contains(err.Error(), "not a 7z") {
		t.Errorf("junk: %v", err)
	}
}

func TestParseIndexQuirks(t *testing.T) {
	page := `<html><body><table>
<tr><td><a href="?C=N;O=D">Name</a></td></tr>
<tr><td><a href="../">Parent Directory</a></td></tr>
<tr><td><a href="2019.7z">2019.7z</a></td><td>2020-01-01 00:00</td></tr>
<tr><td><a href="2020.7z">2020.7z</a></td></tr>
<tr><td><a href="2020-12.7z">2020-12.7z</a></td></tr>
<tr><td><a href="2020-11.7z">2020-11.7z</a></td></tr>
<tr><td><a href="2020-11.7z">duplicate link</a></td></tr>
<tr><td><a href="2020-11.json">sidecar</a></td></tr>
<tr><td><a HREF='/other/2021-01.tar.gz'>moved</a></td></tr>
<tr><td><a href="javascript:alert(1)//2021-02.7z">x</a></td></tr>
<tr><td><a href="2021-13.7z">bad month</a></td></tr>
<tr><td><a href="2021-03.tgz">tgz</a><img src="x.gif"/></td></tr>
</table>`
	base, _ := url.Parse("https://www.untroubled.org/spam/")
	got, err := ParseIndex(strings.NewReader(page), base)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range got {
		names = append(names, a.Period+" "+a.URL)
	}
	want := []string{
		"2019 https://www.untroubled.org/spam/2019.7z", // no month of 2019 is listed
		"2020-11 https://www.untroubled.org/spam/2020-11.7z",
		"2020-12 https://www.untroubled.org/spam/2020-12.7z",
		"2021-01 https://www.untroubled.org/other/2021-01.tar.gz",
		"2021-03 https://www.untroubled.org/spam/2021-03.tgz",
	}
	if !slices.Equal(names, want) {
		b, _ := json.MarshalIndent(got, "", " ")
		t.Errorf("got %s\nwant %q", b, want)
	}
}
