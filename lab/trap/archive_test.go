package trap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/lab/world"
)

func newTestArchive(t *testing.T, at time.Time) (*Archive, *world.Clock, *httptest.Server) {
	t.Helper()
	clock := world.FixedClock(at)
	a, err := NewArchive(newFakeSource(), clock, epoch, filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/spam-archive/", http.StripPrefix("/spam-archive", a.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return a, clock, srv
}

func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return do(t, http.MethodGet, url, header...)
}

func do(t *testing.T, method, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestMonths(t *testing.T) {
	a := &Archive{start: epoch}
	for _, tc := range []struct {
		at   time.Time
		want []string
	}{
		{epoch.Add(-time.Second), nil},
		{epoch, []string{"2026-09"}},
		{time.Date(2026, 9, 30, 23, 59, 59, 0, time.UTC), []string{"2026-09"}},
		{time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), []string{"2026-09", "2026-10"}},
		{time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC), []string{"2026-09", "2026-10", "2026-11", "2026-12", "2027-01"}},
	} {
		if got := a.Months(tc.at); !slices.Equal(got, tc.want) {
			t.Errorf("Months(%s) = %v, want %v", tc.at.Format(time.RFC3339), got, tc.want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "  0 "}, {512, "512 "}, {1000, "1.0K"}, {15 << 10, " 15K"}, {3 << 20, "3.0M"}, {200 << 20, "200M"}} {
		if got := humanSize(tc.n); got != tc.want {
			t.Errorf("humanSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestIndexListsPublishedMonths(t *testing.T) {
	_, clock, srv := newTestArchive(t, time.Date(2026, 10, 12, 8, 0, 0, 0, time.UTC))
	resp, body := get(t, srv.URL+"/spam-archive/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("index: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	page := string(body)
	for _, want := range []string{"<title>Index of /spam-archive</title>", `href="2026-09.7z"`, `href="2026-10.7z"`,
		`href="2026-09.json"`, `href="2026-10.json"`} {
		if !strings.Contains(page, want) {
			t.Errorf("index lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "2026-11") || strings.Contains(page, "2026-08") {
		t.Errorf("index lists a month outside the epoch..now range:\n%s", page)
	}

	// Once built, an archive's size shows.
	if strings.Contains(page, "K</td>") {
		t.Errorf("index shows a size before any build:\n%s", page)
	}
	get(t, srv.URL+"/spam-archive/2026-09.7z")
	if _, body = get(t, srv.URL+"/spam-archive/"); !regexp.MustCompile(`2026-09\.7z</a>.*[0-9]K</td>`).Match(body) {
		t.Errorf("index lacks the size of the built archive:\n%s", body)
	}

	clock.Set(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	_, body = get(t, srv.URL+"/spam-archive/")
	if !strings.Contains(string(body), `href="2026-11.7z"`) {
		t.Errorf("a new month is not listed once it starts:\n%s", body)
	}
}

func TestArchiveNotFound(t *testing.T) {
	_, _, srv := newTestArchive(t, time.Date(2026, 10, 12, 8, 0, 0, 0, time.UTC))
	for _, p := range []string{"2026-11.7z", "2026-08.7z", "2026-13.7z", "2026-9.7z", "x.7z", "2026-11.json", "2026/09/"} {
		if resp, _ := get(t, srv.URL+"/spam-archive/"+p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, resp.Status)
		}
	}
	if resp, _ := do(t, http.MethodPost, srv.URL+"/spam-archive/2026-09.7z"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", resp.Status)
	}
}

// unpack extracts a 7z archive with the real 7-Zip and returns its files by path.
func unpack(t *testing.T, archive []byte) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "a.7z")
	if err := os.WriteFile(p, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command("7z", "x", "-y", "-bd", "-o"+out, p)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("7z x: %v\n%s", err, b)
	}
	files := map[string][]byte{}
	err := filepath.WalkDir(out, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		b, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// wantFiles is the month's mail from the source, by archive path.
func wantFiles(from, to time.Time) map[string]Mail {
	want := map[string]Mail{}
	for _, m := range newFakeSource().Between(from, to) {
		want[m.Time.UTC().Format("2006/01/02")+"/"+m.Name] = m
	}
	return want
}

func TestArchiveHoldsTheMonthsMail(t *testing.T) {
	_, _, srv := newTestArchive(t, time.Date(2026, 10, 12, 8, 0, 0, 0, time.UTC))
	url := srv.URL + "/spam-archive/2026-09.7z"
	resp, body := get(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %s %s", resp.Status, body)
	}
	if cl := resp.Header.Get("Content-Length"); cl == "" || cl != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length %q, body %d bytes", cl, len(body))
	}
	if resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" {
		t.Errorf("no ETag/Last-Modified: %v", resp.Header)
	}
	if !bytes.HasPrefix(body, []byte("7z\xbc\xaf\x27\x1c")) {
		t.Fatalf("not a 7z file: % x", body[:min(len(body), 8)])
	}

	got := unpack(t, body)
	want := wantFiles(epoch, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC))
	if len(want) < 400 {
		t.Fatalf("fake source too small: %d", len(want))
	}
	if len(got) != len(want) {
		t.Errorf("archive has %d files, source %d", len(got), len(want))
	}
	for p, m := range want {
		if !bytes.Equal(got[p], m.Raw) {
			t.Errorf("%s: archive bytes differ from the source (%d vs %d bytes)", p, len(got[p]), len(m.Raw))
		}
	}
	for p := range got {
		if !strings.HasPrefix(p, "2026/09/") {
			t.Errorf("member %s outside 2026/09/", p)
		}
	}

	// HEAD: same length, no body.
	head, hbody := do(t, http.MethodHead, url)
	if head.StatusCode != http.StatusOK || len(hbody) != 0 || head.ContentLength != int64(len(body)) ||
		head.Header.Get("ETag") != resp.Header.Get("ETag") {
		t.Errorf("HEAD: %s, length %d, body %d, etag %q", head.Status, head.ContentLength, len(hbody), head.Header.Get("ETag"))
	}

	// The sidecar lists exactly the same members.
	sresp, sbody := get(t, srv.URL+"/spam-archive/2026-09.json")
	if sresp.StatusCode != http.StatusOK {
		t.Fatalf("sidecar: %s", sresp.Status)
	}
	var sc Sidecar
	if err := json.Unmarshal(sbody, &sc); err != nil {
		t.Fatal(err)
	}
	if sc.Count != len(want) || len(sc.Members) != len(want) || !sc.Complete || sc.ETag != resp.Header.Get("ETag") {
		t.Errorf("sidecar: count %d, members %d, complete %v, etag %s (archive %s)", sc.Count, len(sc.Members), sc.Complete,
			sc.ETag, resp.Header.Get("ETag"))
	}
	for _, m := range sc.Members {
		w, ok := want[m.Path]
		sum := sha256.Sum256(w.Raw)
		if !ok || m.Name != w.Name || m.Size != len(w.Raw) || m.SHA256 != hex.EncodeToString(sum[:]) || !m.Time.Equal(w.Time) {
			t.Errorf("sidecar member %+v does not match the source", m)
		}
	}
}

func TestCurrentMonthGrowsCompletedMonthDoesNot(t *testing.T) {
	a, clock, srv := newTestArchive(t, time.Date(2026, 10, 12, 8, 0, 0, 0, time.UTC))
	sepURL, octURL := srv.URL+"/spam-archive/2026-09.7z", srv.URL+"/spam-archive/2026-10.7z"
	sep1, sepBody1 := get(t, sepURL)
	oct1, octBody1 := get(t, octURL)
	octFiles1 := unpack(t, octBody1)

	clock.Advance(36 * time.Hour)
	sep2, sepBody2 := get(t, sepURL)
	oct2, octBody2 := get(t, octURL)
	octFiles2 := unpack(t, octBody2)

	if sep2.Header.Get("ETag") != sep1.Header.Get("ETag") || sep2.Header.Get("Last-Modified") != sep1.Header.Get("Last-Modified") ||
		!bytes.Equal(sepBody1, sepBody2) {
		t.Errorf("completed month changed: ETag %s -> %s", sep1.Header.Get("ETag"), sep2.Header.Get("ETag"))
	}
	if oct2.Header.Get("ETag") == oct1.Header.Get("ETag") {
		t.Errorf("current month kept ETag %s after new mail", oct1.Header.Get("ETag"))
	}
	if lm1, lm2 := oct1.Header.Get("Last-Modified"), oct2.Header.Get("Last-Modified"); lm1 == lm2 {
		t.Errorf("current month kept Last-Modified %s after new mail", lm1)
	}
	octStart := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	if want := wantFiles(octStart, time.Date(2026, 10, 12, 8, 0, 0, 0, time.UTC)); len(octFiles1) != len(want) {
		t.Errorf("October before: %d files, want %d", len(octFiles1), len(want))
	}
	want := wantFiles(octStart, clock.Now())
	if len(octFiles2) != len(want) || len(octFiles2) <= len(octFiles1) {
		t.Errorf("October after: %d files (before %d), want %d", len(octFiles2), len(octFiles1), len(want))
	}
	for p, b := range octFiles1 {
		if !bytes.Equal(octFiles2[p], b) {
			t.Errorf("%s changed or vanished as the month grew", p)
		}
	}

	// Conditional requests.
	for _, tc := range []struct {
		url, etag string
	}{{sepURL, sep2.Header.Get("ETag")}, {octURL, oct2.Header.Get("ETag")}} {
		if resp, body := get(t, tc.url, "If-None-Match", tc.etag); resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("If-None-Match %s: %s, %d bytes", tc.etag, resp.Status, len(body))
		}
	}
	if resp, _ := get(t, octURL, "If-None-Match", oct1.Header.Get("ETag")); resp.StatusCode != http.StatusOK {
		t.Errorf("stale If-None-Match: %s, want 200", resp.Status)
	}
	if resp, _ := get(t, sepURL, "If-Modified-Since", sep1.Header.Get("Last-Modified")); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-Modified-Since: %s, want 304", resp.Status)
	}

	// The cache keeps one archive per month: the old October is gone.
	cached, _ := filepath.Glob(filepath.Join(a.dir, "2026-10.*.7z"))
	if len(cached) != 1 {
		t.Errorf("cache holds %v for 2026-10, want one archive", cached)
	}

	// The month ends: its archive is final and says so.
	clock.Set(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC))
	_, body := get(t, srv.URL+"/spam-archive/2026-10.json")
	var sc Sidecar
	if err := json.Unmarshal(body, &sc); err != nil {
		t.Fatal(err)
	}
	if !sc.Complete || sc.Count != len(wantFiles(octStart, octStart.AddDate(0, 1, 0))) {
		t.Errorf("finished October: complete %v, count %d", sc.Complete, sc.Count)
	}
}

