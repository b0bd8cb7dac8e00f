package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Source is what the HTTPS server serves: the committed versions of an agent's
// folder; *Store is one. Errors for a bad argument wrap
// ErrInvalid (400) or ErrNotFound (404).
type Source interface {
	Agent() string
	Latest() uint64
	// Entries are the versions after after, ascending, at most limit (all when
	// limit <= 0).
	Entries(after uint64, limit int) []Entry
	// OpenBatch opens a committed batch file and returns its manifest entry.
	OpenBatch(version uint64) (io.ReadSeekCloser, Entry, error)
	// OpenPack opens a committed batch's raw pack and returns its manifest
	// entry (RawSize is the pack's size).
	OpenPack(version uint64) (io.ReadSeekCloser, Entry, error)
	// OpenRaw opens the raw mail sha of batch version and returns its size.
	OpenRaw(version uint64, sha string) (io.ReadSeekCloser, int64, error)
}

// Protocol limits and defaults (docs/agent-protocol.md).
const (
	MaxManifestPage       = 1000     // versions per GET /v1/manifest
	DefaultStreamMaxBytes = 64 << 20 // of GET /v1/batches?after=N
	MaxStreamBatches      = 10_000   // batches per stream, however small
	maxItemLine           = 512      // one JSON line of a stream item, "\n" included
	streamContentType     = "application/x-tip-batch-stream"
	writeTimeout          = time.Minute // per write, so a stalled collector is dropped
)

// Head is the answer to GET /v1/latest.
type Head struct {
	Agent  string `json:"agent"`
	Schema int    `json:"schema"`
	Latest uint64 `json:"latest"`
}

// ManifestPage is the answer to GET /v1/manifest: the versions after the one
// asked for, at most a page of them.
type ManifestPage struct {
	Agent    string  `json:"agent"`
	Schema   int     `json:"schema"`
	Latest   uint64  `json:"latest"`
	Versions []Entry `json:"versions"`
}

// Server is the agent's HTTPS API. Every request needs a bearer token of
// tokens.json; each token has its own request rate (a token bucket of rate
// requests per second holding twice that). Every refused request is logged with
// its reason, remote address and token name.
type Server struct {
	src    Source
	tokens *Tokens
	log    *slog.Logger
	limits *rateLimits
}

// NewServer serves src to the holders of tokens, rate requests per second each;
// refusals are logged to log (nil: discarded).
func NewServer(src Source, tokens *Tokens, rate float64, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{src: src, tokens: tokens, log: log, limits: newRateLimits(rate, time.Now)}
}

// Serve answers HTTPS on ln until ctx ends, then lets running requests finish
// for up to ten seconds.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsConf *tls.Config) error {
	hs := &http.Server{
		Handler:           s,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelInfo), // TLS handshake failures
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(shut)
	if errors.Is(err, context.DeadlineExceeded) {
		err = hs.Close()
	}
	<-errc
	return err
}

// endpoint is one request of the API.
type endpoint int

const (
	epLatest endpoint = iota
	epManifest
	epStream
	epBatch
	epPack
	epRaw
)

// refusal is a request the server answers with an error.
type refusal struct {
	status int
	reason string
}

func refuse(status int, format string, args ...any) *refusal {
	return &refusal{status: status, reason: fmt.Sprintf(format, args...)}
}

// ServeHTTP answers one request of the API (docs/agent-protocol.md).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tk, ref := s.admit(w, r)
	if ref == nil {
		ref = s.serve(w, r, tk, s.log.With("remote", r.RemoteAddr, "token", tk.Name))
	}
	if ref != nil {
		s.refused(w, r, tk.Name, ref)
	}
}

// admit authenticates the request and applies its token's rate limit. The Token
// also comes with a refusal when it is known (expired, revoked, over its rate).
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (Token, *refusal) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return Token{}, refuse(http.StatusMethodNotAllowed, "method %s", r.Method)
	}
	tk, err := s.tokens.Verify(bearer(r))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tip-agent"`)
		if errors.Is(err, ErrNoToken) || errors.Is(err, ErrUnknownToken) || errors.Is(err, ErrTokenExpired) || errors.Is(err, ErrTokenRevoked) {
			return tk, refuse(http.StatusUnauthorized, "%v", err)
		}
		s.log.Error("agent: tokens.json cannot be read; refusing every token", "err", err)
		return Token{}, refuse(http.StatusUnauthorized, "tokens unavailable")
	}
	if wait, ok := s.limits.allow(tk.Name); !ok {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10))
		return tk, refuse(http.StatusTooManyRequests, "rate limit")
	}
	return tk, nil
}

