package feeds

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Normalize turns one raw value into its canonical indicator. A valid value that
// must not be listed (a private address, a reserved ASN, localhost) gives a
// non-empty drop reason; an invalid one gives an error. typ may be "ip" for
// either address family; a cidr accepts a bare address and an address type
// accepts a prefix, since feeds mix them.
func Normalize(typ Type, raw string) (ind Indicator, drop string, err error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Indicator{}, "", errors.New("empty value")
	}
	switch typ {
	case IPv4, IPv6, CIDR, "ip":
		return normIP(raw)
	case ASN:
		return normASN(raw)
	case Domain:
		return normDomain(raw)
	case URL:
		return normURL(raw)
	case SHA1:
		return normHash(SHA1, raw, 40)
	case SHA256:
		return normHash(SHA256, raw, 64)
	case MD5:
		return normHash(MD5, raw, 32)
	}
	return Indicator{}, "", fmt.Errorf("unknown indicator type %q", typ)
}

// special is address space that is never a real attacker. A prefix overlapping
// one of these is dropped as a whole: a feed listing 0.0.0.0/0 or 172.0.0.0/8
// is carrying bogons, not threats.
var special = []struct {
	p      netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "reserved"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "private"}, // shared, carrier-grade NAT
	{netip.MustParsePrefix("127.0.0.0/8"), "reserved"},
	{netip.MustParsePrefix("169.254.0.0/16"), "reserved"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
	{netip.MustParsePrefix("192.0.2.0/24"), "reserved"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "reserved"},
	{netip.MustParsePrefix("198.51.100.0/24"), "reserved"},
	{netip.MustParsePrefix("203.0.113.0/24"), "reserved"},
	{netip.MustParsePrefix("224.0.0.0/3"), "reserved"}, // multicast and 240/4
	{netip.MustParsePrefix("::/128"), "reserved"},
	{netip.MustParsePrefix("::1/128"), "reserved"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fe80::/10"), "reserved"},
	{netip.MustParsePrefix("ff00::/8"), "reserved"},
	{netip.MustParsePrefix("2001:db8::/32"), "reserved"},
}

// specialReason is why p must not be listed: the reason of the special range
// holding it, or "bogon" for a prefix that straddles or covers special space.
func specialReason(p netip.Prefix) string {
	for _, s := range special {
		if s.p.Overlaps(p) {
			if s.p.Bits() <= p.Bits() {
				return s.reason
			}
			return "bogon"
		}
	}
	return ""
}

func normIP(raw string) (Indicator, string, error) {
	var p netip.Prefix
	if strings.IndexByte(raw, '/') >= 0 {
		q, err := netip.ParsePrefix(raw)
		if err != nil {
			return Indicator{}, "", err
		}
		if q.Addr().Is4In6() && q.Bits() >= 96 {
			q = netip.PrefixFrom(q.Addr().Unmap(), q.Bits()-96)
		}
		p = q.Masked()
	} else {
		a, err := netip.ParseAddr(raw)
		if err != nil {
			return Indicator{}, "", err
		}
		if a.Zone() != "" {
			return Indicator{}, "", fmt.Errorf("address with a zone: %q", raw)
		}
		a = a.Unmap()
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if r := specialReason(p); r != "" {
		return Indicator{}, r, nil
	}
	a := p.Addr()
	if p.Bits() < a.BitLen() {
		return Indicator{Type: CIDR, Value: p.String()}, "", nil
	}
	if a.Is4() {
		v := raw // netip accepts only canonical dotted quads: save a copy
		if strings.IndexByte(raw, ':') >= 0 || strings.IndexByte(raw, '/') >= 0 {
			v = a.String()
		}
		return Indicator{Type: IPv4, Value: v}, "", nil
	}
	return Indicator{Type: IPv6, Value: a.String()}, "", nil
}

func normASN(raw string) (Indicator, string, error) {
	s := raw
	if len(s) > 2 && strings.EqualFold(s[:2], "AS") {
		s = s[2:]
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return Indicator{}, "", fmt.Errorf("bad ASN %q", raw)
	}
	switch {
	case n == 0, n == 23456, n >= 64496 && n <= 64511, n >= 65535 && n <= 65551, n == 4294967295:
		return Indicator{}, "reserved", nil
	case n >= 64512 && n <= 65534, n >= 4200000000:
		return Indicator{}, "private", nil
	}
	return Indicator{Type: ASN, Value: "AS" + strconv.FormatUint(n, 10)}, "", nil
}

// idnaProfile maps for lookup but allows underscores, which real blacklists
// carry in host labels.
var idnaProfile = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.StrictDomainName(false), idna.BidiRule())

// hostname lower-cases and IDNA-encodes a host name and checks its shape.
func hostname(raw string) (string, error) {
	h := strings.TrimSuffix(raw, ".")
	if !plainASCII(h) {
		var err error
		if h, err = idnaProfile.ToASCII(h); err != nil {
			return "", fmt.Errorf("bad domain %q: %v", raw, err)
		}
		h = strings.TrimSuffix(h, ".")
	} else {
		h = strings.ToLower(h)
	}
	if len(h) == 0 || len(h) > 253 {
		return "", fmt.Errorf("bad domain length %q", raw)
	}
	labels := 0
	for l := range strings.SplitSeq(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("bad domain label in %q", raw)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("bad domain character in %q", raw)
			}
		}
		labels++
	}
	if labels < 2 {
		return "", fmt.Errorf("single-label name %q", raw)
	}
	return h, nil
}

