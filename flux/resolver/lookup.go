package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// FailedError says that no server gave a usable answer to one question, and why
// each failed. errors.Is sees through it to the reasons (ErrIDMismatch, ...).
type FailedError struct {
	Name   string
	Type   uint16
	Errors []error // one per attempt, in order
}

func (e *FailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "resolver: no usable answer for %s %s", e.Name, dns.Type(e.Type))
	for i, err := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *FailedError) Unwrap() []error { return e.Errors }

// run is the state of one Resolve: its query budget and, when iterative, the zone
// cuts learned so far, so AAAA and NS questions start where A left off.
type run struct {
	r       *Resolver
	queries int
	cuts    map[string][]string // zone (FQDN, lower case) → its servers (ip:port)
	busy    map[string]bool     // NS hosts whose addresses are being looked up
}

func (r *Resolver) newRun() *run {
	return &run{r: r, cuts: map[string][]string{".": r.servers}, busy: map[string]bool{}}
}

func (s *run) spend() error {
	if s.queries >= s.r.cfg.MaxQueries {
		return fmt.Errorf("%w (%d)", ErrBudget, s.r.cfg.MaxQueries)
	}
	return nil
}

// kind is what a response means for the question it answers.
type kind int

const (
	kindAnswer   kind = iota // NOERROR with records for the name (or its CNAME)
	kindNoData               // NOERROR, the name exists, nothing of that type
	kindNXDomain             // the name does not exist
	kindReferral             // iterative: go ask the servers of a zone below
	kindServFail
	kindRefused
	kindLame // unusable: an upward referral, an empty non-authoritative answer, an odd rcode
)

// answer is a response accepted for a question.
type answer struct {
	msg    *dns.Msg
	server string
	zone   string // the zone the server was asked as: its bailiwick
	kind   kind
}

// lookup answers one question: from the recursive resolvers, or iteratively from
// the deepest zone cut known, following referrals down. depth counts nested
// lookups of name-server addresses.
func (s *run) lookup(ctx context.Context, name string, qtype uint16, depth int) (answer, error) {
	zone, servers := s.closestCut(name)
	for {
		a, err := s.ask(ctx, servers, zone, name, qtype)
		if err != nil || a.kind != kindReferral {
			return a, err
		}
		child, hosts, glue := referral(a.msg, zone, name)
		next := s.serverAddrs(hosts, glue)
		if len(next) == 0 {
			next, err = s.glueless(ctx, hosts, depth)
			if err != nil {
				return answer{}, fmt.Errorf("servers of %s: %w", child, err)
			}
		}
		s.cuts[child] = next
		zone, servers = child, next
	}
}

// closestCut finds the deepest known zone holding name.
func (s *run) closestCut(name string) (string, []string) {
	if s.r.recursive {
		return ".", s.r.servers
	}
	for _, i := range dns.Split(name) {
		if servers, ok := s.cuts[name[i:]]; ok {
			return name[i:], servers
		}
	}
	return ".", s.cuts["."]
}

// ask puts the question to servers in turn until one answers usably. Servers that
// could not be reached are tried again, up to Config.Attempts times; those that
// answered badly are not. When every server answered SERVFAIL or REFUSED, that
// answer is the result; otherwise a *FailedError lists what went wrong.
func (s *run) ask(ctx context.Context, servers []string, zone, name string, qtype uint16) (answer, error) {
	var errs []error
	var soft *answer
	todo := servers
	for attempt := 0; attempt < s.r.cfg.Attempts && len(todo) > 0; attempt++ {
		var again []string
		for _, srv := range todo {
			if err := done(ctx); err != nil {
				return answer{}, err
			}
			m, sent, err := s.r.exchange(ctx, srv, name, qtype, s.spend)
			s.queries += sent
			if errors.Is(err, ErrBudget) {
				return answer{}, err
			}
			if err != nil {
				if cerr := done(ctx); cerr != nil {
					return answer{}, fmt.Errorf("%w: %v", cerr, err)
				}
				errs = append(errs, err)
				var rej *RejectError
				if !errors.As(err, &rej) {
					again = append(again, srv)
				}
				continue
			}
			a := answer{msg: m, server: srv, zone: zone, kind: s.classify(m, zone, name, qtype)}
			switch a.kind {
			case kindServFail, kindRefused:
				if soft == nil {
					soft = &a
				}
				errs = append(errs, fmt.Errorf("%s: %s", srv, dns.RcodeToString[m.Rcode]))
				continue
			case kindLame:
				errs = append(errs, &RejectError{Server: srv, Reason: lameReason(m), Detail: fmt.Sprintf("asked as server of %s", zone)})
				continue
			}
			return a, nil
		}
		todo = again
	}
	if soft != nil {
		return *soft, nil
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no servers to ask"))
	}
	return answer{}, &FailedError{Name: name, Type: qtype, Errors: errs}
}

