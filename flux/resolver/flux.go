package resolver

import (
	"context"
	"strings"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/textcap"
)

// Flux is the observation as the flux package scores and stores it, within its
// bounds (flux.Observation.Bound). REFUSED (a lame delegation) counts as
// SERVFAIL there: the servers could not answer. Warnings become the
// observation's detail.
func (o Observation) Flux() flux.Observation {
	out := flux.Observation{Domain: o.Domain, At: o.Time.UTC(), Error: strings.Join(o.Warnings, "; ")}
	switch o.Status {
	case NoError:
		out.Status = flux.NoError
	case NXDomain:
		out.Status = flux.NXDomain
	default:
		out.Status = flux.ServFail
	}
	records := func(as []Addr) []flux.Record {
		var rs []flux.Record
		for _, a := range as {
			rs = append(rs, flux.Record{Addr: a.IP, TTL: a.TTL})
		}
		return rs
	}
	out.A, out.AAAA = records(o.A), records(o.AAAA)
	for _, ns := range o.NS {
		out.NS = append(out.NS, flux.NameServer{Name: ns.Name, TTL: ns.TTL, Addrs: records(ns.Addrs)})
	}
	out.Bound()
	return out
}

// Observe resolves domain as Resolve does and returns what the flux package
// scores. A resolution without a usable answer is an observation of status
// error that says why, not a failure: a monitor records it and goes on.
func (r *Resolver) Observe(ctx context.Context, domain string) (flux.Observation, error) {
	o, err := r.Resolve(ctx, domain)
	fo := o.Flux()
	if err != nil {
		if ctx.Err() != nil {
			return fo, ctx.Err()
		}
		fo.Domain, fo.Status, fo.Error = domain, flux.Failed, textcap.Cap(err.Error(), flux.MaxDetail)
		if fo.At.IsZero() {
			fo.At = r.cfg.Now().UTC()
		}
	}
	return fo, nil
}

// RootServers are the IPv4 addresses of the Internet's 13 root name servers
// (a to m.root-servers.net), where iterative resolution starts by default.
var RootServers = []string{
	"198.41.0.4:53", "170.247.170.2:53", "192.33.4.12:53", "199.7.91.13:53", "192.203.230.10:53", "192.5.5.241:53",
	"192.112.36.4:53", "198.97.190.53:53", "192.36.148.17:53", "192.58.128.30:53", "193.0.14.129:53", "199.7.83.42:53",
	"202.12.27.33:53",
}
