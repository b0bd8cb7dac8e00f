package flux

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/tip-project/tip/feeds"
)

// Allowlist names content delivery networks and large clouds whose answers look
// like flux (many addresses, short TTLs) but are not: by origin ASN, by address
// prefix, and by domain suffix. A nil *Allowlist allows nothing.
type Allowlist struct {
	ASNs     []uint32       `json:"asns,omitempty"`     // sorted
	Prefixes []netip.Prefix `json:"prefixes,omitempty"` // masked
	Suffixes []string       `json:"suffixes,omitempty"` // lower-case ASCII, sorted
}

// MaxAllowlistLine is the longest line ParseAllowlist accepts.
const MaxAllowlistLine = 1024

// ParseAllowlist reads the allowlist text format: one entry a line, "#" starts a
// comment (a whole line or the rest of one), blank lines are ignored. An entry is
// an ASN ("AS13335", "as13335" or "13335"), an address prefix ("104.16.0.0/13") or
// address, or a domain suffix ("akamaized.net", also written ".akamaized.net" or
// "*.akamaized.net") that allows the name and every name below it. A CDN's published
// edge ranges, one prefix a line, are already in this format. The first bad line
// fails the parse, with its number.
func ParseAllowlist(r io.Reader) (*Allowlist, error) {
	l := &Allowlist{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), MaxAllowlistLine)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if err := l.Add(line); err != nil {
			return nil, fmt.Errorf("allowlist line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("allowlist: %w", err)
	}
	return l, nil
}

// Add parses one entry (an ASN, a prefix or address, or a domain suffix) and adds it.
func (l *Allowlist) Add(entry string) error {
	e := strings.TrimSpace(entry)
	if e == "" {
		return fmt.Errorf("empty entry")
	}
	if strings.ContainsAny(e, " \t") {
		return fmt.Errorf("%q: one entry a line", entry)
	}
	if num, isASN, err := parseASN(e); isASN {
		if err != nil {
			return err
		}
		if i, found := slices.BinarySearch(l.ASNs, num); !found {
			l.ASNs = slices.Insert(l.ASNs, i, num)
		}
		return nil
	}
	if strings.IndexByte(e, ':') >= 0 || strings.IndexByte(e, '/') >= 0 || isAddrLike(e) {
		p, err := parsePrefix(e)
		if err != nil {
			return err
		}
		if !slices.Contains(l.Prefixes, p) {
			l.Prefixes = append(l.Prefixes, p)
		}
		return nil
	}
	name := strings.TrimPrefix(strings.TrimPrefix(e, "*"), ".")
	if isAddrLike(name) { // no top-level domain is numeric
		return fmt.Errorf("%q: neither an address nor a domain", entry)
	}
	ind, drop, err := feeds.Normalize(feeds.Domain, name)
	if err != nil {
		return err
	}
	if drop != "" && drop != "public-suffix" { // a suffix may well be public: cloudfront.net is
		return fmt.Errorf("%q: %s", entry, drop)
	}
	if i, found := slices.BinarySearch(l.Suffixes, ind.Value); !found {
		l.Suffixes = slices.Insert(l.Suffixes, i, ind.Value)
	}
	return nil
}

// parseASN recognises "AS123", "as123" and a bare number; isASN says whether e has
// that shape at all.
func parseASN(e string) (num uint32, isASN bool, err error) {
	digits := e
	if len(e) > 2 && strings.EqualFold(e[:2], "AS") {
		digits = e[2:]
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false, nil
		}
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || n == 0 {
		return 0, true, fmt.Errorf("%q: not an AS number", e)
	}
	return uint32(n), true, nil
}

// isAddrLike reports whether e has only digits and dots, so it is meant as an
// IPv4 address and not as a domain.
func isAddrLike(e string) bool {
	return strings.Trim(e, "0123456789.") == ""
}

func parsePrefix(e string) (netip.Prefix, error) {
	if strings.IndexByte(e, '/') < 0 {
		a, err := netip.ParseAddr(e)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: not an address or prefix", e)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(e)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: not a prefix", e)
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Empty reports whether the list allows nothing.
func (l *Allowlist) Empty() bool {
	return l == nil || len(l.ASNs)+len(l.Prefixes)+len(l.Suffixes) == 0
}

// Domain returns the allowlisted suffix that name equals or sits below, if any.
func (l *Allowlist) Domain(name string) (suffix string, ok bool) {
	if l == nil {
		return "", false
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, s := range l.Suffixes {
		if name == s || strings.HasSuffix(name, "."+s) {
			return s, true
		}
	}
	return "", false
}

// Record reports whether an (annotated) address is in an allowlisted ASN or prefix.
func (l *Allowlist) Record(r Record) bool {
	if l == nil {
		return false
	}
	if r.ASN != 0 {
		if _, found := slices.BinarySearch(l.ASNs, r.ASN); found {
			return true
		}
	}
	a := r.Addr.Unmap()
	for _, p := range l.Prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// String renders the list in the format ParseAllowlist reads.
func (l *Allowlist) String() string {
	if l == nil {
		return ""
	}
	var b strings.Builder
	for _, n := range l.ASNs {
		fmt.Fprintf(&b, "AS%d\n", n)
	}
	for _, p := range l.Prefixes {
		b.WriteString(p.String() + "\n")
	}
	for _, s := range l.Suffixes {
		b.WriteString(s + "\n")
	}
	return b.String()
}