func lameReason(m *dns.Msg) error {
	if _, ok := statusOf(m.Rcode); !ok {
		return fmt.Errorf("%w %s", ErrRcode, dns.RcodeToString[m.Rcode])
	}
	return ErrLame
}

// classify says what m means for the question name/qtype put to a server of zone.
func (s *run) classify(m *dns.Msg, zone, name string, qtype uint16) kind {
	switch m.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return kindNXDomain
	case dns.RcodeServerFailure:
		return kindServFail
	case dns.RcodeRefused:
		return kindRefused
	default:
		return kindLame
	}
	for _, rr := range m.Answer {
		h := rr.Header()
		if strings.EqualFold(h.Name, name) && (h.Rrtype == qtype || h.Rrtype == dns.TypeCNAME) {
			return kindAnswer
		}
	}
	if s.r.recursive {
		return kindNoData
	}
	if child, _, _ := referral(m, zone, name); child != "" {
		return kindReferral
	}
	if m.Authoritative || hasSOA(m.Ns, zone) {
		return kindNoData
	}
	// Not authoritative and no way down: an upward or sideways referral, or nothing.
	return kindLame
}

func hasSOA(rrs []dns.RR, zone string) bool {
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeSOA && dns.IsSubDomain(zone, rr.Header().Name) {
			return true
		}
	}
	return false
}

// referral reads a delegation from m, put to a server of zone about name: the child
// zone (strictly below zone, holding name), its NS host names, and the glue within
// zone's bailiwick. Glue for names outside it is ignored: a server may only vouch
// for addresses in its own zone. child is "" when m is not a referral.
func referral(m *dns.Msg, zone, name string) (child string, hosts []string, glue map[string][]netip.Addr) {
	if len(m.Answer) > 0 || m.Rcode != dns.RcodeSuccess {
		return "", nil, nil
	}
	for _, rr := range m.Ns {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		owner := strings.ToLower(ns.Hdr.Name)
		if child == "" {
			if owner == zone || !dns.IsSubDomain(zone, owner) || !dns.IsSubDomain(owner, name) {
				continue
			}
			child = owner
		}
		if owner == child {
			hosts = append(hosts, strings.ToLower(dns.Fqdn(ns.Ns)))
		}
	}
	if child == "" {
		return "", nil, nil
	}
	glue = map[string][]netip.Addr{}
	for _, h := range hosts {
		glue[h] = nil
	}
	for _, rr := range m.Extra {
		owner := strings.ToLower(rr.Header().Name)
		ip, ok := addrOf(rr)
		if _, host := glue[owner]; !ok || !host || !dns.IsSubDomain(zone, owner) {
			continue
		}
		glue[owner] = append(glue[owner], ip)
	}
	return child, hosts, glue
}

// serverAddrs lists the glue addresses of hosts as ip:port, in the order of hosts.
func (s *run) serverAddrs(hosts []string, glue map[string][]netip.Addr) []string {
	var out []string
	for _, h := range hosts {
		for _, ip := range glue[h] {
			out = append(out, netip.AddrPortFrom(ip, s.r.cfg.Port).String())
		}
	}
	return out
}