// bearer is the token of the request's one Authorization header, "" when there
// is none or it is not a bearer token.
func bearer(r *http.Request) string {
	v := r.Header.Values("Authorization")
	if len(v) != 1 {
		return ""
	}
	scheme, token, ok := strings.Cut(v[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return token
}

// serve answers a request of token tk.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, tk Token, log *slog.Logger) *refusal {
	ep, v, sha, ref := route(r.URL)
	if ref != nil {
		return ref
	}
	if ep == epPack || ep == epRaw {
		if !tk.Scope.Allows(ScopeRaw) {
			return refuse(http.StatusForbidden, "scope %s cannot fetch raw mail", tk.Scope)
		}
	}
	q, ref := query(r.URL, ep)
	if ref != nil {
		return ref
	}
	switch ep {
	case epLatest:
		writeJSON(w, http.StatusOK, Head{Agent: s.src.Agent(), Schema: Schema, Latest: s.src.Latest()})
	case epManifest:
		limit := min(q.limit, MaxManifestPage)
		es := s.src.Entries(q.after, limit)
		// Latest read after the entries is never below the last of them.
		writeJSON(w, http.StatusOK, ManifestPage{Agent: s.src.Agent(), Schema: Schema, Latest: s.src.Latest(), Versions: es})
	case epBatch:
		return s.batch(w, r, v, log)
	case epStream:
		return s.stream(w, r, q.after, q.maxBytes, log)
	case epPack:
		return s.pack(w, r, v, log)
	case epRaw:
		return s.raw(w, r, v, sha, log)
	}
	return nil
}

// route checks the request's path and finds its endpoint and argument. The path
// must be clean as sent: no percent-encoding at all (no legitimate path of the
// API has any, and it is how %2e%2e and %2f get past naive checks), no empty,
// "." or ".." segments. The arguments of /v1/batches/N[/raw[/<sha256>]] must be
// a decimal version and a lower-case SHA-256, so no request can name a file
// outside the agent's folder.
func route(u *url.URL) (ep endpoint, version uint64, sha string, ref *refusal) {
	p := u.EscapedPath()
	if u.RawPath != "" || strings.ContainsAny(p, "%\\") {
		return 0, 0, "", refuse(http.StatusBadRequest, "encoded characters in the path")
	}
	if !strings.HasPrefix(p, "/") {
		return 0, 0, "", refuse(http.StatusBadRequest, "path not absolute")
	}
	if p == "/" {
		return 0, 0, "", refuse(http.StatusNotFound, "no such endpoint")
	}
	segs := strings.Split(p[1:], "/")
	for _, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return 0, 0, "", refuse(http.StatusBadRequest, "path not clean")
		}
	}
	if segs[0] != "v1" || len(segs) < 2 {
		return 0, 0, "", refuse(http.StatusNotFound, "no such endpoint")
	}
	switch {
	case len(segs) == 2 && segs[1] == "latest":
		return epLatest, 0, "", nil
	case len(segs) == 2 && segs[1] == "manifest":
		return epManifest, 0, "", nil
	case len(segs) == 2 && segs[1] == "batches":
		return epStream, 0, "", nil
	case segs[1] == "batches":
		if len(segs) > 5 || len(segs) >= 4 && segs[3] != "raw" {
			return 0, 0, "", refuse(http.StatusBadRequest, "batch path: want /v1/batches/N, /v1/batches/N/raw or /v1/batches/N/raw/<sha256>")
		}
		v, err := ParseVersion(segs[2])
		if err != nil {
			return 0, 0, "", refuse(http.StatusBadRequest, "%v", err)
		}
		switch len(segs) {
		case 3:
			return epBatch, v, "", nil
		case 4:
			return epPack, v, "", nil
		}
		if !ValidSHA256(segs[4]) {
			return 0, 0, "", refuse(http.StatusBadRequest, "raw mail: want 64 lower-case hex digits")
		}
		return epRaw, v, segs[4], nil
	}
	return 0, 0, "", refuse(http.StatusNotFound, "no such endpoint")
}

