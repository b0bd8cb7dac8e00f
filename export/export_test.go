package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestRPZIP(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1/32":             "32.1.2.0.192.rpz-ip",
		"7.119.176.0/24":           "24.0.176.119.7.rpz-ip",
		"2001:db8::1/128":          "128.1.zz.db8.2001.rpz-ip",
		"2a0f:10::/32":             "32.zz.10.2a0f.rpz-ip",
		"2001:db8:0:1:0:0:0:1/128": "128.1.zz.1.0.db8.2001.rpz-ip",
	}
	for in, want := range cases {
		if got := RPZIP(netip.MustParsePrefix(in)); got != want {
			t.Errorf("RPZIP(%s) = %s, want %s", in, got, want)
		}
	}
}

var rows = []Row{
	{Type: "ipv4", Value: "203.0.113.9", Score: 0.97, Sources: []string{"feodo", "firehol"}},
	{Type: "cidr", Value: "7.119.176.0/24", Score: 0.9, Sources: []string{"drop"}},
	{Type: "ipv6", Value: "2a0f:10::5", Score: 0.5, Sources: []string{"blocklistde"}},
	{Type: "domain", Value: "evil.example.com", Score: 0.8, Sources: []string{"hosts"}},
	{Type: "url", Value: "http://bad.example.net:8080/x.exe", Score: 0.85, Sources: []string{"urlhaus"}},
	{Type: "sha1", Value: "4da1", Score: 0.8, Sources: []string{"sslbl"}},
}

func render(t *testing.T, format string) string { return renderRows(t, format, rows...) }

func TestFormats(t *testing.T) {
	if got := render(t, "plain"); strings.Count(got, "\n") != len(rows) || !strings.HasPrefix(got, "203.0.113.9\n") {
		t.Errorf("plain:\n%s", got)
	}
	recs, err := csv.NewReader(strings.NewReader(render(t, "csv"))).ReadAll()
	if err != nil || len(recs) != len(rows)+1 || recs[1][3] != "feodo;firehol" || recs[1][2] != "0.9700" {
		t.Errorf("csv: %v %v", recs, err)
	}
	lines := strings.Split(strings.TrimSpace(render(t, "json")), "\n")
	var r Row
	if len(lines) != len(rows) || json.Unmarshal([]byte(lines[3]), &r) != nil || r.Value != "evil.example.com" {
		t.Errorf("json: %v", lines)
	}
	rpz := render(t, "rpz")
	for _, want := range []string{"$TTL 300", "@ SOA localhost.", "\n  NS localhost.",
		"\n32.9.113.0.203.rpz-ip CNAME .", "\n24.0.176.119.7.rpz-ip CNAME .", "\n128.5.zz.10.2a0f.rpz-ip CNAME .",
		"\nevil.example.com CNAME .", "\n*.evil.example.com CNAME .", "\nbad.example.net CNAME ."} {
		if !strings.Contains(rpz, want) {
			t.Errorf("rpz lacks %q:\n%s", want, rpz)
		}
	}
	if strings.Contains(rpz, "4da1") {
		t.Error("rpz carries a hash, which has no DNS form")
	}
	nft := render(t, "nft")
	for _, want := range []string{"table inet tip {", "set blacklist_v4 {", "type ipv4_addr", "flags interval", "auto-merge",
		"\t\t\t203.0.113.9,\n\t\t\t7.119.176.0/24\n", "\t\t\t2a0f:10::5\n", "ip saddr @blacklist_v4 drop"} {
		if !strings.Contains(nft, want) {
			t.Errorf("nft lacks %q:\n%s", want, nft)
		}
	}
	if _, err := New("xml", &bytes.Buffer{}, time.Now()); err == nil {
		t.Error("unknown format accepted")
	}
}
