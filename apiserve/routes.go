package apiserve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tip-project/tip/storage"
)

// methods maps the HTTP methods a route answers to their handlers; HEAD is
// answered as GET, without the body.
type methods map[string]http.HandlerFunc

// publicRoute needs no token: the API's own description.
const publicRoute storage.APIScope = ""

// routes builds the API's handler. Every route is instrumented under its
// pattern; unknown paths and methods get JSON errors too.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.handle(mux, "/v1/lookup", storage.ScopeLookup, methods{http.MethodGet: s.lookupGET, http.MethodPost: s.lookupPOST})
	s.handle(mux, "/v1/export/{format}", storage.ScopeExport, methods{http.MethodGet: s.export})
	s.handle(mux, "/v1/sources", storage.ScopeSources, methods{http.MethodGet: s.sources})
	s.handle(mux, "/v1/pdns", storage.ScopeLookup, methods{http.MethodGet: s.passiveDNS})
	s.handle(mux, "/misp/{file}", storage.ScopeExport, methods{http.MethodGet: s.mispFile})
	s.handle(mux, "/v1/openapi.json", publicRoute, methods{http.MethodGet: s.openAPI})
	if s.taxii != nil {
		mux.Handle("/taxii2/", s.instrument("/taxii2/", s.auth(storage.ScopeExport, s.taxii)))
		s.patterns = append(s.patterns, "/taxii2/")
	}
	mux.Handle("/", s.instrument("other", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such path: %s (GET /v1/openapi.json describes the API)", r.URL.Path)
	})))
	return mux
}

// handle registers a route: its methods, behind a token holding scope.
func (s *Server) handle(mux *http.ServeMux, pattern string, scope storage.APIScope, ms methods) {
	allowed := make([]string, 0, len(ms)+1)
	for m := range ms {
		allowed = append(allowed, m)
	}
	if _, ok := ms[http.MethodGet]; ok {
		allowed = append(allowed, http.MethodHead)
	}
	slices.Sort(allowed)
	s.patterns = append(s.patterns, pattern)
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := r.Method
		if m == http.MethodHead {
			m = http.MethodGet
		}
		ms[m](w, r)
	})
	if scope != publicRoute {
		h = s.auth(scope, h)
	}
	mux.Handle(pattern, s.instrument(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(allowed, r.Method) {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, http.StatusMethodNotAllowed, "%s %s: want %s", r.Method, r.URL.Path, strings.Join(allowed, " or "))
			return
		}
		h.ServeHTTP(w, r)
	})))
}

// instrument counts a route's requests by status code and times them, bounds
// the request's body, and sets the headers every answer carries.
func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &responseWriter{ResponseWriter: w}
		rw.Header().Set("X-Content-Type-Options", "nosniff")
		r.Body = http.MaxBytesReader(rw, r.Body, s.cfg.MaxBodyBytes)
		defer func() {
			code := strconv.Itoa(rw.Status())
			p := recover()
			if p != nil { // http.ErrAbortHandler: a stream broken off after its head
				code = "aborted"
			}
			s.m.requests.WithLabelValues(route, code).Inc()
			s.m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
			if p != nil {
				panic(p)
			}
		}()
		h.ServeHTTP(rw, r)
	})
}

// responseWriter notes the status and the bytes of a response.
type responseWriter struct {
	http.ResponseWriter
	status  int
	written int64
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

// Status is the response's status code (200 until one is written).
func (w *responseWriter) Status() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Flush passes a flush on, for a handler that streams (TAXII's, an export).
func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (write deadlines).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errorBody is every error's JSON.
type errorBody struct {
	Error string `json:"error"`
}

// writeError answers {"error": "..."} with code, dropping the headers of a
// successful answer set before.
func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	h := w.Header()
	for _, k := range []string{"ETag", "Last-Modified", "Content-Disposition", "Content-Length"} {
		h.Del(k)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(errorBody{Error: fmt.Sprintf(format, args...)}) //nolint:errchkjson // the client may be gone
}

// writeJSON answers v as JSON with code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "private, no-cache")
	}
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v) //nolint:errchkjson // the client may be gone
}
