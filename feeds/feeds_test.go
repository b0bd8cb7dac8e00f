package feeds_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/feeds"
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct {
		typ        feeds.Type
		raw        string
		want       feeds.Indicator
		drop, fail string // drop reason, or an error substring
	}{
		{typ: feeds.IPv4, raw: "1.2.3.4", want: feeds.Indicator{Type: feeds.IPv4, Value: "1.2.3.4"}},
		{typ: feeds.IPv4, raw: " 1.2.3.4 ", want: feeds.Indicator{Type: feeds.IPv4, Value: "1.2.3.4"}},
		{typ: feeds.IPv4, raw: "2001:DB9::0:1", want: feeds.Indicator{Type: feeds.IPv6, Value: "2001:db9::1"}},
		{typ: feeds.IPv4, raw: "::ffff:8.8.8.8", want: feeds.Indicator{Type: feeds.IPv4, Value: "8.8.8.8"}},
		{typ: feeds.IPv4, raw: "01.2.3.4", fail: "leading zero"},
		{typ: feeds.IPv4, raw: "1.2.3", fail: "IPv4"},
		{typ: feeds.IPv6, raw: "fe80::1%eth0", fail: "zone"},
		{typ: feeds.IPv4, raw: "10.1.2.3", drop: "private"},
		{typ: feeds.IPv4, raw: "100.64.0.1", drop: "private"},
		{typ: feeds.IPv4, raw: "127.0.0.1", drop: "reserved"},
		{typ: feeds.IPv4, raw: "224.0.0.5", drop: "reserved"},
		{typ: feeds.IPv4, raw: "255.255.255.255", drop: "reserved"},
		{typ: feeds.IPv4, raw: "198.51.100.7", drop: "reserved"},
		{typ: feeds.IPv6, raw: "::1", drop: "reserved"},
		{typ: feeds.IPv6, raw: "fd00::1", drop: "private"},
		{typ: feeds.IPv6, raw: "2001:db8::1", drop: "reserved"},
		{typ: feeds.IPv6, raw: "ff02::1", drop: "reserved"},
		{typ: feeds.CIDR, raw: "1.2.3.4/24", want: feeds.Indicator{Type: feeds.CIDR, Value: "1.2.3.0/24"}},
		{typ: feeds.CIDR, raw: "1.2.3.4/32", want: feeds.Indicator{Type: feeds.IPv4, Value: "1.2.3.4"}},
		{typ: feeds.CIDR, raw: "2a00:1::/128", want: feeds.Indicator{Type: feeds.IPv6, Value: "2a00:1::"}},
		{typ: feeds.CIDR, raw: "2A00:1:0::/32", want: feeds.Indicator{Type: feeds.CIDR, Value: "2a00:1::/32"}},
		{typ: feeds.CIDR, raw: "5.6.7.8", want: feeds.Indicator{Type: feeds.IPv4, Value: "5.6.7.8"}},
		{typ: feeds.CIDR, raw: "::ffff:1.2.3.0/120", want: feeds.Indicator{Type: feeds.CIDR, Value: "1.2.3.0/24"}},
		{typ: feeds.CIDR, raw: "224.0.0.0/3", drop: "reserved"},
		{typ: feeds.CIDR, raw: "10.1.0.0/16", drop: "private"},
		{typ: feeds.CIDR, raw: "0.0.0.0/0", drop: "bogon"},
		{typ: feeds.CIDR, raw: "172.0.0.0/8", drop: "bogon"}, // covers 172.16/12
		{typ: feeds.CIDR, raw: "2000::/3", drop: "bogon"},    // covers 2001:db8::/32
		{typ: feeds.CIDR, raw: "1.2.3.0/33", fail: "prefix"},
		{typ: feeds.ASN, raw: "AS6517", want: feeds.Indicator{Type: feeds.ASN, Value: "AS6517"}},
		{typ: feeds.ASN, raw: "as0260", want: feeds.Indicator{Type: feeds.ASN, Value: "AS260"}},
		{typ: feeds.ASN, raw: "13335", want: feeds.Indicator{Type: feeds.ASN, Value: "AS13335"}},
		{typ: feeds.ASN, raw: "AS64512", drop: "private"},
		{typ: feeds.ASN, raw: "AS0", drop: "reserved"},
		{typ: feeds.ASN, raw: "ASx", fail: "bad ASN"},
		{typ: feeds.Domain, raw: "WWW.Example.CO.UK.", want: feeds.Indicator{Type: feeds.Domain, Value: "www.example.co.uk", Registrable: "example.co.uk"}},
		{typ: feeds.Domain, raw: "bücher.de", want: feeds.Indicator{Type: feeds.Domain, Value: "xn--bcher-kva.de", Registrable: "xn--bcher-kva.de"}},
		{typ: feeds.Domain, raw: "bad_host.example.com", want: feeds.Indicator{Type: feeds.Domain, Value: "bad_host.example.com", Registrable: "example.com"}},
		{typ: feeds.Domain, raw: "co.uk", drop: "public-suffix", want: feeds.Indicator{Type: feeds.Domain, Value: "co.uk"}},
		{typ: feeds.Domain, raw: "Akamaized.NET", drop: "public-suffix", want: feeds.Indicator{Type: feeds.Domain, Value: "akamaized.net"}},
		{typ: feeds.Domain, raw: "localhost", fail: "single-label"},
		{typ: feeds.Domain, raw: "1.2.3.4", fail: "an address"},
		{typ: feeds.Domain, raw: "-bad.com", fail: "label"},
		{typ: feeds.Domain, raw: "a..b.com", fail: "label"},
		{typ: feeds.URL, raw: "HTTP://Evil.EXAMPLE.com:80/a/B?x=1#frag", want: feeds.Indicator{Type: feeds.URL, Value: "http://evil.example.com/a/B?x=1", Registrable: "example.com"}},
		{typ: feeds.URL, raw: "https://bücher.de:8443/x", want: feeds.Indicator{Type: feeds.URL, Value: "https://xn--bcher-kva.de:8443/x", Registrable: "xn--bcher-kva.de"}},
		{typ: feeds.URL, raw: "https://x.org:443", want: feeds.Indicator{Type: feeds.URL, Value: "https://x.org", Registrable: "x.org"}},
		{typ: feeds.URL, raw: "http://1.2.3.4:8080/bins/mozi.m", want: feeds.Indicator{Type: feeds.URL, Value: "http://1.2.3.4:8080/bins/mozi.m"}},
		{typ: feeds.URL, raw: "http://[2a00::1]/x", want: feeds.Indicator{Type: feeds.URL, Value: "http://[2a00::1]/x"}},
		{typ: feeds.URL, raw: "http://192.168.1.1/i", drop: "private"},
		{typ: feeds.URL, raw: "https://akamaized.net/login", want: feeds.Indicator{Type: feeds.URL, Value: "https://akamaized.net/login"}},
		{typ: feeds.URL, raw: "evil.com/path", fail: "absolute"},
		{typ: feeds.URL, raw: "http://x.com:99999/", fail: "port"},
		{typ: feeds.SHA1, raw: "4DA1F0C1E7A3B2D95E6F0A1B2C3D4E5F60712C82", want: feeds.Indicator{Type: feeds.SHA1, Value: "4da1f0c1e7a3b2d95e6f0a1b2c3d4e5f60712c82"}},
		{typ: feeds.SHA1, raw: "4da1", fail: "hex digits"},
		{typ: feeds.SHA1, raw: "zda1f0c1e7a3b2d95e6f0a1b2c3d4e5f60712c82", fail: "non-hex"},
		{typ: feeds.MD5, raw: "d41d8cd98f00b204e9800998ecf8427e", want: feeds.Indicator{Type: feeds.MD5, Value: "d41d8cd98f00b204e9800998ecf8427e"}},
		{typ: feeds.SHA256, raw: strings.Repeat("ab", 32), want: feeds.Indicator{Type: feeds.SHA256, Value: strings.Repeat("ab", 32)}},
	} {
		got, drop, err := feeds.Normalize(c.typ, c.raw)
		switch {
		case c.fail != "":
			if err == nil || !strings.Contains(err.Error(), c.fail) {
				t.Errorf("Normalize(%s, %q) = %+v, %q, %v; want error with %q", c.typ, c.raw, got, drop, err, c.fail)
			}
		case err != nil:
			t.Errorf("Normalize(%s, %q): %v", c.typ, c.raw, err)
		case drop != c.drop || got != c.want:
			t.Errorf("Normalize(%s, %q) = %+v, drop %q; want %+v, drop %q", c.typ, c.raw, got, drop, c.want, c.drop)
		}
	}
}

