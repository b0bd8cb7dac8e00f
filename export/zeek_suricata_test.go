package export

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

func renderRows(t *testing.T, format string, rows ...Row) string {
	t.Helper()
	var b bytes.Buffer
	w, err := New(format, &b, time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var mixed = []Row{
	{Type: "ipv4", Value: "45.10.0.7", Score: 0.93, Sources: []string{"feodo", "tip-flux-agents"}, Context: []Context{
		{Source: "feodo", Category: "botnet-c2", Malware: "Emotet\tE5", Port: "443"}, {Source: "tip-flux-agents", Category: "fast-flux"}}},
	{Type: "ipv6", Value: "2001:db8::7", Score: 0.5, Sources: []string{"a"}},
	{Type: "cidr", Value: "45.20.0.0/16", Score: 0.004, Sources: []string{"drop"}},
	{Type: "domain", Value: "evil.example", Score: 1, Sources: []string{"a"}},
	{Type: "url", Value: "http://evil.example/login.php?x=1", Score: 0.7, Sources: []string{"urlhaus"}},
	{Type: "sha1", Value: "da39a3ee5e6b4b0d3255bfef95601890afd80709", Score: 0.8, Sources: []string{"sslbl"}},
	{Type: "asn", Value: "AS64500", Score: 0.6, Sources: []string{"asn-drop"}},
}

// The Zeek intel file: the Intel framework's header, tab-separated fields
// (four, none empty), Zeek's types, URLs without their scheme; no ASN.
func TestZeekIntelFile(t *testing.T) {
	out := renderRows(t, "zeek", mixed...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc" {
		t.Fatalf("header %q", lines[0])
	}
	want := []string{
		"45.10.0.7\tIntel::ADDR\ttip\tscore 0.93; listed by feodo, tip-flux-agents; botnet-c2 (Emotet E5, port 443); fast-flux",
		"2001:db8::7\tIntel::ADDR\ttip\tscore 0.50; listed by a",
		"45.20.0.0/16\tIntel::SUBNET\ttip\tscore 0.00; listed by drop",
		"evil.example\tIntel::DOMAIN\ttip\tscore 1.00; listed by a",
		"evil.example/login.php?x=1\tIntel::URL\ttip\tscore 0.70; listed by urlhaus",
		"da39a3ee5e6b4b0d3255bfef95601890afd80709\tIntel::FILE_HASH\ttip\tscore 0.80; listed by sslbl",
	}
	if got := lines[1:]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range lines[1:] {
		if f := strings.Split(l, "\t"); len(f) != 4 || slicesContainEmpty(f) {
			t.Errorf("line %q: want 4 non-empty fields", l)
		}
	}
}

// Suricata's IP reputation: "ip,category,score" with the score in 1..127, for
// addresses and blocks alone, and the categories file naming the category.
func TestSuricataReputation(t *testing.T) {
	out := renderRows(t, "suricata", mixed...)
	want := "45.10.0.7,1,118\n45.10.0.7,2,118\n45.10.0.7,12,118\n2001:db8::7,1,64\n45.20.0.0/16,1,1\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	cats := renderRows(t, "suricata-categories", mixed...)
	lines := strings.Split(strings.TrimSuffix(cats, "\n"), "\n")
	if lines[0] != "1,TIP,listed by TIP's blacklists (tip blacklists export --format suricata)" || len(lines) != 1+len(SuricataCategories) {
		t.Errorf("categories %q", cats)
	}
	// Suricata reads id,shortname,description: ids from 1 to 60, unique short
	// names without separators, within 32 bytes.
	ids, names := map[string]bool{}, map[string]bool{}
	for _, l := range lines {
		f := strings.SplitN(l, ",", 3)
		if len(f) != 3 || ids[f[0]] || names[f[1]] || len(f[1]) > 32 || strings.ContainsAny(f[1], " -,") {
			t.Errorf("category line %q", l)
		}
		if n, err := strconv.Atoi(f[0]); err != nil || n < 1 || n > 60 {
			t.Errorf("category id %q: want 1 to 60", f[0])
		}
		ids[f[0]], names[f[1]] = true, true
	}
	for score, want := range map[float64]int{0: 1, 0.5: 64, 1: 127, 1.5: 127} {
		if got := SuricataScore(score); got != want {
			t.Errorf("SuricataScore(%v) = %d, want %d", score, got, want)
		}
	}
}

func slicesContainEmpty(fs []string) bool {
	for _, f := range fs {
		if f == "" {
			return true
		}
	}
	return false
}
