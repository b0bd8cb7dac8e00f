// Package flux scores and tracks fast-flux domains: what one resolution of a domain
// saw (Observation), the published detectors (Holz et al.'s flux-score, FluxBuster's
// prefilter and /16 diversity), a triage verdict from two resolutions a TTL apart,
// a CDN allowlist, and compact per-domain metrics a months-long monitor keeps.
// It is plain Go: no network, no Temporal, no DNS library.
package flux

import (
	"net/netip"
	"slices"
	"time"

	"github.com/tip-project/tip/ipasn"
)

// Status is how a resolution ended.
type Status string

const (
	NoError  Status = "NOERROR"  // the name exists (an empty answer is NODATA)
	NXDomain Status = "NXDOMAIN" // the name does not exist (taken down, expired)
	ServFail Status = "SERVFAIL" // the servers could not answer (zone gone, lame)
	Failed   Status = "error"    // no usable answer: timeout, refused, a rejected reply
)

// Record is one address in an answer, with its TTL and, once annotated, its origin.
type Record struct {
	Addr    netip.Addr `json:"addr"`
	TTL     uint32     `json:"ttl,omitempty"`
	ASN     uint32     `json:"asn,omitempty"` // origin AS; 0 when unknown or not annotated
	Country string     `json:"cc,omitempty"`  // the origin AS's country
}

// NameServer is one NS record of the domain and the addresses its host resolved to.
type NameServer struct {
	Name  string   `json:"name"` // lower case, no trailing dot
	TTL   uint32   `json:"ttl,omitempty"`
	Addrs []Record `json:"addrs,omitempty"`
}

// Observation is what one resolution of a domain saw at one time. It is plain data,
// so it travels through workflow state and into PostgreSQL as JSON.
type Observation struct {
	Domain string       `json:"domain"`
	At     time.Time    `json:"at"`
	Status Status       `json:"status"`
	Error  string       `json:"error,omitempty"` // why, when Status is Failed (or a detail)
	A      []Record     `json:"a,omitempty"`
	AAAA   []Record     `json:"aaaa,omitempty"`
	NS     []NameServer `json:"ns,omitempty"`
	// Dropped counts the records (A, AAAA, NS and NS addresses) the answers held
	// past the observation's bounds (Bound, Shed): seen, but not kept.
	Dropped int `json:"dropped,omitempty"`
	// NoASN says why the addresses carry no origin AS: the ASN table was not to be
	// had when the observation was annotated. Their ASN 0 means unknown then, not
	// unrouted, and what counts ASNs leaves the observation out.
	NoASN string `json:"no_asn,omitempty"`
}

// Answered reports whether the observation holds addresses of a live name.
func (o *Observation) Answered() bool {
	return o.Status == NoError && len(o.A)+len(o.AAAA) > 0
}

// Addrs lists the A and AAAA addresses, A first, in answer order.
func (o *Observation) Addrs() []netip.Addr {
	out := make([]netip.Addr, 0, len(o.A)+len(o.AAAA))
	for _, r := range o.A {
		out = append(out, r.Addr)
	}
	for _, r := range o.AAAA {
		out = append(out, r.Addr)
	}
	return out
}

// MinTTL is the lowest A or AAAA TTL of the observation; ok is false without records.
func (o *Observation) MinTTL() (ttl uint32, ok bool) {
	for _, rs := range [][]Record{o.A, o.AAAA} {
		for _, r := range rs {
			if !ok || r.TTL < ttl {
				ttl, ok = r.TTL, true
			}
		}
	}
	return ttl, ok
}

// nsNames is the sorted set of NS host names.
func (o *Observation) nsNames() []string {
	out := make([]string, 0, len(o.NS))
	for _, ns := range o.NS {
		out = append(out, ns.Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// nsAddrs is the sorted set of the NS hosts' addresses.
func (o *Observation) nsAddrs() []netip.Addr {
	var out []netip.Addr
	for _, ns := range o.NS {
		for _, r := range ns.Addrs {
			out = append(out, r.Addr)
		}
	}
	return sortedAddrs(out)
}

// ASLookup finds the origin AS of an address; *ipasn.Table is one.
type ASLookup interface {
	Lookup(netip.Addr) (ipasn.AS, bool)
}

// Annotate fills in the origin ASN and country of every address in the observation
// (answers and name servers). Scoring and metrics read these annotations, so a
// monitor annotates in the activity that resolves and keeps the table out of
// workflow code. A nil table leaves the observation as it is.
func (o *Observation) Annotate(t ASLookup) {
	if t == nil {
		return
	}
	o.NoASN = ""
	annotate := func(rs []Record) {
		for i := range rs {
			if as, ok := t.Lookup(rs[i].Addr); ok {
				rs[i].ASN, rs[i].Country = as.Number, as.Country
			} else {
				rs[i].ASN, rs[i].Country = 0, ""
			}
		}
	}
	annotate(o.A)
	annotate(o.AAAA)
	for i := range o.NS {
		annotate(o.NS[i].Addrs)
	}
}

// clone copies the observation deeply, so annotating the copy leaves the caller's alone.
func (o Observation) clone() Observation {
	o.A, o.AAAA = slices.Clone(o.A), slices.Clone(o.AAAA)
	ns := make([]NameServer, len(o.NS))
	for i, n := range o.NS {
		n.Addrs = slices.Clone(n.Addrs)
		ns[i] = n
	}
	if o.NS != nil {
		o.NS = ns
	}
	return o
}

// sortedAddrs sorts and deduplicates addresses in place.
func sortedAddrs(a []netip.Addr) []netip.Addr {
	slices.SortFunc(a, netip.Addr.Compare)
	return slices.Compact(a)
}
