package apiserve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tip-project/tip/storage"
)

// TestLookupAnswersEachValueInOrder: GET gives one value's document, POST
// one result a value, a document or an inline error; a body over the bound
// is too large whatever it holds.
func TestLookupAnswersEachValueInOrder(t *testing.T) {
	f := newFakeStore()
	s := testServer(t, Config{MaxLookupValues: 3, MaxBodyBytes: 2048}, f)
	tok := f.addToken("resolver", storage.ScopeLookup)
	type result struct {
		Query any
		Score float64
		Error string
	}
	decode := func(w *httptest.ResponseRecorder) []result {
		var resp struct{ Results []result }
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("%d %s: %v", w.Code, w.Body, err)
		}
		return resp.Results
	}
	// GET: one value, its document as `tip lookup --json` prints it.
	w := do(s.Handler(), "GET", "/v1/lookup?q=EVIL.example.", tok)
	var doc result
	if err := json.Unmarshal(w.Body.Bytes(), &doc); w.Code != http.StatusOK || err != nil {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	if q, _ := doc.Query.(map[string]any); q["value"] != "evil.example" || doc.Score != 0.9 {
		t.Errorf("GET: %+v, want evil.example normalised, score 0.9", doc)
	}
	for target, want := range map[string]string{
		"/v1/lookup?q=10.1.2.3":                 "private",
		"/v1/lookup?q=45.10.0.7&q=evil.example": "POST",
		"/v1/lookup?q=45.10.0.7&x=1":            "unknown parameter",
	} {
		if w := do(s.Handler(), "GET", target, tok); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), want) {
			t.Errorf("GET %s: %d %s; want 400 saying %q", target, w.Code, w.Body, want)
		} else {
			assertJSONError(t, w)
		}
	}

	post := func(body, ctype string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/v1/lookup", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		return w
	}
	// POST: many values, one result each in order, a document or an inline error.
	if w := post(`{"values": ["EVIL.example.", "10.1.2.3", "45.10.0.7"]}`, "application/json; charset=utf-8"); w.Code != http.StatusOK {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	} else if rs := decode(w); len(rs) != 3 {
		t.Errorf("POST: %+v", rs)
	} else {
		if q, _ := rs[0].Query.(map[string]any); q["value"] != "evil.example" || rs[0].Score != 0.9 {
			t.Errorf("first: %+v, want evil.example normalised, score 0.9", rs[0])
		}
		if rs[1].Query != "10.1.2.3" || !strings.Contains(rs[1].Error, "private") {
			t.Errorf("second: %+v, want an inline error about private space", rs[1])
		}
		if q, _ := rs[2].Query.(map[string]any); q["type"] != "ipv4" || rs[2].Score != 0.8 {
			t.Errorf("third: %+v", rs[2])
		}
	}
	if w := post(`{"values": ["http://evil.example/x.exe", "nonsense value"]}`, "application/json; charset=utf-8"); w.Code != http.StatusOK {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	} else if rs := decode(w); len(rs) != 2 || rs[0].Score != 0.6 || rs[1].Error == "" {
		t.Errorf("POST: %+v", rs)
	}
	for _, c := range []struct {
		body, ctype string
		want        int
	}{
		{`{"values": ["a.example", "b.example", "c.example", "d.example"]}`, "application/json", http.StatusBadRequest},
		{`{"values": []}`, "application/json", http.StatusBadRequest},
		{`{"values": ["a.example"], "extra": 1}`, "application/json", http.StatusBadRequest},
		{`{"values": ["a.example"]} {}`, "application/json", http.StatusBadRequest},
		{`values=a.example`, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{fmt.Sprintf(`{"values": [%q]}`, strings.Repeat("a", 4096)), "application/json", http.StatusRequestEntityTooLarge},
		{`{"values": ["a.example"]}` + strings.Repeat(" ", 4096), "application/json", http.StatusRequestEntityTooLarge},
	} {
		w := post(c.body, c.ctype)
		if w.Code != c.want {
			t.Errorf("%.40s (%s): %d, want %d: %s", c.body, c.ctype, w.Code, c.want, w.Body)
		}
		assertJSONError(t, w)
	}
}

// TestPassiveDNS: /v1/pdns answers a domain, a name server or an address with
// its records (A, AAAA and NS), one COF object a line, the value normalised;
// anything else is a 400.
func TestPassiveDNS(t *testing.T) {
	f := newFakeStore()
	s := testServer(t, Config{}, f)
	tok := f.addToken("resolver", storage.ScopeLookup)
	for target, want := range map[string][]string{ // rrname rrtype of each record
		"/v1/pdns?q=FLUX.example.":    {"flux.example A", "flux.example AAAA", "flux.example NS"},
		"/v1/pdns?q=45.10.0.7":        {"flux.example A"},
		"/v1/pdns?q=::ffff:45.10.0.7": {"flux.example A"},
		"/v1/pdns?q=ns1.flux.example": {"flux.example NS", "ns1.flux.example A"},
		"/v1/pdns?q=45.10.0.53":       {"ns1.flux.example A"},
		"/v1/pdns?q=quiet.example":    nil,
	} {
		w := do(s.Handler(), "GET", target, tok)
		lines := strings.Split(strings.TrimSpace(w.Body.String()), "\n")
		if lines[0] == "" {
			lines = nil
		}
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/x-ndjson" || len(lines) != len(want) {
			t.Errorf("%s: %d %q, %d records; want %d", target, w.Code, w.Header().Get("Content-Type"), len(lines), len(want))
			continue
		}
		for i, l := range lines {
			var r storage.PDNSRecord
			if err := json.Unmarshal([]byte(l), &r); err != nil || r.RRName+" "+r.RRType != want[i] || r.Count < 1 {
				t.Errorf("%s: record %s (%v), want %s", target, l, err, want[i])
			}
		}
	}
	for _, target := range []string{"/v1/pdns", "/v1/pdns?q=a.example&q=b.example", "/v1/pdns?q=not+a+name", "/v1/pdns?q=a.example&x=1"} {
		if w := do(s.Handler(), "GET", target, tok); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", target, w.Code)
		} else {
			assertJSONError(t, w)
		}
	}
}
