package export

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	ruleset := renderRows(t, "nft",
		Row{Type: "ipv4", Value: "45.10.0.7", Score: 0.9, Sources: []string{"a"}},
		Row{Type: "cidr", Value: "45.20.0.0/16", Score: 0.8, Sources: []string{"b"}},
		Row{Type: "cidr", Value: "45.20.1.0/24", Score: 0.7, Sources: []string{"c"}}, // inside the /16: auto-merge
		Row{Type: "ipv4", Value: "45.20.1.9", Score: 0.7, Sources: []string{"c"}},
		Row{Type: "ipv6", Value: "2001:db8::7", Score: 0.9, Sources: []string{"a"}},
		Row{Type: "cidr", Value: "2001:db8:1::/48", Score: 0.9, Sources: []string{"a"}},
		Row{Type: "domain", Value: "evil.example", Score: 0.9, Sources: []string{"a"}}, // no nft form
	)
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
	if out, err := check(ruleset); err != nil {
		t.Fatalf("nft -c -f rejects the export: %v\n%s\n%s", err, out, ruleset)
	}
	broken := strings.Replace(ruleset, "45.10.0.7", "45.10.0.700", 1)
	if _, err := check(broken); err == nil {
		t.Error("nft -c -f accepts an address 45.10.0.700: the check cannot fail")
	}
}
