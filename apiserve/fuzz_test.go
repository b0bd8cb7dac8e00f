package apiserve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/tip-project/tip/lookup"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/taxii"
)

// The bounds of the fuzzed server: small, so the fuzzer reaches them.
const (
	fuzzMaxValues = 50
	fuzzMaxBody   = 8 << 10
)

// fuzzEmptyTAXII is a TAXII source with nothing in it.
type fuzzEmptyTAXII struct{}

func (fuzzEmptyTAXII) Objects(context.Context, taxii.Query) ([]taxii.Entry, error) { return nil, nil }

// fuzzAPIRequest is the request net/http's server would hand the handler for
// the request line METHOD target, an Authorization and a Content-Type header
// (none when empty) and body, or false when the server would answer it
// itself (400, 431, or OPTIONS *) without calling the handler.
func fuzzAPIRequest(method, target, auth, ctype, body string) (*http.Request, bool) {
	if method == "" || target == "" || strings.ContainsAny(method+target, " \r\n") ||
		method == http.MethodOptions && target == "*" {
		return nil, false
	}
	var head strings.Builder
	head.WriteString(method + " " + target + " HTTP/1.1\r\nHost: tip.example\r\n")
	for _, h := range [][2]string{{"Authorization", auth}, {"Content-Type", ctype}} {
		if h[1] == "" {
			continue
		}
		if !httpguts.ValidHeaderFieldValue(h[1]) {
			return nil, false
		}
		head.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	if body != "" {
		head.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	head.WriteString("\r\n")
	if head.Len() > 16<<10 { // MaxHeaderBytes
		return nil, false
	}
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head.String() + body)))
	if err != nil {
		return nil, false
	}
	r.RemoteAddr = "198.51.100.7:40000"
	return r, true
}