// params are a request's query parameters, checked.
type params struct {
	after    uint64
	limit    int
	maxBytes int64
}

// query checks the query string: only the endpoint's own parameters, each at
// most once, decimal integers.
func query(u *url.URL, ep endpoint) (params, *refusal) {
	p := params{limit: MaxManifestPage, maxBytes: DefaultStreamMaxBytes}
	vals, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return p, refuse(http.StatusBadRequest, "query: %v", err)
	}
	allowed := map[endpoint][]string{epManifest: {"after", "limit"}, epStream: {"after", "max_bytes"}}[ep]
	for k, vs := range vals {
		if !slices.Contains(allowed, k) {
			return p, refuse(http.StatusBadRequest, "unknown parameter %.40q", k)
		}
		if len(vs) != 1 {
			return p, refuse(http.StatusBadRequest, "parameter %s given %d times", k, len(vs))
		}
		n, err := ParseVersion(vs[0])
		if err != nil {
			return p, refuse(http.StatusBadRequest, "%s: %v", k, err)
		}
		switch k {
		case "after":
			p.after = n
		case "limit":
			if n == 0 {
				return p, refuse(http.StatusBadRequest, "limit: want at least 1")
			}
			p.limit = int(min(n, MaxManifestPage))
		case "max_bytes":
			if n == 0 {
				return p, refuse(http.StatusBadRequest, "max_bytes: want at least 1")
			}
			p.maxBytes = int64(min(n, math.MaxInt64))
		}
	}
	return p, nil
}

// batch answers GET /v1/batches/N with the batch file.
func (s *Server) batch(w http.ResponseWriter, r *http.Request, v uint64, log *slog.Logger) *refusal {
	f, e, err := s.src.OpenBatch(v)
	if err != nil {
		return s.openFailed(err, log)
	}
	defer f.Close()
	if err := checkSize(f, e.Size); err != nil {
		log.Error("agent: batch file damaged", "version", v, "err", err)
		return refuse(http.StatusInternalServerError, "batch %d unavailable", v)
	}
	h := w.Header()
	h.Set("Content-Type", "application/gzip")
	h.Set("Content-Length", strconv.FormatInt(e.Size, 10))
	h.Set("X-Tip-Sha256", e.SHA256)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.CopyN(deadlineWriter(w), f, e.Size); err != nil {
		log.Info("agent: batch not sent whole", "version", v, "err", err)
	}
	return nil
}

// stream answers GET /v1/batches?after=N&max_bytes=B: each batch after N as a
// JSON item line and its bytes. It holds at least one batch when there is one,
// and stops before the batch whose line and bytes would take the stream over
// maxBytes, or after MaxStreamBatches. Its length is known beforehand and sent as Content-Length, so a
// collector can tell a cut stream from a whole one.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, after uint64, maxBytes int64, log *slog.Logger) *refusal {
	type part struct {
		line []byte
		e    Entry
	}
	var parts []part
	var total int64
	next := after
