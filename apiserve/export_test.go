package apiserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/storage"
)

// Every export format is served, with its media type and file name.
func TestEveryExportFormatIsServed(t *testing.T) {
	f := newFakeStore()
	s := testServer(t, Config{MinScore: 0.5}, f)
	tok := f.addToken("x", storage.ScopeExport)
	for _, format := range export.Formats {
		info, ok := formats[format]
		if !ok {
			t.Errorf("export format %s has no media type in apiserve.formats", format)
			continue
		}
		w := do(s.Handler(), "GET", "/v1/export/"+format, tok)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != info.ContentType ||
			w.Header().Get("Content-Disposition") != `attachment; filename="tip-`+format+`.`+info.Ext+`"` {
			t.Errorf("%s: %d %q %q", format, w.Code, w.Header().Get("Content-Type"), w.Header().Get("Content-Disposition"))
		}
		// The bytes are export's own, stamped with the version's time.
		var want strings.Builder
		ew, _ := export.NewWith(format, &want, f.version.Modified, export.STIXOptions{MinScore: 0.5, HalfLife: storage.ScoreHalfLife})
		for _, r := range f.rows {
			ew.Write(r)
		}
		ew.Close()
		if w.Body.String() != want.String() {
			t.Errorf("%s: the body is not export.NewWith's:\n%s\nwant:\n%s", format, w.Body, want.String())
		}
	}
	for name := range formats {
		if !slices.Contains(export.Formats, name) {
			t.Errorf("apiserve.formats has %s, which export.Formats does not", name)
		}
	}
}

// TestExportParameters: type, min_score and include_allowlisted reach the query.
func TestExportParameters(t *testing.T) {
	f := newFakeStore()
	s := testServer(t, Config{MinScore: 0.5}, f)
	tok := f.addToken("x", storage.ScopeExport)
	for _, c := range []struct {
		query, want string
	}{
		{"", "evil.example\n45.10.0.7\nhttp://evil.example/x.exe\n"},
		{"?min_score=0.7", "evil.example\n45.10.0.7\n"},
		{"?type=ipv4,url", "45.10.0.7\nhttp://evil.example/x.exe\n"},
		{"?type=domain&type=ipv4&min_score=0.85", "evil.example\n"},
	} {
		if w := do(s.Handler(), "GET", "/v1/export/plain"+c.query, tok); w.Code != http.StatusOK || w.Body.String() != c.want {
			t.Errorf("%q: %d %q, want %q", c.query, w.Code, w.Body, c.want)
		}
	}
	p, err := parseExportParams(map[string][]string{"type": {"url,ipv4", "ipv4"}, "include_allowlisted": {"true"}}, 0.5)
	if err != nil || !slices.Equal(p.Types, []string{"ipv4", "url"}) || !p.Allowlisted || p.MinScore != 0.5 {
		t.Errorf("parseExportParams = %+v, %v", p, err)
	}
}

