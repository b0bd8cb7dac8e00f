package dnsserve

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// DNSBL is one DNSBL zone (RFC 5782): an address is asked as its reversed
// octets (IPv4) or 32 reversed nibbles (IPv6) under the zone, a domain as its
// name under it; a listed one answers A 127.0.0.CODE for each list holding it,
// and TXT saying which sources list it and its score.
type DNSBL struct {
	Name  string
	Lists []List
}

// List is one list of a DNSBL zone.
type List struct {
	Code uint8  // the answer 127.0.0.Code; 2 to 254
	Name string // what the list holds, in TXT answers
	Selector
}

// list is a List of a zone, numbered among the server's selectors.
type list struct {
	List
	bit uint
}

// blZone is a DNSBL zone as served.
type blZone struct {
	DNSBL
	origin string
	lists  []*list
	soaRR  []byte // its SOA's wire form after the owner (fast.go)
	// listedA and unlistedA count the fast path's answers (A, NOERROR or NXDOMAIN).
	listedA, unlistedA prometheus.Counter
}

func newBLZone(z DNSBL) (*blZone, error) {
	b := &blZone{DNSBL: z, origin: dns.CanonicalName(z.Name)}
	if _, ok := dns.IsDomainName(b.origin); !ok {
		return nil, fmt.Errorf("dnsbl zone %q: not a domain name", z.Name)
	}
	if len(z.Lists) == 0 {
		return nil, fmt.Errorf("dnsbl zone %s: no lists", z.Name)
	}
	seen := map[uint8]bool{}
	for _, l := range z.Lists {
		if l.Code < 2 || l.Code == 255 || seen[l.Code] {
			return nil, fmt.Errorf("dnsbl zone %s: list code %d: want a distinct code from 2 to 254 (127.0.0.1 is never listed)", z.Name, l.Code)
		}
		seen[l.Code] = true
		b.lists = append(b.lists, &list{List: l})
	}
	return b, nil
}

// key is what a DNSBL query asks about: an address, or a domain name.
type key struct {
	addr   netip.Addr
	domain string
}

// parseKey reads the owner (relative to the zone) of a DNSBL query.
func parseKey(owner string) (key, bool) {
	labels := strings.Split(owner, ".")
	switch len(labels) {
	case 4:
		var b [4]byte
		ok := true
		for i, l := range labels {
			n, err := strconv.ParseUint(l, 10, 8)
			if err != nil || (len(l) > 1 && l[0] == '0') {
				ok = false
				break
			}
			b[3-i] = byte(n)
		}
		if ok {
			return key{addr: netip.AddrFrom4(b)}, true
		}
	case 32:
		var b [16]byte
		ok := true
		for i, l := range labels {
			n, err := strconv.ParseUint(l, 16, 8)
			if err != nil || len(l) != 1 {
				ok = false
				break
			}
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= byte(n) << 4
			} else {
				b[pos/2] |= byte(n)
			}
		}
		if ok {
			return key{addr: netip.AddrFrom16(b).Unmap()}, true
		}
	}
	if owner == "" {
		return key{}, false
	}
	if _, ok := dns.IsDomainName(owner); !ok {
		return key{}, false
	}
	return key{domain: owner}, true
}

// testPoint says whether a key is one of RFC 5782's test points: 127.0.0.2
// (and ::FFFF:7F00:2, and the name "test") are listed, 127.0.0.1 (and
// ::FFFF:7F00:1, and "invalid") are not.
func testPoint(k key) (listed, isTest bool) {
	switch {
	case k.addr == netip.AddrFrom4([4]byte{127, 0, 0, 2}), k.domain == "test":
		return true, true
	case k.addr == netip.AddrFrom4([4]byte{127, 0, 0, 1}), k.domain == "invalid":
		return false, true
	}
	return false, false
}
