package apiserve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/storage"
)

// contract is the API's description (openapi.json), loaded and checked by
// kin-openapi, which holds requests and responses to it.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

var registerDecoders sync.Once

func loadContract(t testing.TB) *contract {
	t.Helper()
	registerDecoders.Do(func() {
		// The media types kin-openapi has no decoder of: a JSON value a
		// line (decoded as the array of them), and a zone file (text).
		openapi3filter.RegisterBodyDecoder("application/x-ndjson", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			out := []any{}
			sc := bufio.NewScanner(body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var v any
				if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
					return nil, fmt.Errorf("line %d: %w", len(out)+1, err)
				}
				out = append(out, v)
			}
			return out, sc.Err()
		})
		openapi3filter.RegisterBodyDecoder("text/dns", openapi3filter.PlainBodyDecoder)
	})
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %s: want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{doc: doc, router: router}
}

// check holds one exchange to the description: the response's status must be
// documented, its headers and body must match their schemas, and a request the
// server accepted (2xx, 304) must be one the description allows. It returns
// the operation's ID.
func (c *contract) check(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) (string, error) {
	req = req.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := c.router.FindRoute(req)
	var re *routers.RouteError
	switch {
	case errors.As(err, &re) && re.Reason == routers.ErrMethodNotAllowed.Error() && status == http.StatusMethodNotAllowed:
		return "", c.checkComponent("MethodNotAllowed", header, body)
	case errors.As(err, &re) && re.Reason == routers.ErrPathNotFound.Error() && status == http.StatusNotFound:
		return "", c.checkComponent("NotFound", header, body)
	case err != nil:
		return "", fmt.Errorf("%s %s: %d: no operation in openapi.json: %v", req.Method, req.URL.Path, status, err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if status < 400 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			return route.Operation.OperationID, fmt.Errorf("%s %s: the request the server accepted breaks openapi.json: %v", req.Method, req.URL, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return route.Operation.OperationID, fmt.Errorf("%s %s: %d: the response breaks openapi.json: %v", req.Method, req.URL, status, err)
	}
	return route.Operation.OperationID, nil
}

// checkComponent holds an answer outside every operation (an unknown path
// or method) to the description's response of that name.
func (c *contract) checkComponent(name string, header http.Header, body []byte) error {
	resp := c.doc.Components.Responses[name].Value
	for h, ref := range resp.Headers {
		if ref.Value.Required && header.Get(h) == "" {
			return fmt.Errorf("%s: no %s header", name, h)
		}
	}
	mt := resp.Content.Get(header.Get("Content-Type"))
	if mt == nil {
		return fmt.Errorf("%s: media type %q is not described", name, header.Get("Content-Type"))
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("%s: the body breaks openapi.json: %v", name, err)
	}
	return nil
}

// exchange sends req to h and checks the exchange.
func (c *contract) exchange(t *testing.T, h http.Handler, req *http.Request) (*httptest.ResponseRecorder, string) {
	t.Helper()
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	op, err := c.check(req, reqBody, w.Code, w.Header(), w.Body.Bytes())
	if err != nil {
		t.Error(err)
	}
	return w, op
}

// assertAnswered fails unless every operation of the description was
// answered with success.
func (c *contract) assertAnswered(t *testing.T, answered map[string]bool) {
	t.Helper()
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if !answered[op.OperationID] {
				t.Errorf("%s %s (%s) was never answered with success", method, path, op.OperationID)
			}
		}
	}
}