func TestArchiveCacheSurvivesRestart(t *testing.T) {
	at := time.Date(2026, 10, 3, 0, 0, 0, 0, time.UTC)
	a, _, srv := newTestArchive(t, at)
	r1, b1 := get(t, srv.URL+"/spam-archive/2026-09.7z")
	cached, _ := filepath.Glob(filepath.Join(a.dir, "2026-09.*.7z"))
	if len(cached) != 1 {
		t.Fatalf("cache: %v", cached)
	}
	fi1, _ := os.Stat(cached[0])

	again, err := NewArchive(newFakeSource(), world.FixedClock(at), epoch, a.dir)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(again.Handler())
	defer srv2.Close()
	r2, b2 := get(t, srv2.URL+"/2026-09.7z")
	fi2, _ := os.Stat(cached[0])
	if r2.Header.Get("ETag") != r1.Header.Get("ETag") || !bytes.Equal(b1, b2) || !fi2.ModTime().Equal(fi1.ModTime()) {
		t.Errorf("restarted archive rebuilt or changed a completed month")
	}

	// Built afresh elsewhere, the same content makes the same bytes.
	_, _, srv3 := newTestArchive(t, at)
	if _, b3 := get(t, srv3.URL+"/spam-archive/2026-09.7z"); !bytes.Equal(b1, b3) {
		t.Errorf("two builds of the same month differ")
	}
}

func TestNewArchiveNeeds7Zip(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := NewArchive(newFakeSource(), world.FixedClock(epoch), epoch, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "apt-get install p7zip-full") {
		t.Errorf("without 7z: %v", err)
	}
}
