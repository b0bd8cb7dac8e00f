package export

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The nftables export passes the real nft's check mode (`nft -c -f`, which
// parses and validates the ruleset against the kernel without applying it),
// overlapping blocks from several sources included; a broken one does not.
func TestNftExportPassesNftCheck(t *testing.T) {
	nft, err := exec.LookPath("nft")
	if err != nil {
		nft = "/usr/sbin/nft"
		if _, err := os.Stat(nft); err != nil {
			t.Fatal("nft not found: install nftables (deploy/local/tools.sh does)")
		}
	}
	var b bytes.Buffer
	w, err := New("nft", &b, time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Row{
		{Type: "ipv4", Value: "45.10.0.7", Score: 0.9, Sources: []string{"a"}},
		{Type: "cidr", Value: "45.20.0.0/16", Score: 0.8, Sources: []string{"b"}},
		{Type: "cidr", Value: "45.20.1.0/24", Score: 0.7, Sources: []string{"c"}}, // inside the /16: auto-merge
		{Type: "ipv4", Value: "45.20.1.9", Score: 0.7, Sources: []string{"c"}},
		{Type: "ipv6", Value: "2001:db8::7", Score: 0.9, Sources: []string{"a"}},
		{Type: "cidr", Value: "2001:db8:1::/48", Score: 0.9, Sources: []string{"a"}},
		{Type: "domain", Value: "evil.example", Score: 0.9, Sources: []string{"a"}}, // no nft form
	} {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(ruleset string) (string, error) {
		path := filepath.Join(t.TempDir(), "tip.nft")
		if err := os.WriteFile(path, []byte(ruleset), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(nft, "-c", "-f", path).CombinedOutput()
		if strings.Contains(string(out), "Operation not permitted") {
			t.Fatalf("nft -c needs CAP_NET_ADMIN here (README: checking the nftables export): %s", out)
		}
		return string(out), err
	}
	if out, err := check(b.String()); err != nil {
		t.Fatalf("nft -c -f rejects the export: %v\n%s\n%s", err, out, b.String())
	}
	broken := strings.Replace(b.String(), "45.10.0.7", "45.10.0.700", 1)
	if _, err := check(broken); err == nil {
		t.Error("nft -c -f accepts an address 45.10.0.700: the check cannot fail")
	}
}