// TestOpenAPIDescribesEveryRoute: each route the server serves is a path of
// the description and the other way round, and the export formats are
// export.Formats.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	c := loadContract(t)
	f := newFakeStore()
	s, err := New(Config{MISPCache: t.TempDir()}, f, Options{Lookuper: fakeLookuper{f}, TAXII: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var paths []string
	for p := range c.doc.Paths.Map() {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	served := slices.Sorted(slices.Values(s.patterns))
	if !slices.Equal(paths, served) {
		t.Errorf("openapi.json describes %q; the server serves %q", paths, served)
	}
	param := c.doc.Paths.Value("/v1/export/{format}").Get.Parameters.GetByInAndName("path", "format")
	var enum []string
	for _, v := range param.Schema.Value.Enum {
		enum = append(enum, v.(string))
	}
	if !slices.Equal(enum, export.Formats) {
		t.Errorf("openapi.json's export formats %q, export.Formats %q", enum, export.Formats)
	}
}

// TestHandlersMatchOpenAPI: every route's answers (success and errors) on a
// fake store match the description.
func TestHandlersMatchOpenAPI(t *testing.T) {
	c := loadContract(t)
	f := newFakeStore()
	s, err := New(Config{RatePerToken: 1, Burst: 1, MISPCache: t.TempDir()}, f, Options{Lookuper: fakeLookuper{f}, TAXII: fakeTAXII})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	tokens := map[string]string{}
	for _, sc := range append(slices.Clone(storage.APIScopes), storage.ScopeAll) {
		tokens[string(sc)] = f.addToken(string(sc), sc)
	}
	tokenIndex := 0
	fresh := func() string { // a token of its own for each request: no 429 but where wanted
		tokenIndex++
		return f.addToken(fmt.Sprintf("t%d", tokenIndex), storage.ScopeAll)
	}
	get := func(target, token string, header ...string) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return r
	}
	post := func(body, ctype string) *http.Request {
		r := httptest.NewRequest("POST", "/v1/lookup", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+fresh())
		r.Header.Set("Content-Type", ctype)
		return r
	}
	manifest, _ := c.exchange(t, h, get("/misp/manifest.json", fresh()))
	var events map[string]any
	if err := json.Unmarshal(manifest.Body.Bytes(), &events); err != nil || len(events) == 0 {
		t.Fatalf("manifest: %v %s", err, manifest.Body)
	}
	var event string
	for id := range events {
		event = id
	}
	reqs := []*http.Request{
		get("/v1/lookup?q=evil.example", fresh()),
		get("/v1/lookup?q=10.0.0.1", fresh()),
		get("/v1/lookup?q=evil.example&q=45.10.0.7", fresh()),
		get("/v1/pdns?q=flux.example", fresh()),
		get("/v1/pdns?q=45.10.0.7", fresh()),
		get("/v1/pdns?q=nothing.example", fresh()),
		get("/v1/pdns?q=not+a+name", fresh()),
		post(`{"values": ["evil.example", "not a value"]}`, "application/json"),
		post(`{"values": []}`, "application/json"),
		post(`{"values": ["x"]}`, "text/plain"),
		post(`{"values": ["`+strings.Repeat("x", 2<<20)+`"]}`, "application/json"),
		get("/v1/lookup", fresh()),
		get("/v1/sources", fresh()),
		get("/v1/sources", tokens["lookup"]),
		get("/v1/sources", ""),
		get("/v1/sources", "tipk_"+strings.Repeat("0", 43)),
		get("/v1/export/nope", fresh()),
		get("/v1/export/plain?min_score=x", fresh()),
		get("/misp/hashes.csv", fresh()),
		get("/misp/"+event+".json", fresh()),
		get("/misp/00000000-0000-0000-0000-000000000000.json", fresh()),
		get("/misp/manifest.json", fresh(), "If-None-Match", manifest.Header().Get("ETag")),
		get("/v1/openapi.json", ""),
		get("/taxii2/", fresh()),
		get("/nowhere", fresh()),
	}
	for _, format := range export.Formats {
		reqs = append(reqs, get("/v1/export/"+format+"?min_score=0.5&type=ipv4,domain&type=url", fresh()))
	}
	answered := map[string]bool{} // the operations answered with success
	for _, r := range reqs {
		if w, op := c.exchange(t, h, r); w.Code < 300 {
			answered[op] = true
		}
	}
	c.assertAnswered(t, answered)
	// Past the rate: 429 with Retry-After.
	tok := fresh()
	c.exchange(t, h, get("/v1/sources", tok))
	if w, _ := c.exchange(t, h, get("/v1/sources", tok)); w.Code != http.StatusTooManyRequests {
		t.Errorf("second request at a rate of 1: %d", w.Code)
	}
	// Wrong methods.
	del := get("/v1/sources", fresh())
	del.Method = "DELETE"
	c.exchange(t, h, del)
}

// fakeTAXII answers TAXII's discovery as a TAXII 2.1 server does.
var fakeTAXII = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/taxii2/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/taxii+json;version=2.1")
	w.Write([]byte(`{"title": "TIP", "api_roots": ["/taxii2/tip/"]}`))
})

