package agent

import (
	"context"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Why a request is refused: the label of tip_agent_requests_refused_total and
// the kind its log lines are counted under. A fixed set, so nothing a client
// sends becomes a label or a key.
const (
	refusedClientRate        = "client_rate"
	refusedMethod            = "method"
	refusedNoToken           = "no_token"
	refusedUnknownToken      = "unknown_token"
	refusedExpiredToken      = "expired_token"
	refusedRevokedToken      = "revoked_token"
	refusedTokensUnavailable = "tokens_unavailable"
	refusedTokenRate         = "token_rate"
	refusedScope             = "scope"
	refusedBadRequest        = "bad_request"
	refusedNotFound          = "not_found"
	refusedInternal          = "internal"
)

// tokensFileError is the kind of the error logged with each refusal for want
// of a readable tokens.json, sampled apart from the refusals.
const tokensFileError = "tokens_file_error"

var refusalKinds = []string{refusedClientRate, refusedMethod, refusedNoToken, refusedUnknownToken, refusedExpiredToken,
	refusedRevokedToken, refusedTokensUnavailable, refusedTokenRate, refusedScope, refusedBadRequest, refusedNotFound, refusedInternal}

// What happens to a connection the limits refuse or close.
const (
	connRefusedMax       = "max_conns"            // refused: every open connection has authenticated
	connRefusedPerClient = "max_conns_per_client" // refused: its client address has its share open
	connEvicted          = "evicted"              // closed before authenticating, to make room for a new one
	connAuthTimeout      = "auth_timeout"         // closed: no authenticated request within auth_timeout
)

// Errors net/http reports about connections (its ErrorLog).
const (
	serverErrTLS   = "tls_handshake"
	serverErrOther = "other"
)

const (
	// eventInterval is how often the counts of events not logged one by one
	// are logged.
	eventInterval = time.Minute
	// eventSamples is how many events of a kind are logged in full in an
	// interval; the rest are counted.
	eventSamples = 5
	// maxReason bounds the text of a refusal, in the log and in the answer.
	maxReason = 200
	// maxLogPath bounds a request path as logged.
	maxLogPath = 200
)

// events is what the server counts for its metrics and logs sampled: in each
// interval the first eventSamples events of a kind are logged in full, the rest
// only counted, and the counts logged at the interval's end. A flood of
// refusals thus costs a few lines a minute, not one line each, and every
// event is still in the metrics.
type events struct {
	log *slog.Logger
	now func() time.Time

	reg          *prom.Registry
	requests     prom.Counter
	refused      *prom.CounterVec
	conns        *prom.CounterVec
	serverErrors *prom.CounterVec

	mu     sync.Mutex
	start  time.Time      // of the interval
	counts map[string]int // events of each kind in the interval
}

// newEvents registers the metrics of a server of src; open is its count of open
// connections.
func newEvents(log *slog.Logger, src Source, open *atomic.Int64, now func() time.Time) *events {
	e := &events{log: log, now: now, reg: prom.NewRegistry(), start: now(), counts: map[string]int{}}
	e.requests = prom.NewCounter(prom.CounterOpts{Name: "tip_agent_requests_total", Help: "HTTPS requests received."})
	e.refused = prom.NewCounterVec(prom.CounterOpts{Name: "tip_agent_requests_refused_total",
		Help: "HTTPS requests refused, by reason."}, []string{"reason"})
	e.conns = prom.NewCounterVec(prom.CounterOpts{Name: "tip_agent_connections_refused_total",
		Help: "Connections refused or closed by the connection limits, by reason (max_conns, max_conns_per_client, evicted, auth_timeout)."}, []string{"reason"})
	e.serverErrors = prom.NewCounterVec(prom.CounterOpts{Name: "tip_agent_server_errors_total",
		Help: "Connection errors of the HTTPS server (failed TLS handshakes and others), by kind."}, []string{"kind"})
	for _, k := range refusalKinds {
		e.refused.WithLabelValues(k)
	}
	for _, k := range []string{connRefusedMax, connRefusedPerClient, connEvicted, connAuthTimeout} {
		e.conns.WithLabelValues(k)
	}
	for _, k := range []string{serverErrTLS, serverErrOther} {
		e.serverErrors.WithLabelValues(k)
	}
	e.reg.MustRegister(e.requests, e.refused, e.conns, e.serverErrors,
		prom.NewGaugeFunc(prom.GaugeOpts{Name: "tip_agent_connections_open", Help: "Open HTTPS connections."},
			func() float64 { return float64(open.Load()) }),
		prom.NewGaugeFunc(prom.GaugeOpts{Name: "tip_agent_latest_version", Help: "The latest published batch."},
			func() float64 { return float64(src.Latest()) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return e
}

// note counts an event of kind and logs it in full when it is among the first
// of its kind in the interval; the last of those says the rest are counted.
func (e *events) note(kind string, level slog.Level, msg string, attrs ...slog.Attr) {
	e.mu.Lock()
	if e.now().Sub(e.start) >= eventInterval {
		e.flushLocked()
	}
	e.counts[kind]++
	n := e.counts[kind]
	e.mu.Unlock()
	if n > eventSamples {
		return
	}
	if n == eventSamples {
		attrs = append(attrs, slog.String("sampled", "more of this kind in this minute are counted, not logged"))
	}
	e.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// flush logs the counts of the interval, when some were not logged in full, and
// starts a new interval.
func (e *events) flush() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.flushLocked()
}

func (e *events) flushLocked() {
	unlogged := 0
	for _, n := range e.counts {
		unlogged += max(n-eventSamples, 0)
	}
	if unlogged > 0 {
		attrs := []slog.Attr{slog.Time("since", e.start), slog.Int("unlogged", unlogged)}
		for _, k := range slices.Sorted(maps.Keys(e.counts)) {
			attrs = append(attrs, slog.Int(k, e.counts[k]))
		}
		e.log.LogAttrs(context.Background(), slog.LevelWarn, "agent: refusals and closed connections, counted", attrs...)
	}
	clear(e.counts)
	e.start = e.now()
}

// run flushes every interval until ctx ends, and once more then.
func (e *events) run(ctx context.Context) {
	t := time.NewTicker(eventInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.flush()
			return
		case <-t.C:
			e.mu.Lock()
			if e.now().Sub(e.start) >= eventInterval {
				e.flushLocked()
			}
			e.mu.Unlock()
		}
	}
}

// connEvent counts and logs a connection the limits refused or closed.
func (e *events) connEvent(reason, remote string) {
	e.conns.WithLabelValues(reason).Inc()
	level, msg := slog.LevelWarn, "agent: connection refused"
	if reason == connEvicted || reason == connAuthTimeout {
		level, msg = slog.LevelInfo, "agent: connection closed"
	}
	e.note(reason, level, msg, slog.String("reason", reason), slog.String("remote", remote))
}

// serverErrorLog is net/http's ErrorLog: failed TLS handshakes and the like,
// one line each, counted and sampled as the refusals are.
type serverErrorLog struct{ e *events }

func (w serverErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	kind := serverErrOther
	if strings.Contains(msg, "TLS handshake error") {
		kind = serverErrTLS
	}
	w.e.serverErrors.WithLabelValues(kind).Inc()
	w.e.note(kind, slog.LevelInfo, "agent: connection error", slog.String("err", capText(msg, 2*maxReason)))
	return len(p), nil
}

// capText cuts s to at most n bytes, on a character boundary, marking the cut.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// tokenLikeRE finds what looks like a token, wherever a client put it.
var tokenLikeRE = regexp.MustCompile(`tipa_[A-Za-z0-9_-]*`)

func maskTokens(s string) string { return tokenLikeRE.ReplaceAllString(s, "tipa_…") }

// logPath is a request's path as logged: no query string (a token may be sent
// there by mistake), anything shaped like a token masked, cut to a readable
// length.
func logPath(escapedPath string) string {
	return maskTokens(capText(escapedPath, maxLogPath))
}
