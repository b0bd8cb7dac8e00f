package apiserve

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/storage"
)

// TestAuthBearerAndBasic: a token is accepted as a bearer token and as HTTP
// Basic's password (any user) or user name; everything else gets a 401 with
// both challenges and a JSON error.
func TestAuthBearerAndBasic(t *testing.T) {
	f := newFakeStore()
	s := testServer(t, Config{}, f)
	h := s.Handler()
	tok := f.addToken("siem", storage.ScopeSources)

	for _, c := range []struct {
		name    string
		header  string
		want    int
		invalid bool // a token was sent, and refused: error="invalid_token"
	}{
		{"bearer", "Bearer " + tok, http.StatusOK, false},
		{"bearer, any case", "bearer " + tok, http.StatusOK, false},
		{"basic, token as password", basic("taxii-client", tok), http.StatusOK, false},
		{"basic, token as user", basic(tok, ""), http.StatusOK, false},
		{"none", "", http.StatusUnauthorized, false},
		{"unknown bearer", "Bearer tipk_" + strings.Repeat("z", 43), http.StatusUnauthorized, true},
		{"unknown basic", basic("me", "secret"), http.StatusUnauthorized, true},
		{"other scheme", "Token " + tok, http.StatusUnauthorized, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := do(h, "GET", "/v1/sources", "", "Authorization", c.header)
			if w.Code != c.want {
				t.Fatalf("%d, want %d: %s", w.Code, c.want, w.Body)
			}
			if c.want != http.StatusUnauthorized {
				return
			}
			ch := w.Header().Values("WWW-Authenticate")
			if len(ch) != 2 || !strings.HasPrefix(ch[0], `Bearer realm="tip"`) || !strings.HasPrefix(ch[1], `Basic realm="tip"`) {
				t.Errorf("challenges %q: want Bearer and Basic", ch)
			}
			if c.invalid != strings.Contains(ch[0], `error="invalid_token"`) {
				t.Errorf("bearer challenge %q: error=invalid_token only when a token was sent", ch[0])
			}
			assertJSONError(t, w)
		})
	}
}

func basic(user, pass string) string {
	r := httptest.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

func assertJSONError(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body) != 1 || body["error"] == "" || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("%d: want a JSON {\"error\": ...}, got %s %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}

// TestAuthExpiredRevokedAndScopes: an expired or revoked token is refused
// from the very next request; a token without the route's scope gets 403.
func TestAuthExpiredRevokedAndScopes(t *testing.T) {
	f := newFakeStore()
	s := testServer(t, Config{}, f)
	h := s.Handler()
	lookupOnly := f.addToken("resolver", storage.ScopeLookup)
	all := f.addToken("analyst", storage.ScopeAll)

	if w := do(h, "GET", "/v1/lookup?q=evil.example", lookupOnly); w.Code != http.StatusOK {
		t.Fatalf("lookup with scope lookup: %d %s", w.Code, w.Body)
	}
	for _, path := range []string{"/v1/export/plain", "/v1/sources", "/misp/manifest.json"} {
		w := do(h, "GET", path, lookupOnly)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "lacks scope") ||
			!strings.Contains(w.Header().Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Errorf("%s with scope lookup: %d %s %q", path, w.Code, w.Body, w.Header().Get("WWW-Authenticate"))
		}
		assertJSONError(t, w)
		if w := do(h, "GET", path, all); w.Code != http.StatusOK {
			t.Errorf("%s with scope all: %d %s", path, w.Code, w.Body)
		}
	}

	f.setToken(lookupOnly, func(tk *storage.APIToken) { tk.Expires = time.Now().Add(-time.Second) })
	if w := do(h, "GET", "/v1/lookup?q=evil.example", lookupOnly); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "resolver expired") {
		t.Errorf("expired: %d %s", w.Code, w.Body)
	}
	if w := do(h, "GET", "/v1/sources", all); w.Code != http.StatusOK {
		t.Fatalf("before revocation: %d", w.Code)
	}
	f.setToken(all, func(tk *storage.APIToken) { tk.Revoked = time.Now() })
	if w := do(h, "GET", "/v1/sources", all); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "analyst was revoked") {
		t.Errorf("the request right after the revocation: %d %s", w.Code, w.Body)
	}

	// A database that does not answer is not the client's fault.
	f.mu.Lock()
	f.err = errors.New("connection refused")
	f.mu.Unlock()
	w := do(h, "GET", "/v1/sources", all)
	if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "connection refused") {
		t.Errorf("database down: %d %s", w.Code, w.Body)
	}
	assertJSONError(t, w)
}

// TestRoutesAnswerJSONErrors: unknown paths, formats and methods.
func TestRoutesAnswerJSONErrors(t *testing.T) {
	f := newFakeStore()
	h := testServer(t, Config{}, f).Handler()
	tok := f.addToken("x", storage.ScopeAll)
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/nowhere", http.StatusNotFound},
		{"GET", "/v1/export/xml", http.StatusNotFound},
		{"GET", "/misp/..%2f..%2fetc%2fpasswd", http.StatusNotFound},
		{"GET", "/misp/evil.json", http.StatusNotFound},
		{"GET", "/taxii2/", http.StatusNotFound}, // no TAXII handler
		{"DELETE", "/v1/lookup", http.StatusMethodNotAllowed},
		{"POST", "/v1/sources", http.StatusMethodNotAllowed},
		{"GET", "/v1/export/plain?types=ipv4", http.StatusBadRequest},
		{"GET", "/v1/export/plain?min_score=2", http.StatusBadRequest},
		{"GET", "/v1/export/plain?type=ipv5", http.StatusBadRequest},
		{"GET", "/v1/lookup", http.StatusBadRequest},
		{"GET", "/v1/lookup?value=x", http.StatusBadRequest},
	} {
		w := do(h, c.method, c.path, tok)
		if w.Code != c.want {
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.path, w.Code, c.want, w.Body)
			continue
		}
		assertJSONError(t, w)
		if c.want == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
	}
}

// TestTAXIIIsMountedBehindTheExportScope: the handler given sees the whole
// path and the token; a token without scope export never reaches it.
func TestTAXIIIsMountedBehindTheExportScope(t *testing.T) {
	f := newFakeStore()
	var seen []string
	taxii := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tk, _ := TokenFrom(r.Context())
		seen = append(seen, r.URL.Path+" "+tk.Name)
		w.Header().Set("Content-Type", "application/taxii+json;version=2.1")
		w.Write([]byte(`{"title": "TIP", "api_roots": ["/taxii2/tip/"]}`))
	})
	s, err := New(Config{MISPCache: t.TempDir()}, f, Options{Lookuper: fakeLookuper{f}, TAXII: taxii})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	exp, lk := f.addToken("misp", storage.ScopeExport), f.addToken("dns", storage.ScopeLookup)
	if w := do(s.Handler(), "GET", "/taxii2/tip/collections/", exp); w.Code != http.StatusOK {
		t.Fatalf("with scope export: %d %s", w.Code, w.Body)
	}
	if w := do(s.Handler(), "GET", "/taxii2/", lk); w.Code != http.StatusForbidden {
		t.Fatalf("with scope lookup: %d", w.Code)
	}
	if w := do(s.Handler(), "GET", "/taxii2/", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", w.Code)
	}
	if strings.Join(seen, ",") != "/taxii2/tip/collections/ misp" {
		t.Fatalf("the TAXII handler saw %q", seen)
	}
}
