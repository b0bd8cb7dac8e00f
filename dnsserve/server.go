package dnsserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tip-project/tip/storage"
)

// Config is what a server serves and how.
type Config struct {
	RPZ   []RPZ
	DNSBL []DNSBL
	// NS and Hostmaster name the zones' name server and contact in their SOA.
	NS, Hostmaster string
	// TTL is the records' TTL; NegativeTTL the SOA minimum, which caches keep a
	// "not listed" for.
	TTL, NegativeTTL time.Duration
	// Refresh, Retry and Expire are the SOA's timers for secondaries.
	Refresh, Retry, Expire time.Duration
	// JournalKeep is how long the changes stay for IXFR; a secondary further
	// behind transfers the whole zone.
	JournalKeep time.Duration
	// Poll looks for changes this often besides PostgreSQL's notifications.
	Poll time.Duration
	// TransferAllow are the clients that may transfer the RPZ zones.
	TransferAllow []netip.Prefix
	// Notify are the secondaries (host:port) told of every new serial.
	Notify []string
	// TSIG are the keys (name → base64 secret) a transfer must be signed with;
	// none: transfers need no signature, only the ACL.
	TSIG map[string]string
	// RatePerClient bounds the queries one client address may make a second
	// (burst of one second's worth); past it queries are dropped. 0: no bound.
	RatePerClient float64
}

// Store is where the server reads the listings and their changes (storage.DB).
type Store interface {
	ListingSnapshot(ctx context.Context, window time.Duration, fn func(storage.IndexedListing) error) ([]storage.ListingChange, error)
	ListingChanges(ctx context.Context, since time.Time) ([]storage.ListingChange, error)
	ChangedListings(ctx context.Context, seq int64, fn func(storage.IndexedListing) error) error
	SourceWeights(ctx context.Context) ([]storage.SourceWeight, error)
	SuppressedListings(ctx context.Context) (storage.Suppressed, error)
	WaitListingChange(ctx context.Context) error
}

// changeWindow is how far back the server looks for changes it has not
// applied: a load's transaction commits its change at most this long after it
// took its number.
const changeWindow = time.Hour

// Server answers DNS queries for its zones from memory.
type Server struct {
	cfg   Config
	store Store
	log   *slog.Logger
	d     *data
	bl    []*blZone

	applied   map[int64]time.Time // the changes applied, by seq, with when
	updatedAt time.Time           // the last time the index was brought up to date
	updateMu  sync.Mutex          // one update at a time

	limiter *limiter
	m       *metrics
}

// New prepares a server; Load fills its index.
func New(cfg Config, store Store, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.NS == "" {
		cfg.NS = "localhost."
	}
	if cfg.Hostmaster == "" {
		cfg.Hostmaster = "hostmaster." + dns.Fqdn(cfg.NS)
	}
	cfg.NS, cfg.Hostmaster = dns.Fqdn(cfg.NS), dns.Fqdn(cfg.Hostmaster)
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Minute
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = time.Minute
	}
	if cfg.JournalKeep <= 0 {
		cfg.JournalKeep = 24 * time.Hour
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 30 * time.Second
	}
	var rpz []*rpzZone
	var lists []*list
	names := map[string]bool{}
	for _, z := range cfg.RPZ {
		rz, err := newRPZZone(z, cfg.JournalKeep)
		if err != nil {
			return nil, err
		}
		if names[rz.origin] {
			return nil, fmt.Errorf("zone %s is configured twice", rz.origin)
		}
		names[rz.origin] = true
		rpz = append(rpz, rz)
	}
	var bls []*blZone
	for _, z := range cfg.DNSBL {
		bz, err := newBLZone(z)
		if err != nil {
			return nil, err
		}
		if names[bz.origin] {
			return nil, fmt.Errorf("zone %s is configured twice", bz.origin)
		}
		names[bz.origin] = true
		for _, l := range bz.lists {
			l.bit = uint(len(rpz) + len(lists))
			lists = append(lists, l)
		}
		bls = append(bls, bz)
	}
	if len(rpz)+len(lists) > 64 {
		return nil, errors.New("more than 64 RPZ zones and DNSBL lists together")
	}
	if len(rpz)+len(bls) == 0 {
		return nil, errors.New("no zone to serve: configure dns.rpz or dns.dnsbl")
	}
	tsig := map[string]string{}
	for name, secret := range cfg.TSIG {
		tsig[dns.Fqdn(strings.ToLower(name))] = secret
	}
	cfg.TSIG = tsig
	s := &Server{cfg: cfg, store: store, log: log, d: newData(rpz, lists), bl: bls, applied: map[int64]time.Time{}}
	s.limiter = newLimiter(cfg.RatePerClient)
	s.m = newMetrics(s)
	for _, z := range bls {
		z.soaRR = s.soaRR(z.origin)
		z.listedA = s.m.queries.WithLabelValues(z.origin, "A", dns.RcodeToString[dns.RcodeSuccess])
		z.unlistedA = s.m.queries.WithLabelValues(z.origin, "A", dns.RcodeToString[dns.RcodeNameError])
	}
	return s, nil
}