pages:
	for {
		es := s.src.Entries(next, MaxManifestPage)
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			line, err := json.Marshal(StreamItem{Version: e.Version, SHA256: e.SHA256, Size: e.Size})
			if err != nil {
				return refuse(http.StatusInternalServerError, "stream item: %v", err)
			}
			line = append(line, '\n')
			cost := int64(len(line)) + e.Size
			if len(parts) > 0 && total+cost > maxBytes || len(parts) == MaxStreamBatches {
				break pages
			}
			parts = append(parts, part{line, e})
			total += cost
			next = e.Version
		}
	}
	var first io.ReadSeekCloser
	if len(parts) > 0 { // the first file opens before the answer starts, so it can still fail cleanly
		f, _, err := s.src.OpenBatch(parts[0].e.Version)
		if err != nil {
			return s.openFailed(err, log)
		}
		defer f.Close()
		if err := checkSize(f, parts[0].e.Size); err != nil {
			log.Error("agent: batch file damaged", "version", parts[0].e.Version, "err", err)
			return refuse(http.StatusInternalServerError, "batch %d unavailable", parts[0].e.Version)
		}
		first = f
	}
	h := w.Header()
	h.Set("Content-Type", streamContentType)
	h.Set("Content-Length", strconv.FormatInt(total, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	dw := deadlineWriter(w)
	for i, p := range parts {
		f := first
		if i > 0 {
			var err error
			if f, _, err = s.src.OpenBatch(p.e.Version); err == nil {
				if err = checkSize(f, p.e.Size); err != nil {
					f.Close()
				}
			}
			if err != nil {
				// The status is sent: cutting the connection is the only way left
				// to tell the collector, and the Content-Length makes it see that.
				log.Error("agent: stream cut: batch unavailable", "version", p.e.Version, "err", err)
				panic(http.ErrAbortHandler)
			}
		}
		_, err := dw.Write(p.line)
		if err == nil {
			_, err = io.CopyN(dw, f, p.e.Size)
		}
		if i > 0 {
			f.Close()
		}
		if err != nil {
			log.Info("agent: stream not sent whole", "version", p.e.Version, "err", err)
			return nil
		}
	}
	log.Debug("agent: stream sent", "after", after, "batches", len(parts), "bytes", total)
	return nil
}

// pack answers GET /v1/batches/N/raw with the batch's raw pack.
func (s *Server) pack(w http.ResponseWriter, r *http.Request, v uint64, log *slog.Logger) *refusal {
	f, e, err := s.src.OpenPack(v)
	if err != nil {
		return s.openFailed(err, log)
	}
	defer f.Close()
	if err := checkSize(f, e.RawSize); err != nil {
		log.Error("agent: raw pack damaged", "version", v, "err", err)
		return refuse(http.StatusInternalServerError, "raw pack %d unavailable", v)
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(e.RawSize, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.CopyN(deadlineWriter(w), f, e.RawSize); err != nil {
		log.Info("agent: raw pack not sent whole", "version", v, "err", err)
	}
	return nil
}

// raw answers GET /v1/batches/N/raw/<sha256> with the raw mail.
func (s *Server) raw(w http.ResponseWriter, r *http.Request, v uint64, sha string, log *slog.Logger) *refusal {
	f, size, err := s.src.OpenRaw(v, sha)
	if err != nil {
		return s.openFailed(err, log)
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "message/rfc822")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.CopyN(deadlineWriter(w), f, size); err != nil {
		log.Info("agent: raw mail not sent whole", "sha256", sha, "err", err)
	}
	return nil
}

// openFailed turns a Source's error into the answer: 400, 404 or (logged) 500.
func (s *Server) openFailed(err error, log *slog.Logger) *refusal {
	switch {
	case errors.Is(err, ErrInvalid):
		return refuse(http.StatusBadRequest, "%v", err)
	case errors.Is(err, ErrNotFound):
		return refuse(http.StatusNotFound, "%v", err)
	}
	log.Error("agent: cannot open", "err", err)
	return refuse(http.StatusInternalServerError, "internal error")
}

// checkSize checks a file is the size its manifest entry says: a file cut short
// (or grown) on disk is not served as if it were whole.
func checkSize(f io.Seeker, want int64) error {
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("%d bytes on disk, the manifest says %d", n, want)
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

// refused answers a refused request with {"error": reason} and logs it. The log
// names the token (never the token itself), the remote address and the path as
// sent, cut to a readable length.
func (s *Server) refused(w http.ResponseWriter, r *http.Request, name string, ref *refusal) {
	path := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	if len(path) > 200 {
		path = path[:200] + "…"
	}
	s.log.Warn("agent: refused", "status", ref.status, "reason", ref.reason, "remote", r.RemoteAddr, "token", name, "method", r.Method, "path", path)
	writeJSON(w, ref.status, map[string]string{"error": ref.reason})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	data = append(data, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// deadlineWriter moves the connection's write deadline a minute ahead before
// every write: a long stream may take as long as it needs, a collector that
// stops reading is dropped.
func deadlineWriter(w http.ResponseWriter) io.Writer {
	return &extendingWriter{w: w, rc: http.NewResponseController(w)}
}

type extendingWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (e *extendingWriter) Write(p []byte) (int, error) {
	_ = e.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return e.w.Write(p)
}

// rateLimits are the token buckets of the tokens, by name.
type rateLimits struct {
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimits(rate float64, now func() time.Time) *rateLimits {
	return &rateLimits{rate: rate, burst: max(2*rate, 1), now: now, buckets: map[string]*bucket{}}
}

// allow takes one request from the bucket of token name, or says how long until
// the bucket holds one again.
func (l *rateLimits) allow(name string) (time.Duration, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[name]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[name] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
}