// FuzzAPIRequest sends what any client could, a method, a request target,
// an Authorization header, a Content-Type and a body, to the API over the fake
// store (TAXII mounted, empty), and holds every answer to what the server
// documents: a status it gives, {"error": "..."} for every JSON error, the
// challenges of a 401, nothing behind a token without the scope, and on a
// lookup one result per value asked, in order.
func FuzzAPIRequest(f *testing.F) {
	store := newFakeStore()
	all := store.addToken("analyst", storage.ScopeAll)
	lk := store.addToken("resolver", storage.ScopeLookup)
	expired := store.addToken("old", storage.ScopeAll)
	store.setToken(expired, func(t *storage.APIToken) { t.Expires = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) })
	revoked := store.addToken("gone", storage.ScopeAll)
	store.setToken(revoked, func(t *storage.APIToken) { t.Revoked = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) })
	s, err := New(Config{MaxLookupValues: fuzzMaxValues, MaxBodyBytes: fuzzMaxBody, MISPCache: f.TempDir()}, store,
		Options{Lookuper: fakeLookuper{store}, TAXII: taxii.New(taxii.Config{Log: slog.New(slog.DiscardHandler)}, fuzzEmptyTAXII{}),
			Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	h := s.Handler()

	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	bAll, bLk := "Bearer "+all, "Bearer "+lk
	const js = "application/json"
	many := func(n int) (query, body string) {
		var q []string
		var vs []string
		for i := range n {
			v := fmt.Sprintf("host%d.evil.example", i)
			q = append(q, "q="+v)
			vs = append(vs, strconv.Quote(v))
		}
		return strings.Join(q, "&"), `{"values":[` + strings.Join(vs, ",") + `]}`
	}
	q10, b10 := many(10)
	qMax, bMax := many(fuzzMaxValues)
	qOver, bOver := many(fuzzMaxValues + 1)
	type seed struct{ method, target, auth, ctype, body string }
	seeds := []seed{
		// Lookups by GET: an address, a block, a domain, IPv6, URLs with an
		// IDN, several values, private space, nothing, junk.
		{"GET", "/v1/lookup?q=45.10.0.7", bLk, "", ""},
		{"GET", "/v1/lookup?q=45.10.0.0/24", bLk, "", ""},
		{"GET", "/v1/lookup?q=EVIL.example.", bAll, "", ""},
		{"GET", "/v1/lookup?q=2a0f:10:20::5", bLk, "", ""},
		{"GET", "/v1/lookup?q=http%3A%2F%2Fb%C3%BCcher.de%2Fx%3Fy%3D1", bLk, "", ""},
		{"GET", "/v1/lookup?q=http://xn--bcher-kva.de/x.exe&q=http://[2a0f:10::1]:8080/a", bLk, "", ""},
		{"GET", "/v1/lookup?q=EVIL.example.&q=10.1.2.3&q=45.10.0.7&q=sub.example.org&q=nonsense+value", bLk, "", ""},
		{"GET", "/v1/lookup?" + q10, bLk, "", ""},
		{"GET", "/v1/lookup?" + qMax, bLk, "", ""},
		{"GET", "/v1/lookup?" + qOver, bLk, "", ""},
		{"GET", "/v1/lookup", bLk, "", ""},
		{"GET", "/v1/lookup?q=", bLk, "", ""},
		{"GET", "/v1/lookup?q=evil.example&x=1", bLk, "", ""},
		{"GET", "/v1/lookup?Q=evil.example", bLk, "", ""},
		{"GET", "/v1/lookup?q=evil.example&q=evil.example", bLk, "", ""},
		{"GET", "/v1/lookup?q=%00", bLk, "", ""},
		{"GET", "/v1/lookup?q=evil%00.example", bLk, "", ""},
		{"GET", "/v1/lookup?q=%ff%fe%80", bLk, "", ""},
		{"GET", "/v1/lookup?q=%2525", bLk, "", ""},
		{"GET", "/v1/lookup?q=%zz&q=evil.example", bLk, "", ""},
		{"GET", "/v1/lookup?q=a%26q%3Db", bLk, "", ""},
		{"GET", "/v1/lookup?q=a;q=b", bLk, "", ""},
		{"GET", "/v1/lookup?q=+evil.example+", bLk, "", ""},
		{"GET", "/v1/lookup?q=" + strings.Repeat("a", 3000) + ".com", bLk, "", ""},
		{"GET", "/v1/lookup?q=%E2%93%94vil.example&q=%EF%BC%91.2.3.4", bLk, "", ""},
		{"GET", "/v1/lookup?q=http://evil.example/x.exe#frag", bLk, "", ""},
		{"GET", "http://tip.example/v1/lookup?q=evil.example", bLk, "", ""},
		{"HEAD", "/v1/lookup?q=evil.example", bLk, "", ""},
		// Lookups by POST: none, one, many, too many values; not JSON, not
		// the shape, too large; NUL bytes and bad UTF-8.
		{"POST", "/v1/lookup", bLk, js, `{"values":[]}`},
		{"POST", "/v1/lookup", bLk, js, `{"values":["evil.example"]}`},
		{"POST", "/v1/lookup", bLk, "application/json; charset=utf-8", `{"values": ["http://evil.example/x.exe", "nonsense value", "2a0f:10::/32"]}`},
		{"POST", "/v1/lookup", bLk, js, b10},
		{"POST", "/v1/lookup", bLk, js, bMax},
		{"POST", "/v1/lookup", bLk, js, bOver},
		{"POST", "/v1/lookup", bLk, js, `{"values":[`},
		{"POST", "/v1/lookup", bLk, js, `{"values":"evil.example"}`},
		{"POST", "/v1/lookup", bLk, js, `{"values":[1,null]}`},
		{"POST", "/v1/lookup", bLk, js, `{"values":null}`},
		{"POST", "/v1/lookup", bLk, js, `{}`},
		{"POST", "/v1/lookup", bLk, js, `[]`},
		{"POST", "/v1/lookup", bLk, js, `null`},
		{"POST", "/v1/lookup", bLk, js, ``},
		{"POST", "/v1/lookup", bLk, js, `{"values":["evil.example"]} {}`},
		{"POST", "/v1/lookup", bLk, js, `{"values":["evil.example"]}` + "\n\t "},
		{"POST", "/v1/lookup", bLk, js, `{"values":["evil.example"],"extra":1}`},
		{"POST", "/v1/lookup", bLk, js, `{"VALUES":["evil.example"]}`},
		{"POST", "/v1/lookup", bLk, js, `{"values":["a.example"],"values":["evil.example","45.10.0.7"]}`},
		{"POST", "/v1/lookup", bLk, js, `{"values":["` + strings.Repeat("x", fuzzMaxBody) + `"]}`},
		{"POST", "/v1/lookup", bLk, js, `{"values":["` + strings.Repeat("x", 3000) + `.com"]}`},
		// One value, then white space past the bound: 413, not "more than one
		// JSON value" (a bug this seed found).
		{"POST", "/v1/lookup", bLk, js, `{"values":["evil.example"]}` + strings.Repeat(" ", fuzzMaxBody)},
		{"POST", "/v1/lookup", bLk, js, `{"values":["evil.example"]}` + strings.Repeat(" ", fuzzMaxBody) + "x"},
		{"POST", "/v1/lookup", bLk, js, `{"values":["\u0000evil.example","evil.example\u0000"]}`},
		{"POST", "/v1/lookup", bLk, js, "{\"values\":[\"\x00\",\"\xff\xfe\",\"\\ud800\"]}"},
		{"POST", "/v1/lookup", bLk, js, "\xef\xbb\xbf{\"values\":[\"evil.example\"]}"},
		{"POST", "/v1/lookup", bLk, js, `{"values":[` + strings.Repeat(`[`, 2000) + `]}`},
		{"POST", "/v1/lookup", bLk, "text/plain", `{"values":["evil.example"]}`},
		{"POST", "/v1/lookup", bLk, "", `{"values":["evil.example"]}`},
		{"POST", "/v1/lookup", bLk, "application/json;;", `{"values":["evil.example"]}`},
		{"POST", "/v1/lookup", bLk, "application/x-www-form-urlencoded", `q=evil.example`},
		{"POST", "/v1/lookup?q=evil.example", bLk, js, `{"values":["45.10.0.7"]}`},
		// The ways to present a token, and those that are none.
		{"GET", "/v1/pdns?q=flux.example", bLk, "", ""},
		{"GET", "/v1/pdns?q=45.10.0.7&q=x", bLk, "", ""},
		{"GET", "/v1/pdns?q=not+a+name", bLk, "", ""},
		{"GET", "/v1/sources", basic("", all), "", ""},
		{"GET", "/v1/sources", basic(all, ""), "", ""},
		{"GET", "/v1/lookup?q=evil.example", basic("taxii-client", lk), "", ""},
		{"GET", "/v1/sources", "Bearer   " + all + "   ", "", ""},
		{"GET", "/v1/sources", "bearer " + all, "", ""},
		{"GET", "/v1/sources", "BEARER " + all, "", ""},
		{"GET", "/v1/sources", "Bearer\t" + all, "", ""},
		{"GET", "/v1/sources", "Bearer " + all + " extra", "", ""},
		{"GET", "/v1/sources", "Bearer", "", ""},
		{"GET", "/v1/sources", "Bearer ", "", ""},
		{"GET", "/v1/sources", "Bearer tipk_" + strings.Repeat("z", 43), "", ""},
		{"GET", "/v1/sources", "Token " + all, "", ""},
		{"GET", "/v1/sources", "Basic !!!", "", ""},
		{"GET", "/v1/sources", "Basic ", "", ""},
		{"GET", "/v1/sources", basic("", ""), "", ""},
		{"GET", "/v1/sources", basic("me", "secret"), "", ""},
		{"GET", "/v1/sources", "Bearer " + expired, "", ""},
		{"GET", "/v1/sources", "Bearer " + revoked, "", ""},
		{"GET", "/v1/sources", "", "", ""},
		{"GET", "/v1/sources", bLk, "", ""},
		{"GET", "/v1/export/plain", bLk, "", ""},
		{"GET", "/misp/manifest.json", bLk, "", ""},
		{"GET", "/taxii2/", bLk, "", ""},
		// Exports, the MISP feed, TAXII and the description.
		{"GET", "/v1/export/plain", bAll, "", ""},
		{"GET", "/v1/export/csv?type=domain&min_score=0.5&include_allowlisted=true", bAll, "", ""},
		{"GET", "/v1/export/stix?type=ipv4,url&type=domain&type=domain", bAll, "", ""},
		{"GET", "/v1/export/json?min_score=2", bAll, "", ""},
		{"GET", "/v1/export/json?min_score=NaN", bAll, "", ""},
		{"GET", "/v1/export/json?min_score=-0&min_score=0.9", bAll, "", ""},
		{"GET", "/v1/export/json?include_allowlisted=maybe", bAll, "", ""},
		{"GET", "/v1/export/json?type=nope", bAll, "", ""},
		{"GET", "/v1/export/json?bogus=1", bAll, "", ""},
		{"GET", "/v1/export/nope", bAll, "", ""},
		{"GET", "/v1/export/", bAll, "", ""},
		{"GET", "/v1/export/plain/extra", bAll, "", ""},
		{"GET", "/v1/export/pl%61in", bAll, "", ""},
		{"HEAD", "/v1/export/rpz", bAll, "", ""},
		{"GET", "/misp/manifest.json", bAll, "", ""},
		{"GET", "/misp/hashes.csv", bAll, "", ""},
		{"GET", "/misp/00000000-0000-0000-0000-000000000000.json", bAll, "", ""},
		{"GET", "/misp/..%2f..%2fetc%2fpasswd", bAll, "", ""},
		{"GET", "/misp/manifest.json%00.csv", bAll, "", ""},
		{"GET", "/taxii2/", bAll, "", ""},
		{"GET", "/taxii2/tip/collections/?limit=0", bAll, "", ""},
		{"POST", "/taxii2/tip/", bAll, js, `{}`},
		{"GET", "/v1/openapi.json", "", "", ""},
		{"HEAD", "/v1/openapi.json", "Bearer nonsense", "", ""},
		// Paths and methods nothing answers, or ServeMux redirects.
		{"GET", "/taxii2", bAll, "", ""},
		{"GET", "/v1//lookup?q=evil.example", bLk, "", ""},
		{"GET", "/v1/./lookup?q=evil.example", bLk, "", ""},
		{"GET", "/v1/../v1/lookup?q=evil.example", bLk, "", ""},
		{"GET", "//v1/lookup?q=evil.example", bLk, "", ""},
		{"GET", "/v1/look%75p?q=evil.example", bLk, "", ""},
		{"GET", "/v1/lookup%2F..?q=evil.example", bLk, "", ""},
		{"GET", "/V1/LOOKUP?q=evil.example", bLk, "", ""},
		{"GET", "/v1/lookup/?q=evil.example", bLk, "", ""},
		{"GET", "/", "", "", ""},
		{"GET", "*", "", "", ""},
		{"DELETE", "/v1/lookup", bLk, "", ""},
		{"PUT", "/v1/export/plain", bAll, js, `{}`},
		{"OPTIONS", "/v1/lookup", "", "", ""},
		{"CONNECT", "/v1/lookup", bLk, "", ""},
		{"CONNECT", "tip.example:443", "", "", ""},
		{"TRACE", "/", "", "", ""},
		{"get", "/v1/lookup?q=evil.example", bLk, "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.auth, s.ctype, s.body)
	}
	f.Fuzz(func(t *testing.T, method, target, auth, ctype, body string) {
		r, ok := fuzzAPIRequest(method, target, auth, ctype, body)
		if !ok {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fuzzCheckAPIAnswer(t, r, w, auth, body, all, lk, len(target)+len(auth)+len(ctype)+len(body))
	})
}

// fuzzCheckAPIAnswer holds an answer to what the server documents.
func fuzzCheckAPIAnswer(t *testing.T, r *http.Request, w *httptest.ResponseRecorder, auth, reqBody, all, lk string, in int) {
	t.Helper()
	req := fmt.Sprintf("%s %q (Authorization %q, body %q)", r.Method, r.RequestURI, auth, fuzzTruncate(reqBody, 200))
	hd := w.Header()
	ctype, _, _ := mime.ParseMediaType(hd.Get("Content-Type"))
	redirect := w.Code == http.StatusTemporaryRedirect // ServeMux's, to the canonical path
	// ServeMux's own answers, bare: 400 to a request for *, 404 to a CONNECT
	// to no path (authority form).
	muxOwn := r.RequestURI == "*" || r.Method == http.MethodConnect && !strings.HasPrefix(r.URL.Path, "/")
	switch w.Code {
	case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
	case http.StatusTemporaryRedirect:
		if hd.Get("Location") == "" {
			t.Fatalf("%s: a redirect to nowhere", req)
		}
	default:
		// No 304, 206, 412, 416 (no conditional or range header is sent), no
		// 429 (no rate), no 503 or 500 (the fake store does not fail).
		t.Fatalf("%s: status %d, which the server does not give here: %s", req, w.Code, fuzzTruncate(w.Body.String(), 500))
	}
	if !redirect && !muxOwn && hd.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("%s: %d without X-Content-Type-Options", req, w.Code)
	}
	// The fake data are small: what is more echoes the request.
	if max := len(OpenAPI) + 64<<10 + 64*in; w.Body.Len() > max {
		t.Fatalf("%s: %d, a body of %d bytes (bound %d)", req, w.Code, w.Body.Len(), max)
	}
	if w.Code >= 400 && !muxOwn {
		switch ctype {
		case "application/json":
			var e map[string]any
			dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
			if err := dec.Decode(&e); err != nil || dec.More() || len(e) != 1 {
				t.Fatalf("%s: %d, not {\"error\": ...} (%v): %q", req, w.Code, err, w.Body)
			}
			if msg, _ := e["error"].(string); msg == "" {
				t.Fatalf("%s: %d, no error message: %q", req, w.Code, w.Body)
			}
			for _, k := range []string{"ETag", "Last-Modified", "Content-Disposition"} {
				if hd.Get(k) != "" {
					t.Fatalf("%s: %d with %s %q", req, w.Code, k, hd.Get(k))
				}
			}
		case "application/taxii+json": // TAXII's own, behind the token
			var e struct{ Title string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Title == "" || !strings.HasPrefix(r.URL.Path, "/taxii2/") {
				t.Fatalf("%s: %d, not TAXII's error message (%v): %q", req, w.Code, err, w.Body)
			}
		default:
			t.Fatalf("%s: %d with Content-Type %q: %q", req, w.Code, hd.Get("Content-Type"), w.Body)
		}
	}
	if w.Code == http.StatusRequestEntityTooLarge && len(reqBody) <= fuzzMaxBody {
		t.Fatalf("%s: 413 for a body of %d bytes (bound %d)", req, len(reqBody), fuzzMaxBody)
	}
	if w.Code == http.StatusBadRequest && strings.Contains(w.Body.String(), "more than one JSON value") && !fuzzMoreThanOneValue(reqBody) {
		t.Fatalf("%s: refused as more than one JSON value (%d bytes, bound %d): %s", req, len(reqBody), fuzzMaxBody, w.Body)
	}
	switch w.Code {
	case http.StatusUnauthorized:
		ch := hd.Values("WWW-Authenticate")
		if len(ch) != 2 || !strings.HasPrefix(ch[0], `Bearer realm="tip"`) || !strings.HasPrefix(ch[1], `Basic realm="tip"`) {
			t.Fatalf("%s: 401 with challenges %q", req, ch)
		}
	case http.StatusForbidden:
		if !strings.Contains(hd.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Fatalf("%s: 403 with challenge %q", req, hd.Get("WWW-Authenticate"))
		}
	case http.StatusMethodNotAllowed:
		if allow := strings.Split(hd.Get("Allow"), ", "); allow[0] == "" || slices.Contains(allow, r.Method) {
			t.Fatalf("%s: 405 with Allow %q", req, hd.Get("Allow"))
		}
	case http.StatusOK:
		fuzzCheckAuthorized(t, req, r, all, lk)
		if format, ok := strings.CutPrefix(r.URL.Path, "/v1/export/"); ok {
			info, known := formats[format]
			if !known || hd.Get("Content-Type") != info.ContentType || hd.Get("ETag") == "" || hd.Get("Last-Modified") == "" ||
				hd.Get("Content-Disposition") != fmt.Sprintf(`attachment; filename="tip-%s.%s"`, format, info.Ext) {
				t.Fatalf("%s: an export of %q with headers %v", req, format, hd)
			}
		}
		if r.URL.Path == "/v1/lookup" && (r.Method == http.MethodGet || r.Method == http.MethodPost) {
			fuzzCheckLookup(t, req, r, w, reqBody)
		}
	}
}

// fuzzCheckAuthorized: a 200 comes from a route, and from one that needs a token
// only when the request presents one holding its scope. A secret a request
// presents is in its Authorization header, or in what Basic encodes.
func fuzzCheckAuthorized(t *testing.T, req string, r *http.Request, all, lk string) {
	t.Helper()
	p := r.URL.Path
	var need storage.APIScope
	switch {
	case p == "/v1/openapi.json":
		return
	case p == "/v1/lookup", p == "/v1/pdns":
		need = storage.ScopeLookup
	case p == "/v1/sources":
		need = storage.ScopeSources
	case strings.HasPrefix(p, "/v1/export/"), strings.HasPrefix(p, "/misp/"), strings.HasPrefix(p, "/taxii2/"):
		need = storage.ScopeExport
	default:
		t.Fatalf("%s: 200 from no route (path %q)", req, p)
	}
	presented := r.Header.Get("Authorization")
	if user, pass, ok := r.BasicAuth(); ok {
		presented += "\x00" + user + "\x00" + pass
	}
	switch {
	case strings.Contains(presented, all):
	case need == storage.ScopeLookup && strings.Contains(presented, lk):
	default:
		t.Fatalf("%s: 200 without a token holding scope %s", req, need)
	}
}

// fuzzCheckLookup: GET's answer is the one value's document; POST's is
// {"results": [...]}, one result a value asked, in order: the value's
// document, or the value and why it has none.
func fuzzCheckLookup(t *testing.T, req string, r *http.Request, w *httptest.ResponseRecorder, reqBody string) {
	t.Helper()
	var values []string
	if r.Method == http.MethodGet {
		values = r.URL.Query()["q"]
	} else {
		var in struct{ Values []string }
		if err := json.Unmarshal([]byte(reqBody), &in); err != nil {
			t.Fatalf("%s: 200 for a body that is no {\"values\": [...]}: %v", req, err)
		}
		values = in.Values
	}
	if len(values) == 0 || len(values) > fuzzMaxValues {
		t.Fatalf("%s: 200 for %d values (1 to %d)", req, len(values), fuzzMaxValues)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: a lookup answered as %q", req, ct)
	}
	var results []map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	if r.Method == http.MethodGet {
		// GET looks one value up and answers its document itself.
		var doc map[string]json.RawMessage
		if err := dec.Decode(&doc); err != nil || dec.More() || len(values) != 1 {
			t.Fatalf("%s: 200 for %d values, or no document (%v): %s", req, len(values), err, fuzzTruncate(w.Body.String(), 500))
		}
		if _, isErr := doc["error"]; isErr {
			t.Fatalf("%s: GET answered 200 with an error: %s", req, fuzzTruncate(w.Body.String(), 500))
		}
		results = []map[string]json.RawMessage{doc}
	} else {
		var resp map[string][]map[string]json.RawMessage
		if err := dec.Decode(&resp); err != nil || dec.More() || len(resp) != 1 {
			t.Fatalf("%s: not {\"results\": [...]} (%v): %s", req, err, fuzzTruncate(w.Body.String(), 500))
		}
		var ok bool
		if results, ok = resp["results"]; !ok || len(results) != len(values) {
			t.Fatalf("%s: %d results for %d values: %s", req, len(results), len(values), fuzzTruncate(w.Body.String(), 500))
		}
	}
	for i, res := range results {
		v := values[i]
		q, perr := lookup.Parse(v)
		if _, isErr := res["error"]; isErr {
			var e struct {
				Query string `json:"query"`
				Error string `json:"error"`
			}
			if err := fuzzDecodeFields(res, []string{"error", "query"}, &e); err != nil || e.Error == "" {
				t.Fatalf("%s: result %d is no {\"query\", \"error\"} (%v): %s", req, i, err, fuzzFields(res))
			}
			if e.Query != fuzzViaJSON(v) {
				t.Fatalf("%s: result %d is for %q, value %d is %q", req, i, e.Query, i, v)
			}
			if perr == nil {
				t.Fatalf("%s: result %d: %q is a valid %s, answered with error %q", req, i, v, q.Indicator.Type, e.Error)
			}
			continue
		}
		var doc struct {
			Query struct {
				Type  string `json:"type"`
				Value string `json:"value"`
			} `json:"query"`
			Score       *float64          `json:"score"`
			Listings    []json.RawMessage `json:"listings"`
			Allowlisted []json.RawMessage `json:"allowlisted"`
			Overrides   []json.RawMessage `json:"overrides"`
		}
		if err := fuzzDecodeFields(res, []string{"allowlisted", "listings", "overrides", "query", "score"}, &doc); err != nil ||
			doc.Score == nil || doc.Listings == nil || doc.Allowlisted == nil || doc.Overrides == nil {
			t.Fatalf("%s: result %d is no document (%v): %s", req, i, err, fuzzFields(res))
		}
		if *doc.Score < 0 || *doc.Score > 1 {
			t.Fatalf("%s: result %d scores %v", req, i, *doc.Score)
		}
		if perr != nil {
			t.Fatalf("%s: result %d is a document for %q, which Parse refuses: %v", req, i, v, perr)
		}
		if doc.Query.Type != string(q.Indicator.Type) || doc.Query.Value != fuzzViaJSON(q.Indicator.Value) {
			t.Fatalf("%s: result %d is for %s %q, value %d is %q (%s %q)", req, i, doc.Query.Type, doc.Query.Value, i, v,
				q.Indicator.Type, q.Indicator.Value)
		}
	}
}

// fuzzDecodeFields decodes an object that has exactly the keys given (sorted) into v.
func fuzzDecodeFields(obj map[string]json.RawMessage, keys []string, v any) error {
	if got := slices.Sorted(maps.Keys(obj)); !slices.Equal(got, keys) {
		return fmt.Errorf("keys %q, want %q", got, keys)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// fuzzFields shows an object's fuzzFields as JSON.
func fuzzFields(obj map[string]json.RawMessage) string {
	b, _ := json.Marshal(obj)
	return fuzzTruncate(string(b), 500)
}

// fuzzMoreThanOneValue says whether a body that starts with a JSON value has
// anything but white space after it.
func fuzzMoreThanOneValue(body string) bool {
	dec := json.NewDecoder(strings.NewReader(body))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return false
	}
	return strings.TrimLeft(body[dec.InputOffset():], " \t\r\n") != ""
}

// fuzzViaJSON is s as a JSON answer gives it back: invalid UTF-8 replaced.
func fuzzViaJSON(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

func fuzzTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
