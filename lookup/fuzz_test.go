package lookup_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/lookup"
)

// FuzzParse: lookup.Parse, which reads what an API client or `tip lookup`
// sends, never panics; what it accepts is normalised for good (parsing the
// normalised value again gives the same indicator), of a type Parse guesses
// back, and a domain or URL has a host to look its registrable domain up by.
// Needs no database: the package's TestMain starts no stack when fuzzing.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		// What is looked up: addresses, blocks, domains, URLs.
		"45.10.0.7", " 45.10.0.7\t", "2a0f:10:20::5", "2A0F:0010:0020:0000::5", "::ffff:45.10.0.7", "::ffff:45.10.0.0/120",
		"45.8.4.0/22", "45.8.4.7/22", "45.8.4.7/32", "2a0f:10::/32", "2a0f:10::1/128",
		"evil.example", "EVIL.example.", "sub.bad.co.uk", "bücher.de", "BÜCHER.DE.", "xn--bcher-kva.de", "_dmarc.example.com",
		"http://evil.example/x.exe", "HTTP://Evil.Example:80/x?y=1#frag", "https://bücher.de:0443/pfad?q=ä",
		"http://[2a0f:10:20::5]:8080/a", "http://[::ffff:45.10.0.7]/", "http://45.10.0.7:080/admin", "ftp://files.example.net:21/",
		"http://user:pass@evil.example/", "https://akamaized.net/x", "http://evil.example//a/../b/./c", "http://evil.example/%2e%2e/%zz",
		// What is refused: private and reserved space, public suffixes, junk.
		"10.1.2.3", "127.0.0.1", "::1", "fe80::1%eth0", "0.0.0.0/0", "172.0.0.0/8", "http://192.168.1.1/", "co.uk", "com",
		"", " ", "\x00", "a\x00b.com", "not a value", "a..b.com", "-a.com", "a-.com", strings.Repeat("a", 64) + ".com",
		strings.Repeat("a.", 130) + "com", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.4.", "１.２.３.４", "http://", "http:///x",
		"http://:80/", "http://a.com:0/", "http://a.com:65536/", "mailto:x@a.com", "a.com/x", "//a.com/x", "javascript://a.com/%0a",
		"http://a.com/\xff", "http://\xff.com/", "\xef\xbb\xbfevil.example", "ⓔⓥⓘⓛ.example", "evil.example\u3002com", "http://[::1%25eth0]/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := lookup.Parse(raw)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Parse(%q): an empty error", raw)
			}
			return
		}
		ind := q.Indicator
		if ind.Value == "" {
			t.Fatalf("Parse(%q) = %+v: an empty value", raw, q)
		}
		again, err := lookup.Parse(ind.Value)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v; Parse of its value %q fails: %v", raw, ind, ind.Value, err)
		}
		if again.Indicator != ind || again.Host != q.Host {
			t.Fatalf("Parse(%q) = %+v (host %q); Parse(%q) = %+v (host %q): normalisation is not idempotent",
				raw, ind, q.Host, ind.Value, again.Indicator, again.Host)
		}
		if g := lookup.GuessType(ind.Value); g != ind.Type {
			t.Fatalf("Parse(%q) = %+v, but its value reads as a %s", raw, ind, g)
		}
		switch ind.Type {
		case feeds.Domain:
			if q.Host != ind.Value {
				t.Fatalf("Parse(%q): domain %q with host %q", raw, ind.Value, q.Host)
			}
		case feeds.URL:
			u, err := url.Parse(ind.Value)
			if err != nil || u.Hostname() == "" {
				t.Fatalf("Parse(%q): URL %q has no host (%v)", raw, ind.Value, err)
			}
			if q.Host != u.Hostname() {
				t.Fatalf("Parse(%q): URL %q with host %q, want %q", raw, ind.Value, q.Host, u.Hostname())
			}
		case feeds.IPv4, feeds.IPv6, feeds.CIDR:
			if q.Host != ind.Value || ind.Registrable != "" {
				t.Fatalf("Parse(%q) = %+v, host %q", raw, ind, q.Host)
			}
		default:
			t.Fatalf("Parse(%q) = %+v: a type no looked-up value has", raw, ind)
		}
		// The registrable domain is the host's own eTLD+1.
		if r := ind.Registrable; r != "" && q.Host != r && !strings.HasSuffix(q.Host, "."+r) {
			t.Fatalf("Parse(%q) = %+v: registrable %q is not the host %q's", raw, ind, r, q.Host)
		}
		if ind.Type == feeds.Domain && ind.Registrable == "" {
			t.Fatalf("Parse(%q) = %+v: a domain kept without its registrable domain", raw, ind)
		}
	})
}