// Registry holds the server's metrics.
func (s *Server) Registry() *prometheus.Registry { return s.m.registry }

// Load builds the index from the store: every active listing, then the
// sources' weights and what is suppressed. The zones' serials start at the
// last change the snapshot holds, so replicas that loaded the same listings
// give the same serials.
func (s *Server) Load(ctx context.Context) error {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	start := time.Now()
	d := newData(s.d.rpz, s.d.lists)
	seen, err := s.store.ListingSnapshot(ctx, changeWindow, func(l storage.IndexedListing) error {
		d.listing(l)
		return nil
	})
	if err != nil {
		return err
	}
	ws, err := s.store.SourceWeights(ctx)
	if err != nil {
		return err
	}
	supp, err := s.store.SuppressedListings(ctx)
	if err != nil {
		return err
	}
	d.setWeights(ws)
	d.supp = supp
	serial := uint32(1)
	applied := map[int64]time.Time{}
	for _, c := range seen {
		applied[c.Seq] = c.At
		serial = max(serial, uint32(c.Seq))
	}
	d.mu.Lock()
	for _, z := range d.rpz {
		clear(z.owners)
		clear(z.pending)
		z.journal = nil
	}
	d.reevaluate(nil)
	for _, z := range d.rpz {
		clear(z.pending)
		z.serial = serial
	}
	d.mu.Unlock()
	s.d = d
	s.applied, s.updatedAt = applied, time.Now()
	s.m.loaded(d)
	s.log.Info("dns index loaded", "listings", len(d.entries), "took", time.Since(start).Round(time.Millisecond), "serial", serial)
	return nil
}

// Update applies the changes recorded since the last update, and re-reads
// what is suppressed when suppressions is set (an analyst's allow or false
// positive may expire without a change). It returns the zones whose serial
// changed.
func (s *Server) Update(ctx context.Context, suppressions bool) ([]string, error) {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	changes, err := s.store.ListingChanges(ctx, time.Now().Add(-changeWindow))
	if err != nil {
		return nil, err
	}
	var todo []storage.ListingChange
	var weights bool
	next := uint32(0)
	for _, c := range changes {
		if _, ok := s.applied[c.Seq]; ok {
			continue
		}
		todo = append(todo, c)
		next = max(next, uint32(c.Seq))
		switch c.Kind {
		case storage.ChangeWeights:
			weights = true
		case storage.ChangeSuppressions:
			suppressions = true
		}
	}
	var ws []storage.SourceWeight
	if weights || len(todo) > 0 { // a new source's name comes with the weights
		if ws, err = s.store.SourceWeights(ctx); err != nil {
			return nil, err
		}
	}
	var supp storage.Suppressed
	if suppressions {
		if supp, err = s.store.SuppressedListings(ctx); err != nil {
			return nil, err
		}
	}
	// The listings changed are read before the lock is taken.
	var listings []storage.IndexedListing
	for _, c := range todo {
		if c.Kind != storage.ChangeListings {
			continue
		}
		if err := s.store.ChangedListings(ctx, c.Seq, func(l storage.IndexedListing) error {
			listings = append(listings, l)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	d := s.d
	d.mu.Lock()
	if ws != nil {
		d.setWeights(ws)
	}
	if suppressions {
		d.supp = supp
	}
	var touched []*entry
	if !weights && !suppressions {
		seen := map[*entry]bool{}
		for _, l := range listings {
			if e := d.listing(l); e != nil && !seen[e] {
				seen[e] = true
				touched = append(touched, e)
			}
		}
		if touched == nil {
			touched = []*entry{}
		}
	} else {
		for _, l := range listings {
			d.listing(l)
		}
	}
	changed := d.reevaluate(touched) // nil: every entry
	now := time.Now()
	var zones []string
	for _, z := range changed {
		z.commit(next, now)
		zones = append(zones, z.origin)
	}
	d.mu.Unlock()
	for _, c := range todo {
		s.applied[c.Seq] = c.At
	}
	for seq, at := range s.applied {
		if now.Sub(at) > 2*changeWindow {
			delete(s.applied, seq)
		}
	}
	s.updatedAt = now
	s.m.updated(d, len(todo))
	if len(todo) > 0 || len(zones) > 0 {
		s.log.Info("dns index updated", "changes", len(todo), "listings", len(listings), "zones", zones)
	}
	return zones, nil
}

// Serve answers on addr (UDP and TCP) until ctx ends, keeping the index up to
// date meanwhile: at every change PostgreSQL notifies, every Poll, and every
// five minutes re-reading what is suppressed.
func (s *Server) Serve(ctx context.Context, addr string) error {
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("dns: listen udp %s: %w", addr, err)
	}
	tcp, err := net.Listen("tcp", udp.LocalAddr().String())
	if err != nil {
		udp.Close()
		return fmt.Errorf("dns: listen tcp %s: %w", addr, err)
	}
	return s.ServeListeners(ctx, udp, tcp)
}

// ServeListeners is Serve on listeners the caller opened.
func (s *Server) ServeListeners(ctx context.Context, udp net.PacketConn, tcp net.Listener) error {
	mux := dns.HandlerFunc(s.ServeDNS)
	servers := []*dns.Server{
		{PacketConn: s.packetConn(udp), Handler: mux, TsigSecret: s.cfg.TSIG, UDPSize: 1232, MsgAcceptFunc: acceptMsg},
		{Listener: tcp, Handler: mux, TsigSecret: s.cfg.TSIG, MsgAcceptFunc: acceptMsg,
			ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }},
	}
	errs := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errs <- srv.ActivateAndServe() }()
	}
	go s.follow(ctx)
	s.log.Info("dns serving", "udp", udp.LocalAddr().String(), "tcp", tcp.Addr().String(), "zones", s.zoneNames())
	select {
	case <-ctx.Done():
	case err := <-errs:
		if err != nil {
			return err
		}
	}
	for _, srv := range servers {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.ShutdownContext(sctx)
		cancel()
	}
	return nil
}