// glueless looks up the addresses of a delegation's NS hosts, in order, until two
// hosts have given some (more would spend queries on servers seldom needed).
func (s *run) glueless(ctx context.Context, hosts []string, depth int) ([]string, error) {
	if depth+1 > s.r.cfg.MaxDepth {
		return nil, ErrDepth
	}
	var out []string
	var errs []error
	found := 0
	for _, h := range hosts {
		if found == 2 || ctx.Err() != nil {
			break
		}
		if s.busy[h] {
			continue // already being looked up further up: a delegation loop
		}
		s.busy[h] = true
		ips, err := s.hostAddrs(ctx, h, depth+1)
		delete(s.busy, h)
		if errors.Is(err, ErrBudget) {
			return nil, err
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h, err))
			continue
		}
		for _, a := range ips {
			out = append(out, netip.AddrPortFrom(a.IP, s.r.cfg.Port).String())
		}
		if len(ips) > 0 {
			found++
		}
	}
	if len(out) == 0 {
		if len(errs) == 0 {
			errs = append(errs, errors.New("no addresses"))
		}
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// hostAddrs looks up a host's A records, and its AAAA records only when it has no
// A records (server addresses, not observations: one family is enough to reach
// it). When the A lookup fails, the path to the host's zone is broken and AAAA
// would fail the same way.
func (s *run) hostAddrs(ctx context.Context, host string, depth int) ([]Addr, error) {
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		res, err := s.recordsAt(ctx, host, qtype, depth)
		if err != nil {
			return nil, err
		}
		if addrs := res.addrs(s.r.cfg.MaxTTL); len(addrs) > 0 {
			return addrs, nil
		}
	}
	return nil, nil
}

// result is the outcome of one question with its CNAME chain followed.
type result struct {
	status Status
	server string // answered the last question of the chain
	chain  []CNAME
	rrs    []dns.RR // of the asked type, owned by the end of the chain
}

func (res result) addrs(maxTTL uint32) []Addr {
	var out []Addr
	for _, rr := range res.rrs {
		if ip, ok := addrOf(rr); ok {
			out = append(out, Addr{IP: ip, TTL: min(rr.Header().Ttl, maxTTL)})
		}
	}
	return out
}

// records answers name/qtype, following its CNAME chain across answers.
func (s *run) records(ctx context.Context, name string, qtype uint16) (result, error) {
	return s.recordsAt(ctx, name, qtype, 0)
}

// recordsAt is records at a nesting depth. Within an answer only records owned by
// a name of the chain, inside the answering server's bailiwick, are believed; the
// rest is ignored. A chain whose end is not in the answer is asked for anew.
func (s *run) recordsAt(ctx context.Context, name string, qtype uint16, depth int) (result, error) {
	var res result
	seen := map[string]bool{name: true}
	current := name
	for {
		a, err := s.lookup(ctx, current, qtype, depth)
		if err != nil {
			return res, err
		}
		res.server = a.server
		res.status, _ = statusOf(a.msg.Rcode)
		start := current
		for {
			if res.rrs = owned(a.msg.Answer, current, qtype, a.zone); len(res.rrs) > 0 {
				return res, nil
			}
			cn := ownedCNAME(a.msg.Answer, current, a.zone)
			if cn == nil {
				break
			}
			target := strings.ToLower(dns.Fqdn(cn.Target))
			if seen[target] || len(res.chain) >= s.r.cfg.MaxCNAME {
				return res, &RejectError{Server: a.server, Reason: ErrCNAMELoop,
					Detail: fmt.Sprintf("%s after %d steps", target, len(res.chain))}
			}
			seen[target] = true
			res.chain = append(res.chain, CNAME{Name: bare(current), Target: bare(target), TTL: min(cn.Hdr.Ttl, s.r.cfg.MaxTTL)})
			current = target
		}
		if current == start || a.kind != kindAnswer || res.status != NoError {
			return res, nil // the end of the chain, possibly with nothing of that type
		}
	}
}

// owned returns the records of type qtype owned by name within zone's bailiwick.
func owned(rrs []dns.RR, name string, qtype uint16, zone string) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		h := rr.Header()
		if h.Rrtype == qtype && h.Class == dns.ClassINET && strings.EqualFold(h.Name, name) && dns.IsSubDomain(zone, name) {
			out = append(out, rr)
		}
	}
	return out
}

