package world

import (
	"fmt"
	"net/netip"
)

// TopSitesSize is how many names the lab's top-sites ranking has.
const TopSitesSize = 20000

// TopSites is the lab's popularity ranking (what Tranco is on the real Internet):
// the popular names first, then the other CDN-served sites, then invented benign
// names up to TopSitesSize. No flux, malicious or lame domain is ever on it, nor
// the lab's small ordinary sites (the long tail, where phishing kits get planted
// on compromised WordPress installs), so a blacklist entry matching it is a false
// positive by construction.
func (w *World) TopSites() []string {
	out := make([]string, 0, TopSitesSize)
	seen := map[string]bool{}
	push := func(n string) {
		if !seen[n] && len(out) < TopSitesSize {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, d := range w.Domains {
		if d.Popular {
			push(d.Name)
		}
	}
	for _, d := range w.DomainsOf(CDNDomain) {
		push(d.Name)
	}
	r := w.Rand("top-sites")
	benignTLDs := []string{"com", "org", "net", "de", "co.uk", "fr", "io", "jp"}
	for len(out) < TopSitesSize {
		n := w.name(r, 2+r.IntN(2), benignTLDs[r.IntN(len(benignTLDs))])
		push(n)
	}
	return out
}

// CDNRanges are the address blocks of the lab's CDN providers, as a CDN publishes
// its edge ranges (Cloudflare's ips-v4/ips-v6, Fastly's public-ip-list).
func (w *World) CDNRanges() []netip.Prefix {
	var out []netip.Prefix
	for _, a := range w.ASNsOfKind(CDN) {
		out = append(out, a.V4...)
		out = append(out, a.V6...)
	}
	return out
}

// CDNRangesText renders CDNRanges one prefix a line under a comment header.
func (w *World) CDNRangesText() string {
	s := "# Lab CDN edge ranges (LAB-CDN-A, LAB-CDN-B), one prefix a line.\n"
	for _, a := range w.ASNsOfKind(CDN) {
		s += fmt.Sprintf("# AS%d %s\n", a.Number, a.Name)
		for _, p := range append(append([]netip.Prefix{}, a.V4...), a.V6...) {
			s += p.String() + "\n"
		}
	}
	return s
}