// plainASCII reports whether s has only letters, digits, '-', '_' and '.'.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func normDomain(raw string) (Indicator, string, error) {
	if _, err := netip.ParseAddr(raw); err == nil {
		return Indicator{}, "", fmt.Errorf("an address, not a domain: %q", raw)
	}
	h, err := hostname(raw)
	if err != nil {
		return Indicator{}, "", err
	}
	reg, err := publicsuffix.EffectiveTLDPlusOne(h)
	if err != nil {
		// Listing a public suffix would block everyone under it; the name is
		// returned with the drop for callers that want it (an allowlist does).
		return Indicator{Type: Domain, Value: h}, "public-suffix", nil
	}
	return Indicator{Type: Domain, Value: h, Registrable: reg}, "", nil
}

var defaultPorts = map[string]string{"http": "80", "https": "443", "ftp": "21"}

func normURL(raw string) (Indicator, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Indicator{}, "", err
	}
	if u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return Indicator{}, "", fmt.Errorf("not an absolute URL: %q", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Fragment, u.RawFragment = "", ""
	host, port := u.Hostname(), u.Port()
	if port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return Indicator{}, "", fmt.Errorf("bad port in %q", raw)
		}
		port = strings.TrimLeft(port, "0")
		if defaultPorts[u.Scheme] == port {
			port = ""
		}
	}
	var reg string
	if a, err := parseHostAddr(host); err == nil {
		if a.Zone() != "" {
			return Indicator{}, "", fmt.Errorf("URL host with a zone: %q", raw)
		}
		a = a.Unmap()
		if r := specialReason(netip.PrefixFrom(a, a.BitLen())); r != "" {
			return Indicator{}, r, nil
		}
		host = a.String()
		if a.Is6() {
			host = "[" + host + "]"
		}
	} else {
		if host, err = hostname(host); err != nil {
			return Indicator{}, "", err
		}
		// A URL on a host that is itself a public suffix (https://akamaized.net/x)
		// is still one page: kept, with no registrable domain.
		reg, _ = publicsuffix.EffectiveTLDPlusOne(host)
	}
	if port != "" {
		host += ":" + port
	}
	u.Host = host
	return Indicator{Type: URL, Value: u.String(), Registrable: reg}, "", nil
}

// errNotAddr is parseHostAddr's answer for a host that cannot be an address.
var errNotAddr = fmt.Errorf("not an address")

// parseHostAddr parses a URL host as an IP address, without the cost of a parse
// (and its error) for the common case, a name starting with a letter.
func parseHostAddr(host string) (netip.Addr, error) {
	if host == "" || !(host[0] >= '0' && host[0] <= '9' || strings.IndexByte(host, ':') >= 0) {
		return netip.Addr{}, errNotAddr
	}
	return netip.ParseAddr(host)
}

func normHash(t Type, raw string, n int) (Indicator, string, error) {
	h := strings.ToLower(strings.ReplaceAll(raw, ":", ""))
	if len(h) != n {
		return Indicator{}, "", fmt.Errorf("%s of %d hex digits, want %d", t, len(h), n)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return Indicator{}, "", fmt.Errorf("%s with a non-hex digit: %q", t, raw)
		}
	}
	return Indicator{Type: t, Value: h}, "", nil
}