func (s *Server) zoneNames() []string {
	var out []string
	for _, z := range s.d.rpz {
		out = append(out, z.origin)
	}
	for _, z := range s.bl {
		out = append(out, z.origin)
	}
	return out
}

// follow keeps the index up to date until ctx ends, and sends NOTIFY for each
// zone whose serial changed.
func (s *Server) follow(ctx context.Context) {
	wake := storage.WakeOnListingChanges(ctx, s.store, func(err error) {
		s.log.Warn("dns: waiting for listing changes", "err", err)
	})
	poll := time.NewTicker(s.cfg.Poll)
	defer poll.Stop()
	supp := time.NewTicker(5 * time.Minute)
	defer supp.Stop()
	for {
		suppressions := false
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-poll.C:
		case <-supp.C:
			suppressions = true
		}
		zones, err := s.Update(ctx, suppressions)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("dns: update", "err", err)
			}
			continue
		}
		for _, z := range zones {
			s.notifyAll(ctx, z)
		}
	}
}

// soa is a zone's SOA record.
func (s *Server) soa(origin string, serial uint32) *dns.SOA {
	return &dns.SOA{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: uint32(s.cfg.NegativeTTL.Seconds())},
		Ns: s.cfg.NS, Mbox: s.cfg.Hostmaster, Serial: serial,
		Refresh: secs(s.cfg.Refresh, time.Hour), Retry: secs(s.cfg.Retry, 10*time.Minute), Expire: secs(s.cfg.Expire, 7*24*time.Hour),
		Minttl: uint32(s.cfg.NegativeTTL.Seconds())}
}

func (s *Server) ns(origin string) *dns.NS {
	return &dns.NS{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: uint32(s.cfg.TTL.Seconds())}, Ns: s.cfg.NS}
}

func secs(d, def time.Duration) uint32 {
	if d <= 0 {
		d = def
	}
	return uint32(d.Seconds())
}

// serial is an RPZ zone's serial now.
func (s *Server) serial(origin string) (uint32, bool) {
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	for _, z := range s.d.rpz {
		if z.origin == origin {
			return z.serial, true
		}
	}
	return 0, false
}

// Serials are the RPZ zones' serials now, by zone.
func (s *Server) Serials() map[string]uint32 {
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	out := map[string]uint32{}
	for _, z := range s.d.rpz {
		out[z.origin] = z.serial
	}
	return out
}

// Listings is how many listed indicators the index holds.
func (s *Server) Listings() int {
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	return len(s.d.entries)
}

// acceptMsg takes queries and NOTIFYs (answered NOTIMP) like the library's
// default, and leaves the rest to the handler's clear rcodes.
func acceptMsg(dh dns.Header) dns.MsgAcceptAction {
	if dh.Bits&(1<<15) != 0 { // a response
		return dns.MsgIgnore
	}
	if dh.Qdcount != 1 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// sortedOwners lists a zone's owners, for a transfer.
func sortedOwners(z *rpzZone) []string {
	out := make([]string, 0, len(z.owners))
	for o := range z.owners {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}
