// Package resolver resolves domains for TIP's fast-flux monitors: one Resolve is
// one look at a domain at one moment — its A and AAAA records, the NS set of its
// zone and those name servers' addresses, each with its TTL, and whether the name
// exists at all.
//
// It asks either recursive resolvers or, iteratively, the servers of the domain's
// own zone, found by following referrals from configured starting servers; the
// latter sees a double-flux zone's NS rotation first hand instead of through a
// cache. Answers are checked before they are believed: a response whose ID,
// question, size or TTLs are wrong is refused with a *RejectError saying why, the
// next server is asked, and records outside the queried name's CNAME chain or a
// referring server's bailiwick are ignored. Queries go out with EDNS0, fall back to
// TCP when truncated, and are rate-limited per server.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults for the zero values of Config.
const (
	DefaultPort       = 53
	DefaultUDPSize    = 1232 // the DNS flag day 2020 size: no IP fragmentation on common paths
	DefaultMaxTCPSize = dns.MaxMsgSize
	DefaultTimeout    = 2 * time.Second
	DefaultAttempts   = 2
	DefaultMaxQueries = 100
	DefaultMaxDepth   = 4
	DefaultMaxCNAME   = 8
	DefaultMaxNSHosts = 8
	DefaultMaxTTL     = 7 * 24 * 3600 // a week, as resolvers cap their caches
)

// Config says where to ask and within which bounds. Exactly one of Recursive and
// Roots is set; every other zero value takes its default.
type Config struct {
	// Recursive lists recursive resolvers (ip:port), asked in this order.
	Recursive []string
	// Roots lists the servers iterative resolution starts from (ip:port): the root
	// servers, a parent zone's servers, or the domain's own authoritative servers.
	Roots []string
	// Port is where name servers learned from referrals and NS records listen.
	Port uint16

	// UDPSize is the EDNS0 UDP payload size advertised; a UDP response over it is
	// refused as oversized. At least 512.
	UDPSize int
	// MaxTCPSize caps a response over TCP; a larger one is refused as oversized.
	MaxTCPSize int
	// Timeout bounds one exchange with one server; ctx bounds the whole Resolve.
	Timeout time.Duration
	// Attempts is how many times a server that timed out or could not be reached is
	// tried for one question. Servers that answered, however badly, are not asked
	// again.
	Attempts int
	// MaxQueries bounds the queries one Resolve sends, retries and TCP included.
	MaxQueries int
	// MaxDepth bounds nested lookups of name-server addresses (glueless delegations,
	// NS hosts without glue).
	MaxDepth int
	// MaxCNAME bounds the length of a CNAME chain.
	MaxCNAME int
	// MaxNSHosts bounds how many NS hosts of a zone get their addresses looked up.
	MaxNSHosts int
	// MaxTTL clamps every TTL reported (seconds).
	MaxTTL uint32

	// Rate limits the queries per second sent to each server address (0: no limit);
	// Burst is how many may go at once (default: one second's worth, at least 1).
	Rate  float64
	Burst int

	// Now stamps observations (default time.Now); the lab passes its own clock.
	Now func() time.Time
	// Log receives refused responses at debug level.
	Log *slog.Logger
}

// Resolver sends and checks DNS queries as its Config says. It is safe for
// concurrent use; the rate limits are shared by all callers.
type Resolver struct {
	cfg       Config
	recursive bool
	servers   []string // Recursive or Roots, normalised
	limit     *limiter
	log       *slog.Logger
}

// SetRate changes the per-server rate limit (queries per second; 0: none) of
// every query from now on, with a second's worth of burst. A worker calls it with
// its share of the rate TIP allows all workers together.
func (r *Resolver) SetRate(rate float64) {
	if rate < 0 {
		rate = 0
	}
	r.limit.setRate(rate, max(1, int(rate)))
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Resolver, error) {
	r := &Resolver{recursive: len(cfg.Recursive) > 0}
	switch {
	case len(cfg.Recursive) > 0 && len(cfg.Roots) > 0:
		return nil, errors.New("resolver: set Recursive or Roots, not both")
	case len(cfg.Recursive) == 0 && len(cfg.Roots) == 0:
		return nil, errors.New("resolver: no servers: set Recursive or Roots")
	}
	for _, s := range slices.Concat(cfg.Recursive, cfg.Roots) {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("resolver: server %q: want ip:port: %w", s, err)
		}
		r.servers = append(r.servers, ap.String())
	}
	if cfg.UDPSize == 0 {
		cfg.UDPSize = DefaultUDPSize
	}
	if cfg.UDPSize < dns.MinMsgSize || cfg.UDPSize > dns.MaxMsgSize {
		return nil, fmt.Errorf("resolver: UDP size %d outside %d..%d", cfg.UDPSize, dns.MinMsgSize, dns.MaxMsgSize)
	}
	if cfg.Rate < 0 || cfg.Burst < 0 {
		return nil, errors.New("resolver: negative rate limit")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxTCPSize, DefaultMaxTCPSize)
	cfg.MaxTCPSize = min(cfg.MaxTCPSize, dns.MaxMsgSize)
	def(&cfg.Attempts, DefaultAttempts)
	def(&cfg.MaxQueries, DefaultMaxQueries)
	def(&cfg.MaxDepth, DefaultMaxDepth)
	def(&cfg.MaxCNAME, DefaultMaxCNAME)
	def(&cfg.MaxNSHosts, DefaultMaxNSHosts)
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(cfg.Rate))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r.log = cfg.Log
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.cfg = cfg
	r.limit = newLimiter(cfg.Rate, cfg.Burst)
	return r, nil
}

