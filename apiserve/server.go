// Package apiserve is `tip serve api`: TIP's HTTP API for the tools defenders
// run. Lookups (/v1/lookup), exports in every format of package export
// (/v1/export/{format}), a MISP feed (/misp/), the sources' health
// (/v1/sources) and, mounted from outside, STIX 2.1 over TAXII 2.1 (/taxii2/),
// to holders of a token (`tip api token add`), as OpenAPI 3.1 describes it
// (/v1/openapi.json). HTTP/1.1 and HTTP/2, over TLS when configured; the
// connections, each token's requests and every body are bounded.
package apiserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/storage"
)

// Store is what the server reads (storage.DB).
type Store interface {
	VerifyAPIToken(ctx context.Context, secret string) (storage.APIToken, error)
	ExportVersion(ctx context.Context) (storage.ExportVersion, error)
	ExportListed(ctx context.Context, types []string, minScore float64, includeAllowlisted bool, fn func(export.Row) error) error
	SourcesHealth(ctx context.Context) ([]storage.SourceHealth, error)
	SourceStates(ctx context.Context) ([]storage.SourceState, error)
	WaitListingChange(ctx context.Context) error
	PassiveDNS(ctx context.Context, q string) ([]storage.PDNSRecord, error)
}

// Options are what a server is built with besides its Config and Store.
type Options struct {
	// Lookuper answers /v1/lookup; nil: SQL (SQLLookuper) when the store is a
	// *storage.DB.
	Lookuper Lookuper
	// TAXII serves /taxii2/ and everything under it, behind the export scope;
	// it sees the whole path. nil: /taxii2/ is not found.
	TAXII http.Handler
	Log   *slog.Logger
}

// Server answers TIP's HTTP API.
type Server struct {
	cfg     Config
	store   Store
	lookup  Lookuper
	taxii   http.Handler
	log     *slog.Logger
	tls     *tls.Config
	m       *metrics
	limits  *tokenLimits
	refused *refusals
	misp    *mispCache
	handler http.Handler
	// patterns are the routes served, as ServeMux patterns; the description
	// (openapi.json) has a path for each.
	patterns []string

	version   atomic.Pointer[storage.ExportVersion]
	versionAt atomic.Int64 // unix nanoseconds of the last read of the version
}

// New prepares a server; its TLS key pair, when configured, is read here.
func New(cfg Config, store Store, opts Options) (*Server, error) {
	cfg = cfg.withDefaults()
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Lookuper == nil {
		db, ok := store.(*storage.DB)
		if !ok {
			return nil, errors.New("api: no Lookuper given, and the store is no *storage.DB to look up in with SQL")
		}
		opts.Lookuper = SQLLookuper{DB: db}
	}
	s := &Server{cfg: cfg, store: store, lookup: opts.Lookuper, taxii: opts.TAXII, log: opts.Log,
		limits: newTokenLimits(cfg.RatePerToken, cfg.Burst)}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("api: TLS key pair %s, %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	s.m = newMetrics(s)
	s.refused = newRefusals(s.log, cfg.LogEvery)
	misp, err := newMISPCache(cfg.MISPCache, s)
	if err != nil {
		return nil, err
	}
	s.misp = misp
	s.handler = s.routes()
	return s, nil
}

// Registry holds the server's metrics.
func (s *Server) Registry() *prometheus.Registry { return s.m.registry }

// Handler is the API's HTTP handler. Without Serve the exports' version is
// read once, at the first request that needs it (call Refresh to read it again).
func (s *Server) Handler() http.Handler { return s.handler }

// Close removes the MISP feed's generated files.
func (s *Server) Close() error { return s.misp.close() }

// Refresh reads the exports' version: what their ETag and Last-Modified derive from.
func (s *Server) Refresh(ctx context.Context) error {
	v, err := s.store.ExportVersion(ctx)
	if err != nil {
		return err
	}
	if old := s.version.Swap(&v); old == nil || old.Key != v.Key {
		s.log.Debug("api: exports at a new version", "seq", v.Seq, "modified", v.Modified)
	}
	s.versionAt.Store(time.Now().UnixNano())
	return nil
}

// currentVersion is the exports' version, read now if it never was.
func (s *Server) currentVersion(ctx context.Context) (storage.ExportVersion, error) {
	if v := s.version.Load(); v != nil {
		return *v, nil
	}
	if err := s.Refresh(ctx); err != nil {
		return storage.ExportVersion{}, err
	}
	return *s.version.Load(), nil
}

// Serve answers on addr until ctx ends, then lets the requests in flight
// finish for a few seconds.
func (s *Server) Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("api: listen %s: %w; set api.listen / TIP_API_LISTEN to a free address", addr, err)
	}
	return s.ServeListener(ctx, ln)
}

// shutdownGrace is how long the requests in flight get when the server stops.
const shutdownGrace = 10 * time.Second

// ServeListener is Serve on a listener the caller opened; it closes it.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	if err := s.Refresh(ctx); err != nil {
		ln.Close()
		return err
	}
	limited := newLimitListener(ln, s.cfg.MaxConns, s.cfg.MaxConnsPerClient, s.m, s.refused)
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(s.tls == nil) // h2c with prior knowledge, as curl --http2-prior-knowledge
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.tls,
		Protocols:         protocols,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 100},
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		// net/http logs each failed TLS handshake: bounded like the refusals.
		ErrorLog: log.New(serverLog{s.refused}, "", 0),
	}
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	go s.follow(followCtx)
	errc := make(chan error, 1)
	go func() {
		if s.tls != nil {
			errc <- srv.ServeTLS(limited, "", "")
			return
		}
		errc <- srv.Serve(limited)
	}()
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	s.log.Info("api serving", "url", scheme+"://"+ln.Addr().String()+"/", "routes", s.patterns)
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("api: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

// follow keeps the exports' version current until ctx ends: at every change
// PostgreSQL notifies, and every Poll.
func (s *Server) follow(ctx context.Context) {
	wake := storage.WakeOnListingChanges(ctx, s.store, func(err error) {
		s.refused.note("postgres", "listen", "api: waiting for listing changes", "err", err)
	})
	poll := time.NewTicker(s.cfg.Poll)
	defer poll.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-poll.C:
		}
		// A refresh's loads change the listings in bursts: one read a second
		// at most, so versions (and their Last-Modified) follow at that pace.
		if d := time.Second - time.Since(last); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		last = time.Now()
		if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
			s.refused.note("postgres", "version", "api: reading the exports' version", "err", err)
		}
	}
}

// serverLog takes net/http's own error lines (failed TLS handshakes, mostly)
// into the bounded log.
type serverLog struct{ r *refusals }

func (l serverLog) Write(p []byte) (int, error) {
	l.r.note("net/http", "server", "api: http server", "msg", string(p))
	return len(p), nil
}
