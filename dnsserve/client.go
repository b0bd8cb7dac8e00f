package dnsserve

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Answer is what a DNSBL said of an address or a domain: the lists' codes
// (127.0.0.CODE) and its TXT, empty when not listed.
type Answer struct {
	Query string   `json:"query"`
	Codes []string `json:"codes,omitempty"`
	TXT   string   `json:"txt,omitempty"`
}

// Ask queries the DNSBL zone at addr for value (an address or a domain), as a
// mail server does.
func Ask(ctx context.Context, addr, zone, value string) (Answer, error) {
	name, err := dnsblName(value, zone)
	if err != nil {
		return Answer{}, err
	}
	a := Answer{Query: name}
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(ctx, new(dns.Msg).SetQuestion(name, dns.TypeA), addr)
	if err != nil {
		return a, fmt.Errorf("dnsbl %s at %s: %w", name, addr, err)
	}
	for _, rr := range r.Answer {
		if v, ok := rr.(*dns.A); ok {
			a.Codes = append(a.Codes, v.A.String())
		}
	}
	if len(a.Codes) == 0 {
		return a, nil
	}
	if r, _, err = c.ExchangeContext(ctx, new(dns.Msg).SetQuestion(name, dns.TypeTXT), addr); err == nil {
		for _, rr := range r.Answer {
			if v, ok := rr.(*dns.TXT); ok {
				a.TXT = strings.Join(v.Txt, "")
			}
		}
	}
	return a, nil
}

// Serial asks the server at addr for a zone's SOA serial.
func Serial(ctx context.Context, addr, zone string) (uint32, error) {
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).ExchangeContext(ctx, new(dns.Msg).SetQuestion(dns.Fqdn(zone), dns.TypeSOA), addr)
	if err != nil {
		return 0, fmt.Errorf("soa %s at %s: %w", zone, addr, err)
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial, nil
		}
	}
	return 0, fmt.Errorf("soa %s at %s: %s, no SOA", zone, addr, dns.RcodeToString[r.Rcode])
}

// dnsblName is the query name of a value in a DNSBL zone: an IPv4 address's
// octets reversed, an IPv6 address's 32 nibbles reversed, a domain as it is.
func dnsblName(value, zone string) (string, error) {
	zone = dns.Fqdn(zone)
	a, err := netip.ParseAddr(value)
	if err != nil {
		if _, ok := dns.IsDomainName(value); !ok {
			return "", fmt.Errorf("%q is neither an address nor a domain", value)
		}
		return dns.Fqdn(value) + zone, nil
	}
	a = a.Unmap()
	var labels []string
	if a.Is4() {
		b := a.As4()
		for _, x := range b {
			labels = append(labels, fmt.Sprint(x))
		}
	} else {
		b := a.As16()
		for _, x := range b {
			labels = append(labels, fmt.Sprintf("%x", x>>4), fmt.Sprintf("%x", x&0xf))
		}
	}
	slices.Reverse(labels)
	return strings.Join(labels, ".") + "." + zone, nil
}
