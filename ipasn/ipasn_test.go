package ipasn

import (
	"bytes"
	"compress/gzip"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestLoadRealFormatQuirks(t *testing.T) {
	f, err := os.Open("testdata/ip2asn-combined-sample.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, st, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unrouted == 0 || st.Rows != tab.Len() || st.Bad != 0 {
		t.Fatalf("stats %+v", st)
	}
	cases := []struct {
		ip      string
		num     uint32
		country string
		desc    string
		ok      bool
	}{
		{"1.0.0.1", 13335, "US", "CLOUDFLARENET", true},
		{"1.0.4.200", 38803, "AU", "WPL-AS-AP Wirefreebroadband Pty Ltd", true},
		{"0.1.2.3", 0, "", "", false}, // Not routed
		{"1.0.1.1", 0, "", "", false}, // gap
		{"2001:200::1", 2500, "JP", "WIDE-BB WIDE Project", true},
		{"::ffff:1.0.0.9", 13335, "US", "CLOUDFLARENET", true},               // v4-mapped
		{"1.0.128.7", 23969, "", "TOT-NET TOT Public Company Limited", true}, // country None
	}
	for _, c := range cases {
		as, ok := tab.Lookup(netip.MustParseAddr(c.ip))
		if ok != c.ok || as.Number != c.num || as.Country != c.country || as.Description != c.desc {
			t.Errorf("Lookup(%s) = %+v, %v; want %d %q %q %v", c.ip, as, ok, c.num, c.country, c.desc, c.ok)
		}
	}
}

func TestLoadGzipAndWriteRoundTrip(t *testing.T) {
	ranges := []Range{
		{First: netip.MustParseAddr("5.0.0.0"), Last: netip.MustParseAddr("5.0.255.255"), AS: AS{Number: 64500, Country: "DE", Description: "LAB one"}},
		{First: netip.MustParseAddr("5.2.0.0"), Last: netip.MustParseAddr("5.2.0.255"), AS: AS{Number: 64501, Description: "LAB two, no country"}},
		{First: netip.MustParseAddr("2a00::"), Last: netip.MustParseAddr("2a00:0:ffff:ffff:ffff:ffff:ffff:ffff"), AS: AS{Number: 64500, Country: "DE", Description: "LAB one"}},
	}
	var plain bytes.Buffer
	if err := Write(&plain, ranges); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plain.String(), "5.1.0.0\t5.1.255.255\t0\tNone\tNot routed\n") {
		t.Fatalf("gap row missing:\n%s", plain.String())
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain.Bytes())
	zw.Close()
	tab, st, err := Load(&gz)
	if err != nil || st.Rows != 3 || st.Unrouted != 1 {
		t.Fatalf("load: %+v, %v", st, err)
	}
	if as, ok := tab.Lookup(netip.MustParseAddr("5.2.0.9")); !ok || as.Number != 64501 || as.Country != "" {
		t.Fatalf("lookup: %+v %v", as, ok)
	}
	if as, ok := tab.Lookup(netip.MustParseAddr("2a00::1")); !ok || as.Number != 64500 {
		t.Fatalf("v6 lookup: %+v %v", as, ok)
	}
}

func TestLoadRejectsWhatIsNotATable(t *testing.T) {
	for name, in := range map[string]string{
		"html":  "<html><body>404 Not Found</body></html>\n",
		"empty": "",
		"csv":   "1.0.0.0,1.0.0.255,13335,US,CLOUDFLARENET\n",
	} {
		if _, _, err := Load(strings.NewReader(in)); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	// One bad line in many is tolerated, counted and sampled.
	var b strings.Builder
	for i := 0; i < 200; i++ {
		b.WriteString("9.0.0.0\t9.0.0.255\t64500\tUS\tX\n")
	}
	b.WriteString("9.1.0.0\tnot-an-ip\t64500\tUS\tX\n")
	_, st, err := Load(strings.NewReader(b.String()))
	if err != nil || st.Bad != 1 || len(st.BadSample) != 1 || !strings.Contains(st.BadSample[0], "line 201") {
		t.Fatalf("one bad line: %+v, %v", st, err)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add("1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET")
	f.Add("2001:200::\t2001:200:ffff:ffff:ffff:ffff:ffff:ffff\t2500\tJP\tWIDE")
	f.Add("0.0.0.0\t0.255.255.255\t0\tNone\tNot routed")
	f.Add("::ffff:1.2.3.4\t1.2.3.4\tAS1\t\t")
	f.Fuzz(func(t *testing.T, line string) {
		r, routed, err := ParseLine(line)
		if err != nil {
			return
		}
		if r.Last.Less(r.First) || r.First.Is4() != r.Last.Is4() {
			t.Fatalf("accepted a disordered range %s-%s", r.First, r.Last)
		}
		if routed != (r.Number != 0) {
			t.Fatalf("routed=%v for AS %d", routed, r.Number)
		}
	})
}