// parse runs Parse over a string and returns the values and stats.
func parse(t *testing.T, format, body string, opts feeds.Options) ([]string, feeds.Stats, error) {
	t.Helper()
	var vals []string
	st, err := feeds.Parse(format, strings.NewReader(body), opts, func(ind feeds.Indicator) error {
		vals = append(vals, ind.Value)
		return nil
	})
	return vals, st, err
}

func TestParseQuirks(t *testing.T) {
	for _, c := range []struct {
		name, format, body string
		opts               feeds.Options
		want               []string
		bad                int
	}{
		{name: "drop text with CRLF and BOM", format: "spamhaus-drop",
			body: "\ufeff; Spamhaus DROP List\r\n; Last-Modified: x\r\n1.4.0.0/17 ; SBL256893\r\n\r\n2a06:5280::/29 ; SBL1\r\n",
			want: []string{"1.4.0.0/17", "2a06:5280::/29"}},
		{name: "drop json with metadata", format: "spamhaus-drop-json",
			body: `{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}` + "\n" + `{"type":"metadata","timestamp":1,"size":2,"records":1}` + "\n",
			want: []string{"1.10.16.0/20"}},
		{name: "asndrop empty country", format: "spamhaus-asndrop",
			body: "; header\nAS260 ; AE | XCONNECT24 - Xconnect24 Inc., US\nAS10516 ; | Orb-bit Design Group\n",
			want: []string{"AS260", "AS10516"}},
		{name: "asndrop json", format: "spamhaus-asndrop-json",
			body: `{"asn":6517,"rir":"arin","domain":"x.net","cc":"US","asname":"X"}` + "\n" + `{"type":"metadata","timestamp":1}` + "\n",
			want: []string{"AS6517"}},
		{name: "feodo txt with footer and trailing spaces", format: "feodo-txt",
			body: "# Last updated: 2024-01-01 00:00:00 UTC\n# DstIP\n5.6.7.8   \n9.9.9.9\t\n# END 2 entries\n",
			want: []string{"5.6.7.8", "9.9.9.9"}},
		{name: "feodo csv header moved and columns reordered", format: "feodo-csv", opts: feeds.Options{MaxBadShare: 0.9},
			body: "# banner\n\"a\",\"b\"\n" + `"malware","dst_ip","dst_port"` + "\n" + `"QakBot","5.6.7.8","443"` + "\n",
			want: []string{"5.6.7.8"}, bad: 1},
		{name: "feodo json", format: "feodo-json",
			body: `[{"ip_address":"5.6.7.8","port":443,"hostname":null,"malware":"QakBot"},{"ip_address":"10.0.0.1","port":1}]`,
			want: []string{"5.6.7.8"}},
		{name: "urlhaus csv old dump without last_online", format: "urlhaus-csv",
			body: "# id,dateadded,url,url_status,threat,tags,urlhaus_link,reporter\n" +
				`"1","2024-01-01 00:00:00","http://Evil.com/a.exe","online","malware_download","exe,Mozi","https://urlhaus.abuse.ch/url/1/","x"` + "\n",
			want: []string{"http://evil.com/a.exe"}},
		{name: "sslbl", format: "sslbl-csv",
			body: "# Listingdate,SHA1,Listingreason\n2024-09-02 06:17:52,4DA1F0C1E7A3B2D95E6F0A1B2C3D4E5F60712C82,Rhadamanthys C&C\r\n",
			want: []string{"4da1f0c1e7a3b2d95e6f0a1b2c3d4e5f60712c82"}},
		{name: "ip list mixed families", format: "ip-list",
			body: "1.2.3.4\n2a01:4f8::1\n::ffff:5.6.7.8\n192.168.0.1\n",
			want: []string{"1.2.3.4", "2a01:4f8::1", "5.6.7.8"}},
		{name: "dshield with empty trailing fields", format: "dshield-block",
			body: "# c\nStart\tEnd\tNetblock\tAttacks\tName\tCountry\temail\n43.229.53.0\t43.229.53.255\t24\t788\t\t\t\n# END\n",
			want: []string{"43.229.53.0/24"}},
		{name: "phishtank bom and quoted comma", format: "phishtank-csv",
			body: "\ufeffphish_id,url,phish_detail_url,submission_time,verified,verification_time,online,target\n" +
				`1,"http://a.com/x,y",http://www.phishtank.com/phish_detail.php?phish_id=1,t,yes,t,yes,Other` + "\n",
			want: []string{"http://a.com/x,y"}},
		{name: "netset bare ips and bogons", format: "netset",
			body: "# Entries: 3\n0.0.0.0/8\n1.2.3.4\n5.6.7.0/24\n",
			want: []string{"1.2.3.4", "5.6.7.0/24"}},
		{name: "hosts several names, inline comment", format: "hosts",
			body: "127.0.0.1 localhost\r\n::1 ip6-localhost ip6-loopback\r\n0.0.0.0 evil.com www.evil.com # flux\r\n",
			want: []string{"evil.com", "www.evil.com"}},
		{name: "tranco CRLF, IDN, public suffix, header", format: "tranco-csv", opts: feeds.Options{MaxBadShare: 0.5},
			body: "rank,domain\r\n1,google.com\r\n2,Bücher.DE\r\n3,blogspot.com\r\n4\r\nx,y.com\r\n5,microsoft.com.\r\n",
			want: []string{"google.com", "xn--bcher-kva.de", "microsoft.com"}, bad: 2},
		{name: "tranco keeping public suffixes, as an allowlist does", format: "tranco-csv", opts: feeds.Options{KeepPublicSuffix: true},
			body: "1,google.com\n2,blogspot.com\n", want: []string{"google.com", "blogspot.com"}},
		{name: "generic csv with header", format: "generic",
			opts: feeds.Options{Separator: ",", Column: 1, Header: true, Type: feeds.Domain, CommentPrefix: "//"},
			body: "// c\nid,domain\n1,Evil.COM\n2,bad.net\n",
			want: []string{"evil.com", "bad.net"}},
		{name: "generic whitespace", format: "generic", opts: feeds.Options{Type: "ip", Column: 1},
			body: "x 1.2.3.4 y\nx 2a01::1\n", want: []string{"1.2.3.4", "2a01::1"}},
		{name: "too long line is bad, not fatal", format: "ip-list", opts: feeds.Options{MaxBadShare: 0.5},
			body: "1.2.3.4\n" + strings.Repeat("9", 100_000) + "\n5.6.7.8\n",
			want: []string{"1.2.3.4", "5.6.7.8"}, bad: 1},
		{name: "truncated last line", format: "ip-list", opts: feeds.Options{MaxBadShare: 0.5},
			body: "1.2.3.4\n5.6.", want: []string{"1.2.3.4"}, bad: 1},
		{name: "cut last line that still parses is not listed", format: "ip-list", opts: feeds.Options{MaxBadShare: 0.5},
			body: "1.2.3.4\n2a06:ad7d::148a", want: []string{"1.2.3.4"}, bad: 1},
		{name: "unterminated last line allowed", format: "netset", opts: feeds.Options{AllowUnterminated: true},
			body: "173.245.48.0/20\n103.21.244.0/22", want: []string{"173.245.48.0/20", "103.21.244.0/22"}},
		{name: "unterminated comment or blank is harmless", format: "ip-list",
			body: "1.2.3.4\n# end", want: []string{"1.2.3.4"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, st, err := parse(t, c.format, c.body, c.opts)
			if err != nil {
				t.Fatalf("%v (stats %+v)", err, st)
			}
			if !slices.Equal(got, c.want) || st.Bad != c.bad {
				t.Errorf("got %q, %d bad %v; want %q, %d bad", got, st.Bad, st.BadSample, c.want, c.bad)
			}
			if st.Indicators != len(got) {
				t.Errorf("Indicators = %d, emitted %d", st.Indicators, len(got))
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	for _, c := range []struct{ name, format, body string }{
		{"html page", "ip-list", "\n  <!DOCTYPE html>\n<html><body>maintenance</body></html>\n"},
		{"html with bom", "urlhaus-csv", "\ufeff<html>\n"},
		{"too many bad lines", "ip-list", "1.2.3.4\nnot an ip\n5.6.7.8\n"},
		{"not a json array", "feodo-json", `{"ip_address":"1.2.3.4"}`},
		{"truncated json", "feodo-json", `[{"ip_address":"1.2.3.4"},{"ip_ad`},
		{"not a zip", "urlhaus-csv-zip", "1.2.3.4\n"},
	} {
		_, st, err := parse(t, c.format, c.body, feeds.Options{})
		if !errors.Is(err, feeds.ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed (stats %+v)", c.name, err, st)
		}
	}
	_, _, err := parse(t, "ip-list", "1.2.3.4\nbad\n", feeds.Options{})
	if err == nil || !strings.Contains(err.Error(), `line 2`) {
		t.Errorf("error does not quote the bad line: %v", err)
	}
	if _, _, err := parse(t, "no-such", "", feeds.Options{}); !errors.Is(err, feeds.ErrUnknownFormat) {
		t.Errorf("unknown format: %v", err)
	}
	if _, _, err := parse(t, "generic", "1.2.3.4\n", feeds.Options{}); err == nil {
		t.Error("generic without a type parsed")
	}
}

func TestParseStopsOnEmitError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	_, err := feeds.Parse("ip-list", strings.NewReader("1.2.3.4\n5.6.7.8\n"), feeds.Options{}, func(feeds.Indicator) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Errorf("err %v after %d calls; want the callback's error after 1", err, n)
	}
}

func TestParseZip(t *testing.T) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	f, _ := zw.Create("csv.txt")
	f.Write([]byte("# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n" +
		`"7","2026-11-30 08:15:02","http://evil.com/x","online","","malware_download","elf","https://urlhaus.abuse.ch/url/7/","r"` + "\n"))
	zw.Close()
	var got []feeds.Indicator
	_, err := feeds.Parse("urlhaus-csv-zip", &b, feeds.Options{}, func(ind feeds.Indicator) error {
		got = append(got, ind)
		return nil
	})
	want := feeds.Indicator{Type: feeds.URL, Value: "http://evil.com/x", Registrable: "evil.com", Malware: "elf", Ref: "https://urlhaus.abuse.ch/url/7/",
		Category: "malware-download", Listed: time.Date(2026, 11, 30, 8, 15, 2, 0, time.UTC)}
	if err != nil || len(got) != 1 || got[0] != want {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
}
