package dnsserve

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// RPZ policy actions (draft-vixie-dnsop-dns-rpz), as the zone's records say them.
const (
	ActionNXDomain = "nxdomain" // CNAME .
	ActionNoData   = "nodata"   // CNAME *.
	ActionPassthru = "passthru" // CNAME rpz-passthru.
	ActionDrop     = "drop"     // CNAME rpz-drop.
	// "local:TARGET" answers with local data: an A or AAAA record for an
	// address, a CNAME to a name (a walled garden).
)

// RPZ is one Response Policy Zone TIP serves.
type RPZ struct {
	Name string // e.g. rpz.tip.
	Selector
	Action string
}

// rpzZone is an RPZ zone's records: its owner names (each with how many
// entries give it), serial and journal of the changes IXFR serves.
type rpzZone struct {
	RPZ
	origin  string   // the zone's name, canonical (lower case, trailing dot)
	action  []dns.RR // the records of an owner, with "@" for the owner's place
	owners  map[string]int
	serial  uint32
	journal []delta
	// pending are the changes since the serial was set: true added, false removed.
	pending map[string]bool
	keep    time.Duration
}

// delta is the change from one serial to the next.
type delta struct {
	from, to uint32
	at       time.Time
	removed  []string
	added    []string
}

func newRPZZone(z RPZ, keep time.Duration) (*rpzZone, error) {
	rz := &rpzZone{RPZ: z, origin: dns.CanonicalName(z.Name), owners: map[string]int{}, pending: map[string]bool{}, keep: keep}
	if _, ok := dns.IsDomainName(rz.origin); !ok {
		return nil, fmt.Errorf("rpz zone %q: not a domain name", z.Name)
	}
	var rdata []string
	switch a := z.Action; {
	case a == "" || a == ActionNXDomain:
		rdata = []string{"CNAME ."}
	case a == ActionNoData:
		rdata = []string{"CNAME *."}
	case a == ActionPassthru:
		rdata = []string{"CNAME rpz-passthru."}
	case a == ActionDrop:
		rdata = []string{"CNAME rpz-drop."}
	case strings.HasPrefix(a, "local:"):
		for t := range strings.SplitSeq(strings.TrimPrefix(a, "local:"), ",") {
			t = strings.TrimSpace(t)
			switch {
			case strings.Contains(t, ":") && !strings.Contains(t, "."):
				rdata = append(rdata, "AAAA "+t)
			case strings.Count(t, ".") == 3 && strings.Trim(t, "0123456789.") == "":
				rdata = append(rdata, "A "+t)
			default:
				rdata = append(rdata, "CNAME "+dns.Fqdn(t))
			}
		}
	default:
		return nil, fmt.Errorf("rpz zone %s: action %q: want nxdomain, nodata, passthru, drop or local:ADDRESS|NAME", z.Name, a)
	}
	for _, r := range rdata {
		rr, err := dns.NewRR("placeholder. 300 IN " + r)
		if err != nil {
			return nil, fmt.Errorf("rpz zone %s: action %q: %v", z.Name, z.Action, err)
		}
		rz.action = append(rz.action, rr)
	}
	return rz, nil
}

// apply adds an entry's owners to the zone (in) or takes them out, and says
// whether the zone's records changed.
func (z *rpzZone) apply(e *entry, in bool) bool {
	changed := false
	for _, o := range owners(e) {
		o = strings.ToLower(o)
		n := z.owners[o]
		switch {
		case in:
			z.owners[o] = n + 1
			if n == 0 {
				z.note(o, true)
				changed = true
			}
		case n == 1:
			delete(z.owners, o)
			z.note(o, false)
			changed = true
		case n > 1:
			z.owners[o] = n - 1
		}
	}
	return changed
}

// note records a change among the pending ones; an owner added and removed
// before a commit cancels out.
func (z *rpzZone) note(owner string, added bool) {
	if was, ok := z.pending[owner]; ok && was != added {
		delete(z.pending, owner)
		return
	}
	z.pending[owner] = added
}

// commit closes the pending delta under a new serial (at least next; serials
// wrap by RFC 1982 arithmetic) and forgets the journal past its keep, or past
// as many records as the zone holds.
func (z *rpzZone) commit(next uint32, now time.Time) {
	if next == z.serial || int32(next-z.serial) < 0 {
		next = z.serial + 1
	}
	d := delta{from: z.serial, to: next, at: now}
	for o, added := range z.pending {
		if added {
			d.added = append(d.added, o)
		} else {
			d.removed = append(d.removed, o)
		}
	}
	slices.Sort(d.added)
	slices.Sort(d.removed)
	clear(z.pending)
	z.serial = next
	if len(d.added)+len(d.removed) > 0 {
		z.journal = append(z.journal, d)
	}
	for len(z.journal) > 0 && now.Sub(z.journal[0].at) > z.keep {
		z.journal = z.journal[1:]
	}
	// Past the zone's own size, a journal costs more than the AXFR it spares.
	total := 0
	for _, d := range z.journal {
		total += len(d.added) + len(d.removed)
	}
	for len(z.journal) > 0 && total > max(len(z.owners), 1000) {
		total -= len(z.journal[0].added) + len(z.journal[0].removed)
		z.journal = z.journal[1:]
	}
}

// since is the journal from serial from to now, when it reaches back that far.
func (z *rpzZone) since(from uint32) ([]delta, bool) {
	if from == z.serial {
		return nil, true
	}
	for i, d := range z.journal {
		if d.from == from {
			return slices.Clone(z.journal[i:]), true
		}
	}
	return nil, false
}

// records are an owner's records in the zone (owner relative, "" the apex).
func (z *rpzZone) records(owner string, ttl uint32) []dns.RR {
	name := z.origin
	if owner != "" {
		name = owner + "." + z.origin
	}
	out := make([]dns.RR, len(z.action))
	for i, a := range z.action {
		rr := dns.Copy(a)
		rr.Header().Name, rr.Header().Ttl = name, ttl
		out[i] = rr
	}
	return out
}

// ownerOf is a query name's owner in the zone, relative ("" the apex), and
// whether the name is in the zone.
func ownerOf(qname, origin string) (string, bool) {
	switch {
	case qname == origin:
		return "", true
	case strings.HasSuffix(qname, "."+origin):
		return strings.TrimSuffix(qname, "."+origin), true
	}
	return "", false
}