func ownedCNAME(rrs []dns.RR, name, zone string) *dns.CNAME {
	for _, rr := range owned(rrs, name, dns.TypeCNAME, zone) {
		return rr.(*dns.CNAME)
	}
	return nil
}

func addrOf(rr dns.RR) (netip.Addr, bool) {
	switch rr := rr.(type) {
	case *dns.A:
		ip, ok := netip.AddrFromSlice(rr.A.To4())
		return ip, ok && rr.Hdr.Class == dns.ClassINET
	case *dns.AAAA:
		ip, ok := netip.AddrFromSlice(rr.AAAA.To16())
		return ip, ok && rr.Hdr.Class == dns.ClassINET
	}
	return netip.Addr{}, false
}

// nameServers finds the NS set of the zone holding name, walking up from name: a
// name that is not a zone apex answers NS with no records and, usually, its zone's
// SOA. NS hosts come with their addresses, from glue in the zone's bailiwick or
// looked up; hosts without addresses are reported in warnings.
func (s *run) nameServers(ctx context.Context, name string) (zone string, servers []NameServer, warnings []string, err error) {
	zone = name
	for zone != "" {
		a, err := s.lookup(ctx, zone, dns.TypeNS, 0)
		if err != nil {
			return "", nil, nil, err
		}
		if a.msg.Rcode != dns.RcodeSuccess {
			return "", nil, nil, fmt.Errorf("%s NS: %s", zone, dns.RcodeToString[a.msg.Rcode])
		}
		if rrs := owned(a.msg.Answer, zone, dns.TypeNS, a.zone); len(rrs) > 0 {
			servers, warnings = s.nsHosts(ctx, rrs, a)
			return zone, servers, warnings, nil
		}
		next := parent(zone)
		for _, rr := range a.msg.Ns {
			h := rr.Header()
			if soa := strings.ToLower(h.Name); h.Rrtype == dns.TypeSOA && soa != zone && dns.IsSubDomain(soa, zone) {
				next = soa
			}
		}
		zone = next
	}
	return "", nil, nil, errors.New("no NS records up to the root")
}

func parent(name string) string {
	if name == "." {
		return ""
	}
	if i, end := dns.NextLabel(name, 0); !end {
		return name[i:]
	}
	return "."
}

// nsHosts turns an NS answer into name servers with addresses.
func (s *run) nsHosts(ctx context.Context, rrs []dns.RR, a answer) ([]NameServer, []string) {
	var out []NameServer
	var warnings []string
	// The glue by owner, read once: a 64 KB answer may hold thousands of NS
	// records and of address records, and matching each against each would cost
	// millions of comparisons.
	glue := map[string][]Addr{}
	for _, g := range a.msg.Extra {
		if ip, ok := addrOf(g); ok {
			owner := strings.ToLower(g.Header().Name)
			glue[owner] = append(glue[owner], Addr{IP: ip, TTL: min(g.Header().Ttl, s.r.cfg.MaxTTL)})
		}
	}
	for i, rr := range rrs {
		ns := rr.(*dns.NS)
		host := strings.ToLower(dns.Fqdn(ns.Ns))
		srv := NameServer{Name: bare(host), TTL: min(ns.Hdr.Ttl, s.r.cfg.MaxTTL)}
		if dns.IsSubDomain(a.zone, host) {
			srv.Addrs = slices.Clone(glue[host])
		}
		if len(srv.Addrs) == 0 && i < s.r.cfg.MaxNSHosts {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
				res, err := s.recordsAt(ctx, host, qtype, 1)
				if err != nil {
					warnings = append(warnings, fmt.Sprintf("NS host %s %s: %v", srv.Name, dns.Type(qtype), err))
					continue
				}
				srv.Addrs = append(srv.Addrs, res.addrs(s.r.cfg.MaxTTL)...)
			}
		}
		if len(srv.Addrs) == 0 {
			warnings = append(warnings, fmt.Sprintf("NS host %s: no addresses", srv.Name))
		}
		out = append(out, srv)
	}
	return out, warnings
}