// TestOpenAPICheckRejectsDrift: the check is no rubber stamp. Answers that
// drifted from the description, as a changed handler would give them, fail.
func TestOpenAPICheckRejectsDrift(t *testing.T) {
	c := loadContract(t)
	f := newFakeStore()
	s := testServer(t, Config{}, f)
	tok := f.addToken("x", storage.ScopeAll)
	real := func(target string) (*http.Request, *httptest.ResponseRecorder) {
		r := httptest.NewRequest("GET", target, nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if _, err := c.check(r, nil, w.Code, w.Header(), w.Body.Bytes()); err != nil {
			t.Fatalf("the real answer fails: %v", err)
		}
		return r, w
	}
	lookupBody := []byte(`{"values": ["evil.example", "10.0.0.1"]}`)
	realPOST := func(target string) (*http.Request, *httptest.ResponseRecorder) {
		r := httptest.NewRequest("POST", target, bytes.NewReader(lookupBody))
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if _, err := c.check(r, lookupBody, w.Code, w.Header(), w.Body.Bytes()); err != nil {
			t.Fatalf("the real answer fails: %v", err)
		}
		return r, w
	}
	mutateJSON := func(body []byte, edit func(map[string]any)) []byte {
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		edit(v)
		b, _ := json.Marshal(v)
		return b
	}
	lookupReq, lookupResp := realPOST("/v1/lookup")
	docReq, docResp := real("/v1/lookup?q=evil.example")
	sourcesReq, sourcesResp := real("/v1/sources")
	exportReq, exportResp := real("/v1/export/json")
	stixReq, stixResp := real("/v1/export/stix")
	mispReq, mispResp := real("/misp/manifest.json")
	results := func(v map[string]any) []any { return v["results"].([]any) }
	source := func(v map[string]any) map[string]any { return v["sources"].([]any)[0].(map[string]any) }

	for _, c2 := range []struct {
		name   string
		req    *http.Request
		from   *httptest.ResponseRecorder // whose headers the answer has; nil: a JSON error's
		status int
		header func(http.Header)
		body   []byte
	}{
		{"a document without its score", lookupReq, lookupResp, 200, nil, mutateJSON(lookupResp.Body.Bytes(), func(v map[string]any) {
			delete(results(v)[0].(map[string]any), "score")
		})},
		{"a score as text", lookupReq, lookupResp, 200, nil, mutateJSON(lookupResp.Body.Bytes(), func(v map[string]any) {
			results(v)[0].(map[string]any)["score"] = "0.9"
		})},
		{"a listing of an unknown match", lookupReq, lookupResp, 200, nil, mutateJSON(lookupResp.Body.Bytes(), func(v map[string]any) {
			results(v)[0].(map[string]any)["listings"].([]any)[0].(map[string]any)["match"] = "fuzzy"
		})},
		{"an inline error without its query", lookupReq, lookupResp, 200, nil, mutateJSON(lookupResp.Body.Bytes(), func(v map[string]any) {
			delete(results(v)[1].(map[string]any), "query")
		})},
		{"GET's document without its listings", docReq, docResp, 200, nil, mutateJSON(docResp.Body.Bytes(), func(v map[string]any) {
			delete(v, "listings")
		})},
		{"GET's document wrapped in results", docReq, docResp, 200, nil, []byte(`{"results": [` + docResp.Body.String() + `]}`)},
		{"results renamed", lookupReq, lookupResp, 200, nil, mutateJSON(lookupResp.Body.Bytes(), func(v map[string]any) {
			v["documents"] = v["results"]
			delete(v, "results")
		})},
		{"a source with an unknown health", sourcesReq, sourcesResp, 200, nil, mutateJSON(sourcesResp.Body.Bytes(), func(v map[string]any) {
			source(v)["health"] = "sick"
		})},
		{"a source with a field the description lacks", sourcesReq, sourcesResp, 200, nil, mutateJSON(sourcesResp.Body.Bytes(), func(v map[string]any) {
			source(v)["colour"] = "red"
		})},
		{"a source whose last_run is a number", sourcesReq, sourcesResp, 200, nil, mutateJSON(sourcesResp.Body.Bytes(), func(v map[string]any) {
			source(v)["last_run"] = 5
		})},
		{"an export row without sources", exportReq, exportResp, 200, nil, []byte(`{"type":"ipv4","value":"45.10.0.7","score":0.8}` + "\n")},
		{"a STIX bundle of another type", stixReq, stixResp, 200, nil, bytes.Replace(stixResp.Body.Bytes(), []byte(`"type":"bundle"`), []byte(`"type":"envelope"`), 1)},
		{"an export without its ETag", exportReq, exportResp, 200, func(h http.Header) { h.Del("ETag") }, exportResp.Body.Bytes()},
		{"a weak ETag", exportReq, exportResp, 200, func(h http.Header) { h.Set("ETag", "W/"+h.Get("ETag")) }, exportResp.Body.Bytes()},
		{"an export in an undescribed media type", exportReq, exportResp, 200, func(h http.Header) { h.Set("Content-Type", "application/xml") }, exportResp.Body.Bytes()},
		{"a MISP manifest keyed by names", mispReq, mispResp, 200, nil, []byte(`{"feed-a": {"info": "x", "date": "2026-01-01", "timestamp": "1", "Orgc": {"name": "TIP", "uuid": "x"}, "Tag": []}}`)},
		{"an error as message", sourcesReq, nil, 503, nil, []byte(`{"message": "down"}`)},
		{"a 401 without its challenges", sourcesReq, nil, 401, nil, []byte(`{"error": "unknown token"}`)},
		{"a 429 without Retry-After", sourcesReq, nil, 429, nil, []byte(`{"error": "slow down"}`)},
		{"an undescribed status", sourcesReq, nil, 418, nil, []byte(`{"error": "teapot"}`)},
		{"a 405 without Allow", httptest.NewRequest("DELETE", "/v1/sources", nil), nil, 405, nil, []byte(`{"error": "no"}`)},
		{"a 404 in plain text", httptest.NewRequest("GET", "/nowhere", nil), nil, 404, func(h http.Header) { h.Set("Content-Type", "text/plain") }, []byte("404 page not found\n")},
	} {
		h := http.Header{"Content-Type": {"application/json"}}
		if c2.from != nil {
			h = c2.from.Header().Clone()
		}
		if c2.header != nil {
			c2.header(h)
		}
		var reqBody []byte
		if c2.req.Method == "POST" {
			reqBody = lookupBody
		}
		if _, err := c.check(c2.req, reqBody, c2.status, h, c2.body); err == nil {
			t.Errorf("%s: passed the check", c2.name)
		}
	}
}
