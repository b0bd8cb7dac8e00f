package taxii

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/tip-project/tip/storage"
)

// Paging in the fuzz target: small pages, so that the fake collection's 21
// versions take several, and a limit over the largest is cut to it.
const (
	fuzzPageSize    = 5
	fuzzMaxPageSize = 8
)

// fuzzRequest is the request net/http's server would hand the handler for
// the request line GET target and the Accept header lines in accept (one a
// line of it; none when empty), or false when the server would answer it
// itself, 400 or 431, without calling the handler.
func fuzzRequest(target, accept string) (*http.Request, bool) {
	if target == "" || strings.ContainsAny(target, " \r\n") {
		return nil, false
	}
	var head strings.Builder
	head.WriteString("GET " + target + " HTTP/1.1\r\nHost: tip.example\r\n")
	if accept != "" {
		for _, v := range strings.Split(accept, "\n") {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, false
			}
			head.WriteString("Accept: " + v + "\r\n")
		}
	}
	head.WriteString("\r\n")
	if head.Len() > 16<<10 { // the API server's MaxHeaderBytes
		return nil, false
	}
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head.String())))
	if err != nil {
		return nil, false
	}
	r.RemoteAddr = "192.0.2.7:40000"
	return r, true
}

// FuzzTAXIIRequest sends what a TAXII client could, path, query and Accept,
// to the server over the fake collection, and holds every answer to TAXII 2.1:
// its media type, a status the server documents, error messages with a title,
// pages no longer than the limit with more set exactly when next is, dated by
// headers in order, and a next that leads on, never back.
func FuzzTAXIIRequest(f *testing.F) {
	src := fakeCollection()
	h := New(Config{PageSize: fuzzPageSize, MaxPageSize: fuzzMaxPageSize, Log: slog.New(slog.DiscardHandler)}, src)
	coll := "/taxii2/tip/collections/" + CollectionID(storage.TAXIIIndicators) + "/"
	own := "/taxii2/tip/collections/" + CollectionID(storage.TAXIIOwnSources) + "/"
	id0 := "indicator--00000000-0000-4000-8000-000000000000"
	cursor := encodeNext(src.entries[3])
	forged := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
	accepts := []string{"", MediaTAXII, "application/taxii+json", "*/*", "application/json, */*;q=0.1", "application/json",
		"application/taxii+json;version=2.0", "application/taxii+json;q=0", "text/html\napplication/taxii+json", ";;;", "application/taxii+json;version=\"2.1\""}
	seeds := []struct{ path, query string }{
		// The resources, with every filter.
		{"/taxii2/", ""}, {"/taxii2/tip/", ""}, {"/taxii2/tip/collections/", ""}, {coll, ""}, {own, ""},
		{coll + "objects/", ""}, {coll + "manifest/", ""}, {coll + "objects/" + id0 + "/", ""}, {coll + "objects/" + id0 + "/versions/", ""},
		{coll + "objects/", "limit=3"}, {coll + "objects/", "limit=3&next=" + cursor}, {coll + "manifest/", "match[version]=all&limit=4"},
		{coll + "objects/", "added_after=2026-09-01T00:01:00Z&match[type]=indicator&match[version]=first,last"},
		{coll + "objects/", "match[id]=" + id0 + "&match[version]=2026-09-01T00:00:00.000Z&match[spec_version]=2.1"},
		{coll + "objects/", "match[spec_version]=2.0"}, {coll + "objects/" + id0 + "/versions/", "limit=1&next=" + cursor},
		{coll + "manifest/", "match%5Btype%5D=marking-definition&match%5Bversion%5D=all"},
		// Garbage cursors.
		{coll + "objects/", "next=bogus"}, {coll + "objects/", "next=" + forged(`{"a":"2026-09-01T00:00:00Z","i":"x"}`)},
		{coll + "objects/", "next=" + forged(`{"i":"x"}`)}, {coll + "objects/", "next=" + forged(`{"a":"0001-01-01T00:00:00Z","i":"x"}`)},
		{coll + "objects/", "next=" + forged(`{"a":"9999-12-31T23:59:59.999999999Z","i":"\u0000","v":"0000-01-01T00:00:00Z"}`)},
		{coll + "objects/", "next=" + forged(`[]`)}, {coll + "objects/", "next=" + cursor + "=="}, {coll + "objects/", "next=%00"},
		// Limits.
		{coll + "objects/", "limit=0"}, {coll + "objects/", "limit=-1"}, {coll + "objects/", "limit=99999999999999999999"},
		{coll + "objects/", "limit=9223372036854775807"}, {coll + "objects/", "limit=+2"}, {coll + "objects/", "limit=1e3"},
		{coll + "objects/", "limit=2&limit=100"}, {coll + "manifest/", "limit=100"}, {coll + "objects/", "limit=%202"},
		// added_after in odd forms.
		{coll + "objects/", "added_after=yesterday"}, {coll + "objects/", "added_after=2026-09-01"}, {coll + "objects/", "added_after=2026-09-01T00:00:00"},
		{coll + "objects/", "added_after=2026-09-01T00:00:00%2B14:00"}, {coll + "objects/", "added_after=2026-09-01T00:00:00+14:00"},
		{coll + "objects/", "added_after=2026-09-01t00:00:00.123456789123z"}, {coll + "objects/", "added_after=0000-01-01T00:00:00Z"},
		{coll + "objects/", "added_after=9999-12-31T23:59:59Z"}, {coll + "objects/", "added_after=1757030400"}, {coll + "objects/", "added_after=2026-02-30T00:00:00Z"},
		// Repeated and malformed match parameters.
		{coll + "objects/", "match[type]=indicator&match[type]=marking-definition&match[type]="}, {coll + "objects/", "match[id]=,,,"},
		{coll + "objects/", "match[version]=last&match[version]=first&match[version]=all"}, {coll + "objects/", "match[version]=latest"},
		{coll + "objects/", "match[spec_version]=2.0,2.1"}, {coll + "objects/", "match[=1&match]=2&match[id=3"}, {coll + "objects/", "a=1;b=2"},
		{coll + "objects/", "%zz=1&limit=%zz"}, {coll + "objects/" + id0 + "/", "match[id]=other&match[type]=x"},
		// Paths that are no resource.
		{"/taxii2/../taxii2/tip/", ""}, {"/taxii2/tip/collections/../../", ""}, {"/taxii2//tip//collections//", ""},
		{"//taxii2/tip/", ""}, {"/taxii2/tip/collections/%2e%2e/", ""}, {"/taxii2/tip%2Fcollections/", ""}, {"/taxii2/other/", ""},
		{coll + "objects/x/y/z/", ""}, {coll + "objects/" + id0 + "/versions/extra/", ""}, {"/taxii2/tip/status/1/", ""},
		{"/tip/collections/", ""}, {"/", ""}, {"*", ""}, {"http://tip.example/taxii2/tip/", ""}, {"/taxii2/tip/collections/nope/objects/", ""},
		{coll + "objects/indicator--00000000-0000-4000-8000-999999999999/", ""}, {coll + "objects/indicator--00000000-0000-4000-8000-999999999999/versions/", "limit=1"},
		{own + "objects/" + id0 + "/", "match[version]=all"}, {coll + "objects/" + id0 + "/versions/", "limit=1"},
		{"/taxii2/%00/", ""}, {"/taxii2/tip/collections/" + strings.Repeat("a", 4000) + "/", ""},
	}
	for i, s := range seeds {
		f.Add(s.path, s.query, accepts[i%len(accepts)])
	}
	f.Fuzz(func(t *testing.T, path, query, accept string) {
		target := path
		if query != "" {
			target += "?" + query
		}
		r, ok := fuzzRequest(target, accept)
		if !ok {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		body := fuzzCheckTAXIIAnswer(t, target, r, w, len(target)+len(accept))
		if w.Code != http.StatusOK {
			return
		}
		// A page: as long as the limit at most, more exactly when next is,
		// its date headers in order; its next leads on.
		if _, ok := body["more"]; !ok {
			return
		}
		var page struct {
			More     *bool             `json:"more"`
			Next     *string           `json:"next"`
			Objects  []json.RawMessage `json:"objects"`
			Versions []string          `json:"versions"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || page.More == nil {
			t.Fatalf("GET %s: a page that is no page: %v %s", target, err, w.Body)
		}
		next := ""
		if page.Next != nil {
			next = *page.Next
			if next == "" {
				t.Fatalf("GET %s: an empty next given: %s", target, w.Body)
			}
		}
		limit := fuzzPageSize
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				t.Fatalf("GET %s: 200 with limit %q", target, v)
			}
			limit = min(n, fuzzMaxPageSize)
		}
		n := len(page.Objects) + len(page.Versions)
		if n > limit {
			t.Fatalf("GET %s: %d items, the limit is %d", target, n, limit)
		}
		if *page.More != (next != "") {
			t.Fatalf("GET %s: more %v, next %q", target, *page.More, next)
		}
		if *page.More && n != limit {
			t.Fatalf("GET %s: more after a short page of %d, limit %d", target, n, limit)
		}
		first, last := w.Header().Get("X-TAXII-Date-Added-First"), w.Header().Get("X-TAXII-Date-Added-Last")
		if (first != "") != (n > 0) || (last != "") != (n > 0) {
			t.Fatalf("GET %s: %d items, X-TAXII-Date-Added-First %q, -Last %q", target, n, first, last)
		}
		var firstT, lastT time.Time
		if n > 0 {
			firstT, lastT = fuzzParseDateAdded(t, target, first), fuzzParseDateAdded(t, target, last)
			if firstT.After(lastT) {
				t.Fatalf("GET %s: X-TAXII-Date-Added-First %s after -Last %s", target, first, last)
			}
		}
		// A manifest's records are in the order of date added, within the headers.
		var m struct {
			Objects []struct {
				DateAdded string `json:"date_added"`
			} `json:"objects"`
		}
		if json.Unmarshal(w.Body.Bytes(), &m) == nil {
			prev := firstT
			for _, rec := range m.Objects {
				if rec.DateAdded == "" {
					continue // an object, not a manifest record
				}
				d := fuzzParseDateAdded(t, target, rec.DateAdded)
				if d.Before(prev) || d.After(lastT) {
					t.Fatalf("GET %s: date_added %s out of order (first %s, last %s)", target, rec.DateAdded, first, last)
				}
				prev = d
			}
		}
		if next == "" {
			return
		}
		p := r.URL.Query()
		p.Set("next", next)
		u := *r.URL
		u.RawQuery = p.Encode()
		r2, ok := fuzzRequest(u.RequestURI(), accept)
		if !ok {
			t.Fatalf("GET %s: next %q makes no request", target, next)
		}
		w2 := httptest.NewRecorder()
		h.ServeHTTP(w2, r2)
		fuzzCheckTAXIIAnswer(t, u.RequestURI(), r2, w2, len(u.RequestURI())+len(accept))
		if w2.Code != http.StatusOK {
			t.Fatalf("GET %s: its next page %s: %d %s", target, u.RequestURI(), w2.Code, w2.Body)
		}
		if f := w2.Header().Get("X-TAXII-Date-Added-First"); f != "" && fuzzParseDateAdded(t, u.RequestURI(), f).Before(lastT) {
			t.Fatalf("GET %s: the next page starts at %s, before this one's last %s", target, f, last)
		}
	})
}

// fuzzCheckTAXIIAnswer holds any answer to what every TAXII answer is, and
// returns its body, a JSON object.
func fuzzCheckTAXIIAnswer(t *testing.T, target string, r *http.Request, w *httptest.ResponseRecorder, in int) map[string]any {
	t.Helper()
	switch w.Code {
	case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotAcceptable:
	default:
		t.Fatalf("GET %s (Accept %q): status %d, which the server does not answer: %s", target, r.Header.Values("Accept"), w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != MediaTAXII {
		t.Fatalf("GET %s: %d with Content-Type %q", target, w.Code, ct)
	}
	if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(w.Body.Len()) {
		t.Fatalf("GET %s: Content-Length %q, body of %d bytes", target, cl, w.Body.Len())
	}
	// The fake collection is small: what is more echoes the request.
	if max := 64<<10 + 16*in; w.Body.Len() > max {
		t.Fatalf("GET %s: a body of %d bytes (bound %d)", target, w.Body.Len(), max)
	}
	var body map[string]any
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	if err := dec.Decode(&body); err != nil || body == nil || dec.More() {
		t.Fatalf("GET %s: %d, not a JSON object (%v): %q", target, w.Code, err, w.Body)
	}
	if w.Code >= 400 {
		title, _ := body["title"].(string)
		if title == "" || body["http_status"] != strconv.Itoa(w.Code) {
			t.Fatalf("GET %s: %d, not TAXII's error message: %s", target, w.Code, w.Body)
		}
		if _, ok := body["description"].(string); !ok {
			t.Fatalf("GET %s: %d, an error message without description: %s", target, w.Code, w.Body)
		}
		if w.Code == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "" {
			t.Fatalf("GET %s: 405 without Allow", target)
		}
	}
	return body
}

func fuzzParseDateAdded(t *testing.T, target, s string) time.Time {
	t.Helper()
	d, err := time.Parse("2006-01-02T15:04:05.000000Z", s)
	if err != nil {
		t.Fatalf("GET %s: date added %q: %v", target, s, err)
	}
	return d
}
