package flux

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseAllowlist(t *testing.T) {
	l, err := ParseAllowlist(strings.NewReader("\ufeff# CDN allowlist\n" +
		"AS13335\n" +
		"as20940   # Akamai\n" +
		"54113\n" +
		"104.16.0.0/13\n" +
		"2606:4700::/32\n" +
		"151.101.1.1\n" +
		"::ffff:23.0.0.0/108\n" +
		"\n" +
		"  akamaized.NET.  \n" +
		".cloudfront.net\n" +
		"*.fastly.net\n" +
		"bücher.example\n" +
		"AS13335\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint32{13335, 20940, 54113}; !slices.Equal(l.ASNs, want) {
		t.Errorf("ASNs %v, want %v", l.ASNs, want)
	}
	wantP := []netip.Prefix{
		netip.MustParsePrefix("104.16.0.0/13"), netip.MustParsePrefix("2606:4700::/32"),
		netip.MustParsePrefix("151.101.1.1/32"), netip.MustParsePrefix("23.0.0.0/12"),
	}
	if !slices.Equal(l.Prefixes, wantP) {
		t.Errorf("prefixes %v, want %v", l.Prefixes, wantP)
	}
	if want := []string{"akamaized.net", "cloudfront.net", "fastly.net", "xn--bcher-kva.example"}; !slices.Equal(l.Suffixes, want) {
		t.Errorf("suffixes %v, want %v", l.Suffixes, want)
	}

	domains := []struct {
		name string
		ok   bool
	}{
		{"akamaized.net", true},
		{"a248.e.akamaized.net.", true},
		{"IMG.Cloudfront.NET", true},
		{"notakamaized.net", false},
		{"akamaized.net.evil.com", false},
		{"example.com", false},
	}
	for _, d := range domains {
		if _, ok := l.Domain(d.name); ok != d.ok {
			t.Errorf("Domain(%q) = %v, want %v", d.name, ok, d.ok)
		}
	}
	records := []struct {
		r  Record
		ok bool
	}{
		{Record{Addr: netip.MustParseAddr("9.9.9.9"), ASN: 13335}, true},
		{Record{Addr: netip.MustParseAddr("104.17.1.1")}, true},
		{Record{Addr: netip.MustParseAddr("::ffff:104.17.1.1")}, true},
		{Record{Addr: netip.MustParseAddr("2606:4700::6810:1")}, true},
		{Record{Addr: netip.MustParseAddr("151.101.1.1")}, true},
		{Record{Addr: netip.MustParseAddr("151.101.1.2")}, false},
		{Record{Addr: netip.MustParseAddr("8.8.8.8"), ASN: 15169}, false},
	}
	for _, c := range records {
		if got := l.Record(c.r); got != c.ok {
			t.Errorf("Record(%+v) = %v, want %v", c.r, got, c.ok)
		}
	}
}

func TestParseAllowlistErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"AS0\n", "line 1"},
		{"# fine\nAS99999999999\n", "line 2"},
		{"1.2.3\n", "not an address"},
		{"*0.00\n", "neither an address nor a domain"},
		{".1.2.3.4\n", "not an address"},
		{"1.2.3.4/33\n", "not a prefix"},
		{"fe80::1%eth0\n", "not an address"},
		{"two entries.com here.com\n", "one entry a line"},
		{"no_tld\n", "single-label"},
		{"bad..name.com\n", "bad domain"},
		{"localhost.\n", "single-label"},
		{strings.Repeat("a", MaxAllowlistLine+1) + "\n", "too long"},
	}
	for _, c := range cases {
		_, err := ParseAllowlist(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseAllowlist(%.40q) = %v, want an error with %q", c.in, err, c.want)
		}
	}
}

func TestNilAllowlistAllowsNothing(t *testing.T) {
	var l *Allowlist
	if !l.Empty() || l.Record(Record{Addr: netip.MustParseAddr("1.1.1.1"), ASN: 13335}) || l.String() != "" {
		t.Fatal("a nil allowlist allowed something")
	}
	if _, ok := l.Domain("google.com"); ok {
		t.Fatal("a nil allowlist allowed a domain")
	}
}

// The allowlist format reads what it writes, for any input it accepts.
func FuzzParseAllowlist(f *testing.F) {
	for _, s := range []string{
		"AS13335\n104.16.0.0/13\nakamaized.net\n",
		"# comment\n\n2606:4700::/32 # inline\n*.fastly.net\n",
		"13335\n1.2.3.4\n::ffff:1.2.3.0/120\nbücher.example\n",
		"\ufeffAS1\r\nexample.com\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		l, err := ParseAllowlist(strings.NewReader(in))
		if err != nil {
			return
		}
		out := l.String()
		again, err := ParseAllowlist(strings.NewReader(out))
		if err != nil {
			t.Fatalf("rendered list does not parse: %v\n%s", err, out)
		}
		if again.String() != out {
			t.Fatalf("round trip changed the list:\n%s\nthen\n%s", out, again.String())
		}
	})
}
