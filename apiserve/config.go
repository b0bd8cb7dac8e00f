package apiserve

import (
	"errors"
	"fmt"
	"time"

	"github.com/tip-project/tip/config"
)

// Config is how a server serves; New gives a zero field its default.
type Config struct {
	// TLSCert and TLSKey are PEM files; with both set the server answers HTTPS only.
	TLSCert, TLSKey string
	// MaxConns bounds the open connections, MaxConnsPerClient those of one
	// client address: past them a new connection is closed at once. 0: no bound.
	MaxConns, MaxConnsPerClient int
	// RatePerToken is the requests a second one token may make on average and
	// Burst how many at once (a token bucket a replica keeps per token); past
	// them the answer is 429. 0: no bound.
	RatePerToken float64
	Burst        int
	// MaxBodyBytes bounds a request's body; MaxLookupValues the values of one lookup.
	MaxBodyBytes    int64
	MaxLookupValues int
	// ReadHeaderTimeout and ReadTimeout bound reading a request's head and the
	// whole request; WriteTimeout bounds writing a response, and each write of
	// a streamed export; IdleTimeout closes a kept-alive connection left unused.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MinScore is the exports' min_score when a request names none, and the
	// MISP feed's.
	MinScore float64
	// MISPCache is the folder the MISP feed is generated in; empty: a
	// temporary folder, removed by Close.
	MISPCache string
	// Poll reads the exports' version this often besides PostgreSQL's
	// notifications (an analyst's override expires without one).
	Poll time.Duration
	// LogEvery bounds the log: one line a refused client and reason per LogEvery.
	LogEvery time.Duration
	// Build names the binary; it is part of every ETag, so an upgrade that
	// changes how an export is written changes its ETag.
	Build string
}

// FromConfig is the server's Config from TIP's configuration (api section).
func FromConfig(c config.API) (Config, error) {
	cfg := Config{TLSCert: c.TLSCert, TLSKey: c.TLSKey, MaxConns: c.MaxConns, MaxConnsPerClient: c.MaxConnsPerClient,
		RatePerToken: c.RatePerToken, Burst: c.Burst, MaxBodyBytes: int64(c.MaxBodyBytes), MaxLookupValues: c.MaxLookupValues,
		ReadHeaderTimeout: c.ReadHeaderTimeout, ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout, IdleTimeout: c.IdleTimeout,
		MinScore: c.MinScore, MISPCache: c.MISPCache, Poll: c.Poll}
	switch {
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return cfg, errors.New("api.tls_cert and api.tls_key: set both (HTTPS) or neither (HTTP)")
	case c.MaxConns < 0 || c.MaxConnsPerClient < 0:
		return cfg, fmt.Errorf("api.max_conns %d, api.max_conns_per_client %d: want 0 (no bound) or more", c.MaxConns, c.MaxConnsPerClient)
	case c.RatePerToken < 0:
		return cfg, fmt.Errorf("api.rate_per_token %v: want 0 (no bound) or more", c.RatePerToken)
	case c.RatePerToken > 0 && c.Burst < 1:
		return cfg, fmt.Errorf("api.burst %d: want 1 or more", c.Burst)
	case c.MaxBodyBytes < 1024:
		return cfg, fmt.Errorf("api.max_body_bytes %d: want 1024 or more", c.MaxBodyBytes)
	case c.MaxLookupValues < 1:
		return cfg, fmt.Errorf("api.max_lookup_values %d: want 1 or more", c.MaxLookupValues)
	case c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0:
		return cfg, errors.New("api.read_header_timeout, read_timeout, write_timeout and idle_timeout must be positive")
	case c.MinScore < 0 || c.MinScore > 1:
		return cfg, fmt.Errorf("api.min_score %v: want 0 to 1", c.MinScore)
	case c.Poll < time.Second:
		return cfg, fmt.Errorf("api.poll %s: want a second or more", c.Poll)
	}
	return cfg, nil
}

// withDefaults gives each zero field its default.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, 5*time.Second)
	def(&c.ReadTimeout, 30*time.Second)
	def(&c.WriteTimeout, time.Minute)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.Poll, 30*time.Second)
	def(&c.LogEvery, time.Minute)
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxLookupValues <= 0 {
		c.MaxLookupValues = 1000
	}
	if c.RatePerToken > 0 && c.Burst < 1 {
		c.Burst = max(1, int(c.RatePerToken))
	}
	return c
}
