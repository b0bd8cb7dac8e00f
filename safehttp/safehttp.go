// Package safehttp is TIP's HTTP client for what it downloads from outside:
// feeds, allowlists, spam archives, ASN tables. A catalog names where each
// lives, but what answers there (a redirect, a DNS answer) is not TIP's to
// trust, so the client
//
//   - connects to public addresses only: the check runs on the address each
//     connection dials (net.Dialer.Control), after name resolution, so neither
//     a redirect nor a DNS answer that changes between a check and the dial
//     (rebinding) reaches loopback, private, link-local (the cloud metadata
//     service at 169.254.169.254), multicast or other non-public addresses,
//     IPv4-mapped, NAT64 and 6to4 forms included, unless Options.AllowPrivate
//     (the lab's feeds are on loopback), which still keeps the cloud metadata
//     service out;
//   - follows at most MaxRedirects redirects, and none from https to http;
//   - bounds dialing, the TLS handshake and the wait for the response header;
//     the body takes what the caller's context allows;
//   - uses no proxy. HTTP_PROXY and its kin are ignored: through a proxy the
//     check would apply to the proxy's address, and the proxy would connect
//     wherever a redirect pointed.
package safehttp

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Limits of every client. The source's own timeout (its context) bounds the
// whole download; these bound each step that could otherwise hang on a server
// that accepts a connection and says nothing.
const (
	MaxRedirects          = 5
	DialTimeout           = 30 * time.Second
	TLSHandshakeTimeout   = 30 * time.Second
	ResponseHeaderTimeout = 2 * time.Minute
)

// Options configure a client.
type Options struct {
	// AllowPrivate lets the client connect to loopback, private, link-local and
	// other non-public addresses: a lab on 127.0.0.1, a mirror on the LAN. The
	// cloud metadata service stays refused: no source lives there.
	AllowPrivate bool
}

// RefusedError is a request the client would not make: a destination that is
// not public, a redirect from https to http, one redirect too many. Retrying
// cannot change it.
type RefusedError struct {
	Reason string
	// Private says the destination is one a client with AllowPrivate reaches.
	Private bool
}

func (e *RefusedError) Error() string { return e.Reason }

// NewClient returns a client with o's policy. Its connections are pooled:
// share one client rather than making one per request.
func NewClient(o Options) *http.Client {
	return newClient(func(ap netip.AddrPort) error { return check(ap.Addr(), o.AllowPrivate) })
}

// newClient is NewClient with the check of each dialed address given.
func newClient(checkDial func(netip.AddrPort) error) *http.Client {
	d := &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second,
		// Control runs on every connection's socket before it connects, with the
		// address actually dialed: a name was resolved by then.
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &RefusedError{Reason: fmt.Sprintf("refusing to connect to %q: not an address and port", address)}
			}
			return checkDial(ap)
		}}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Transport: t, CheckRedirect: checkRedirect}
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return &RefusedError{Reason: fmt.Sprintf("stopped after %d redirects (at %s)", MaxRedirects, req.URL.Redacted())}
	}
	if prev := via[len(via)-1]; prev.URL.Scheme == "https" && req.URL.Scheme != "https" {
		return &RefusedError{Reason: fmt.Sprintf("refusing the redirect from %s to %s: it gives up TLS", prev.URL.Redacted(), req.URL.Redacted())}
	}
	return nil
}

// check refuses an address that is not public, saying what it is, unless
// allowPrivate and the address is not one refused always.
func check(addr netip.Addr, allowPrivate bool) error {
	what, always := classify(addr)
	if what == "" || allowPrivate && !always {
		return nil
	}
	return &RefusedError{Reason: fmt.Sprintf("refusing to connect to %s: %s, not a public address", addr, what), Private: !always}
}

// classify names the kind of a non-public address ("loopback", ...), or
// returns "" for a public one; always says it is refused even to a client that
// allows private addresses. An IPv4 address inside IPv6 (IPv4-mapped, NAT64,
// 6to4) is judged by the IPv4 address it leads to.
func classify(addr netip.Addr) (what string, always bool) {
	addr = addr.WithZone("")
	if addr.Is4In6() {
		return classify(addr.Unmap())
	}
	if v4, ok := embeddedIPv4(addr); ok {
		if what, always := classify(v4); what != "" {
			return fmt.Sprintf("%s (%s inside IPv6)", what, v4), always
		}
		return "", false
	}
	for _, r := range nonPublic {
		if r.prefix.Contains(addr) {
			return r.what, r.always
		}
	}
	if !addr.IsValid() {
		return "not an address", true
	}
	return "", false
}

// embeddedIPv4 is the IPv4 address a NAT64 (RFC 6052's well-known prefix) or
// 6to4 address leads to: a gateway would forward to it.
func embeddedIPv4(addr netip.Addr) (netip.Addr, bool) {
	b := addr.As16()
	switch {
	case !addr.Is6():
		return netip.Addr{}, false
	case nat64.Contains(addr):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(addr):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// nonPublic are the ranges no download goes to (IANA's special-purpose
// registries, less what is globally reachable).
var nonPublic = []struct {
	prefix netip.Prefix
	what   string
	always bool // refused even where private addresses are allowed
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (this network)", false},
	{netip.MustParsePrefix("10.0.0.0/8"), "private", false},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (shared address space)", false},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback", false},
	{netip.MustParsePrefix("169.254.169.254/32"), "the cloud metadata service (link-local)", true},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local", false},
	{netip.MustParsePrefix("172.16.0.0/12"), "private", false},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments", false},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation", false},
	{netip.MustParsePrefix("192.168.0.0/16"), "private", false},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking", false},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation", false},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation", false},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast", false},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (broadcast included)", false},
	{netip.MustParsePrefix("::/128"), "unspecified", false},
	{netip.MustParsePrefix("::1/128"), "loopback", false},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)", false},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64", false},
	{netip.MustParsePrefix("100::/64"), "discard-only", false},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation", false},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "the cloud metadata service (unique local)", true},
	{netip.MustParsePrefix("fc00::/7"), "unique local (private)", false},
	{netip.MustParsePrefix("fe80::/10"), "link-local", false},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)", false},
	{netip.MustParsePrefix("ff00::/8"), "multicast", false},
}
