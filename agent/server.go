package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
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
	maxMetricsConns       = 16          // open connections to the metrics listener
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
// tokens.json; each token has its own request rate. Before a token is looked
// at, each client address has a rate of requests that do not authenticate, and
// the connections are held to Limits. Refusals are counted in the metrics and
// logged sampled (events), with their reason, remote address and token name,
// never a token or a query string.
type Server struct {
	src     Source
	tokens  *Tokens
	log     *slog.Logger
	lim     Limits
	limits  *rateLimits[string]       // of the tokens, by name
	clients *rateLimits[netip.Prefix] // of the client addresses, for requests that do not authenticate
	ev      *events
	open    atomic.Int64 // connections
	conns   atomic.Pointer[connLimiter]
}

// NewServer serves src to the holders of tokens, rate requests per second each,
// with the default Limits otherwise; refusals are logged to log (nil:
// discarded). A rate out of [MinRate, MaxRate] is taken as the nearest bound.
func NewServer(src Source, tokens *Tokens, rate float64, log *slog.Logger) *Server {
	return newServer(src, tokens, Limits{Rate: rate}.withDefaults(), log)
}

// NewLimitedServer serves src to the holders of tokens within lim, whose zero
// fields take their defaults; refusals are logged to log (nil: discarded).
func NewLimitedServer(src Source, tokens *Tokens, lim Limits, log *slog.Logger) (*Server, error) {
	lim = lim.withDefaults()
	if err := lim.Check(); err != nil {
		return nil, err
	}
	return newServer(src, tokens, lim, log), nil
}

func newServer(src Source, tokens *Tokens, lim Limits, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{src: src, tokens: tokens, log: log, lim: lim,
		limits:  newRateLimits[string](lim.Rate, maxClientBuckets, time.Now),
		clients: newRateLimits[netip.Prefix](lim.ClientRate, maxClientBuckets, time.Now)}
	s.ev = newEvents(log, src, &s.open, time.Now)
	return s
}

// Serve answers HTTPS on ln until ctx ends, then lets running requests finish
// for up to ten seconds. tlsConf is ServerTLS's or ServerTLSConfig's.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsConf *tls.Config) error {
	cl := newConnLimiter(ln, s.lim, s.ev, &s.open)
	s.conns.Store(cl)
	hs := &http.Server{
		Handler:           s,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second, // also the TLS handshake's
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(serverErrorLog{s.ev}, "", 0),
		ConnContext:       connContext,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: maxHTTP2Streams},
	}
	evCtx, stopEvents := context.WithCancel(context.Background())
	evDone := make(chan struct{})
	go func() { defer close(evDone); s.ev.run(evCtx) }()
	defer func() { stopEvents(); <-evDone }()
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(cl, "", "") }()
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

// ServeMetrics answers GET /metrics on ln, plain HTTP in Prometheus's text
// format, until ctx ends: the server's counters (requests, refusals by reason,
// connections refused and closed, TLS handshake errors, open connections, the
// latest batch) and the Go runtime's and process's. Bind it to loopback or a
// management network: it carries no secret but tells how the agent is used.
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.ev.reg, promhttp.HandlerOpts{}))
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          log.New(serverErrorLog{s.ev}, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(netutil.LimitListener(ln, maxMetricsConns)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := hs.Shutdown(shut)
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

// refusal is a request the server answers with an error: its status, why (one
// of the refused… kinds) and the reason told to the client, at most maxReason
// bytes.
type refusal struct {
	status int
	kind   string
	reason string
}

// refuse is a refusal of a request that authenticated, its kind told by its
// status.
func refuse(status int, format string, args ...any) *refusal {
	kind := refusedInternal
	switch status {
	case http.StatusBadRequest:
		kind = refusedBadRequest
	case http.StatusForbidden:
		kind = refusedScope
	case http.StatusNotFound:
		kind = refusedNotFound
	}
	return refuseAs(status, kind, format, args...)
}

// refuseAs is a refusal of kind. Its reason may quote what the client sent:
// anything shaped like a token is masked, as in the log.
func refuseAs(status int, kind, format string, args ...any) *refusal {
	return &refusal{status: status, kind: kind, reason: maskTokens(capText(fmt.Sprintf(format, args...), maxReason))}
}

// ServeHTTP answers one request of the API (docs/agent-protocol.md).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.ev.requests.Inc()
	tk, ref := s.admit(w, r)
	if ref == nil {
		ref = s.serve(w, r, tk, s.log.With("remote", r.RemoteAddr, "token", tk.Name))
	}
	if ref != nil {
		s.refused(w, r, tk.Name, ref)
	}
}

// admit authenticates the request and applies the rate limits: first its
// client address's, which every request takes from and an authenticated one
// gives back, so only requests that do not authenticate count and an address
// past its limit is refused before its token is looked at; then its token's.
// The Token also comes with a refusal when it is known (expired, revoked, over
// its rate).
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (Token, *refusal) {
	client := clientOf(r.RemoteAddr)
	if wait, ok := s.clients.allow(client); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		return Token{}, refuseAs(http.StatusTooManyRequests, refusedClientRate, "too many unauthenticated requests from this address")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return Token{}, refuseAs(http.StatusMethodNotAllowed, refusedMethod, "method %s", r.Method)
	}
	tk, err := s.tokens.Verify(bearer(r))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tip-agent"`)
		for _, e := range []struct {
			err  error
			kind string
		}{{ErrNoToken, refusedNoToken}, {ErrUnknownToken, refusedUnknownToken}, {ErrTokenExpired, refusedExpiredToken}, {ErrTokenRevoked, refusedRevokedToken}} {
			if errors.Is(err, e.err) {
				return tk, refuseAs(http.StatusUnauthorized, e.kind, "%v", err)
			}
		}
		s.ev.note(tokensFileError, slog.LevelError, "agent: tokens.json cannot be read; refusing every token", slog.String("err", capText(err.Error(), maxReason)))
		return Token{}, refuseAs(http.StatusUnauthorized, refusedTokensUnavailable, "tokens unavailable")
	}
	s.clients.refund(client)
	if tc := connOf(r); tc != nil {
		tc.authenticated()
	}
	if wait, ok := s.limits.allow(tk.Name); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		return tk, refuseAs(http.StatusTooManyRequests, refusedTokenRate, "rate limit")
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

// refused answers a refused request with {"error": reason}, counts it and logs
// it, sampled. The log names the token (never the token itself), the remote
// address and the path as sent, without its query string and with anything
// shaped like a token masked.
func (s *Server) refused(w http.ResponseWriter, r *http.Request, name string, ref *refusal) {
	s.ev.refused.WithLabelValues(ref.kind).Inc()
	s.ev.note(ref.kind, slog.LevelWarn, "agent: refused", slog.Int("status", ref.status), slog.String("reason", ref.reason),
		slog.String("remote", r.RemoteAddr), slog.String("token", name), slog.String("method", capText(r.Method, 16)),
		slog.String("path", logPath(r.URL.EscapedPath())))
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