// Status is the outcome of a look at a domain: the response code of the answer
// to its A query.
type Status uint8

const (
	NoError  Status = iota // the name exists (it may still have no addresses)
	NXDomain               // the name does not exist: a result, not an error
	ServFail               // every server failed to answer for the zone
	Refused                // every server refused: a lame delegation
)

var statusNames = [...]string{"NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", s)
}

// MarshalText writes the status as its DNS mnemonic, so JSON stays readable.
func (s Status) MarshalText() ([]byte, error) {
	if int(s) >= len(statusNames) {
		return nil, fmt.Errorf("resolver: unknown status %d", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a DNS mnemonic written by MarshalText.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if strings.EqualFold(string(b), n) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("resolver: unknown status %q", b)
}

func statusOf(rcode int) (Status, bool) {
	switch rcode {
	case dns.RcodeSuccess:
		return NoError, true
	case dns.RcodeNameError:
		return NXDomain, true
	case dns.RcodeServerFailure:
		return ServFail, true
	case dns.RcodeRefused:
		return Refused, true
	}
	return 0, false
}

// Addr is an address record: A or AAAA, with its TTL in seconds.
type Addr struct {
	IP  netip.Addr
	TTL uint32
}

// NameServer is one NS record of a zone and its host's addresses.
type NameServer struct {
	Name  string // lower case, no trailing dot
	TTL   uint32
	Addrs []Addr // from glue when the NS answer carried it, else looked up
}

// CNAME is one step of an alias chain.
type CNAME struct {
	Name, Target string // lower case, no trailing dot
	TTL          uint32
}

// Observation is one look at a domain. Names are lower case without the trailing
// dot; TTLs are as received, clamped to Config.MaxTTL.
type Observation struct {
	Domain string
	Time   time.Time // when the look began, by Config.Now
	Status Status
	// CNAMEs is the alias chain from Domain to the name holding the addresses.
	CNAMEs []CNAME
	A      []Addr
	AAAA   []Addr
	// Zone is the zone whose name servers NS lists: Domain or the nearest zone
	// above it.
	Zone string
	NS   []NameServer
	// Server answered the A query (ip:port).
	Server string
	// Queries counts the queries sent, retries and TCP fallbacks included.
	Queries int
	// Warnings says which parts failed while the A answer stood (an AAAA lookup
	// that timed out, an NS host without addresses).
	Warnings []string
}

// Resolve looks at domain now: A, then (while the name exists) AAAA, the NS set of
// its zone and the addresses of those name servers. NXDOMAIN, SERVFAIL and
// REFUSED are results, in Status. An error means the A question got no usable
// answer: every server timed out or was refused (a *FailedError lists why), the
// query budget ran out, or ctx ended; the Observation then holds what was learned,
// and Queries.
func (r *Resolver) Resolve(ctx context.Context, domain string) (Observation, error) {
	name, err := fqdn(domain)
	if err != nil {
		return Observation{}, err
	}
	obs := Observation{Domain: bare(name), Time: r.cfg.Now()}
	s := r.newRun()

	a, err := s.records(ctx, name, dns.TypeA)
	obs.Queries = s.queries
	if err != nil {
		return obs, fmt.Errorf("resolver: %s A: %w", obs.Domain, err)
	}
	obs.Status, obs.Server, obs.CNAMEs, obs.A = a.status, a.server, a.chain, a.addrs(r.cfg.MaxTTL)
	if obs.Status != NoError {
		return obs, nil
	}
	if aaaa, err := s.records(ctx, name, dns.TypeAAAA); err != nil {
		obs.Warnings = append(obs.Warnings, fmt.Sprintf("AAAA: %v", err))
	} else {
		obs.AAAA = aaaa.addrs(r.cfg.MaxTTL)
	}
	zone, ns, warnings, err := s.nameServers(ctx, name)
	obs.Warnings = append(obs.Warnings, warnings...)
	if err != nil {
		obs.Warnings = append(obs.Warnings, fmt.Sprintf("NS: %v", err))
	}
	obs.Zone, obs.NS = bare(zone), ns
	obs.Queries = s.queries
	return obs, nil
}

// fqdn checks a domain name and returns it lower case with the trailing dot.
func fqdn(domain string) (string, error) {
	name := dns.Fqdn(strings.ToLower(strings.TrimSpace(domain)))
	if _, ok := dns.IsDomainName(name); !ok || name == "." {
		return "", fmt.Errorf("resolver: %q is not a domain name", domain)
	}
	return name, nil
}

// bare is a name as observations spell it: lower case, no trailing dot.
func bare(name string) string {
	if name == "." {
		return name
	}
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

func (r *Resolver) clampTTL(ttl uint32) uint32 { return min(ttl, r.cfg.MaxTTL) }