// TestExportETagAnd304: the ETag and Last-Modified follow the exports'
// version; If-None-Match and If-Modified-Since get 304 while it stands.
func TestExportETagAnd304(t *testing.T) {
	f := newFakeStore()
	s := testServer(t, Config{}, f)
	tok := f.addToken("x", storage.ScopeExport)
	h := s.Handler()
	first := do(h, "GET", "/v1/export/csv", tok)
	tag, lm := first.Header().Get("ETag"), first.Header().Get("Last-Modified")
	if first.Code != http.StatusOK || !strings.HasPrefix(tag, `"`) || lm != "Fri, 27 Nov 2026 10:00:00 GMT" {
		t.Fatalf("first: %d ETag %q Last-Modified %q", first.Code, tag, lm)
	}
	exports := f.exports
	for _, c := range []struct {
		name   string
		header []string
		want   int
	}{
		{"same ETag", []string{"If-None-Match", tag}, http.StatusNotModified},
		{"weak form", []string{"If-None-Match", "W/" + tag}, http.StatusNotModified},
		{"among others", []string{"If-None-Match", `"other", ` + tag}, http.StatusNotModified},
		{"any", []string{"If-None-Match", "*"}, http.StatusNotModified},
		{"other ETag", []string{"If-None-Match", `"other"`}, http.StatusOK},
		{"same time", []string{"If-Modified-Since", lm}, http.StatusNotModified},
		{"later", []string{"If-Modified-Since", "Sat, 28 Nov 2026 10:00:00 GMT"}, http.StatusNotModified},
		{"earlier", []string{"If-Modified-Since", "Fri, 27 Nov 2026 09:59:59 GMT"}, http.StatusOK},
		{"If-None-Match wins", []string{"If-None-Match", `"other"`, "If-Modified-Since", lm}, http.StatusOK},
		{"a bad date", []string{"If-Modified-Since", "yesterday"}, http.StatusOK},
	} {
		w := do(h, "GET", "/v1/export/csv", tok, c.header...)
		if w.Code != c.want {
			t.Errorf("%s: %d, want %d", c.name, w.Code, c.want)
		}
		if w.Code == http.StatusNotModified && (w.Body.Len() > 0 || w.Header().Get("ETag") != tag) {
			t.Errorf("%s: 304 with a body or without the ETag", c.name)
		}
	}
	if f.exports != exports+4 {
		t.Errorf("%d exports for 4 answers of 200: a 304 must not query", f.exports-exports)
	}
	for _, other := range []string{"/v1/export/plain", "/v1/export/csv?min_score=0.7", "/v1/export/csv?type=ipv4", "/v1/export/csv?include_allowlisted=true"} {
		if w := do(h, "GET", other, tok); w.Header().Get("ETag") == tag {
			t.Errorf("%s has the ETag of /v1/export/csv", other)
		}
	}
	if w := do(h, "GET", "/v1/export/csv?min_score=0", tok); w.Header().Get("ETag") != tag {
		t.Error("naming the default min_score changes the ETag")
	}

	// A change moves the version: the old validators no longer match.
	f.change()
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := do(h, "GET", "/v1/export/csv", tok, "If-None-Match", tag)
	if w.Code != http.StatusOK || w.Header().Get("ETag") == tag || w.Header().Get("Last-Modified") != "Fri, 27 Nov 2026 10:00:01 GMT" {
		t.Errorf("after a change: %d ETag %q Last-Modified %q", w.Code, w.Header().Get("ETag"), w.Header().Get("Last-Modified"))
	}
	if w := do(h, "GET", "/v1/export/csv", tok, "If-Modified-Since", lm); w.Code != http.StatusOK {
		t.Errorf("If-Modified-Since the old version: %d", w.Code)
	}

	// HEAD: the head alone, without a query.
	exports = f.exports
	if w := do(h, "HEAD", "/v1/export/csv", tok); w.Code != http.StatusOK || w.Body.Len() > 0 || w.Header().Get("ETag") == "" || f.exports != exports {
		t.Errorf("HEAD: %d, %d bytes, %d queries", w.Code, w.Body.Len(), f.exports-exports)
	}
}

// TestExportFailingMidStreamIsBrokenOff: a failure before anything is sent
// is a 503; after, the stream is broken off, never ended as if complete.
func TestExportFailingMidStreamIsBrokenOff(t *testing.T) {
	f := newFakeStore()
	for i := range 5000 {
		f.rows = append(f.rows, export.Row{Type: "ipv4", Value: fmt.Sprintf("45.11.%d.%d", i/256, i%256), Score: 0.9, Sources: []string{"feed-a"}})
	}
	f.failRows = 4000 // past a buffer's worth of lines
	s := testServer(t, Config{}, f)
	tok := f.addToken("x", storage.ScopeExport)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/export/plain", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a stream that failed after %d bytes: %d, read error %v; want it broken off", len(body), resp.StatusCode, err)
	}

	f.mu.Lock()
	f.failRows = 1
	f.mu.Unlock()
	w := do(s.Handler(), "GET", "/v1/export/plain", tok)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("failing before the first byte: %d", w.Code)
	}
	assertJSONError(t, w)
	if w.Header().Get("ETag") != "" || w.Header().Get("Content-Disposition") != "" {
		t.Error("an error keeps the export's headers")
	}
}

func TestNotModifiedAfterTheSecond(t *testing.T) {
	// Last-Modified has whole seconds: a version within the second of the
	// client's date counts as seen only when it is not after it.
	mod := time.Date(2026, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("If-Modified-Since", mod.Truncate(time.Second).Format(http.TimeFormat))
	if !notModified(r, `"x"`, mod) {
		t.Error("the same second is modified")
	}
	if notModified(r, `"x"`, mod.Add(time.Second)) {
		t.Error("the next second is not modified")
	}
}
