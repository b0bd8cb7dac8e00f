package dnsserve_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/dnsserve"
	"github.com/tip-project/tip/internal/testenv"
)

// named runs a real BIND with conf (its folder is {dir}) and returns its
// address; it is stopped when the test ends.
func named(t *testing.T, conf func(dir, addr string) string) (string, string) {
	t.Helper()
	bin, err := exec.LookPath("named")
	if err != nil {
		bin = "/usr/sbin/named"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("named not found: install bind9 (deploy/local/tools.sh does)")
		}
	}
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	path := filepath.Join(dir, "named.conf")
	if err := os.WriteFile(path, []byte(conf(dir, addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("named-checkconf", path).CombinedOutput(); err != nil {
		t.Fatalf("named-checkconf: %v\n%s", err, out)
	}
	testenv.RunDaemon(t, "named", exec.Command(bin, "-g", "-4", "-c", path), filepath.Join(dir, "named.log"))
	return addr, dir
}

// BIND is a secondary of TIP's RPZ zone over TSIG: it transfers the zone signed
// with the key (TIP refuses an unsigned transfer), and named-checkzone accepts
// the zone BIND wrote and `tip blacklists export --format rpz`.
func TestBINDSecondaryOverTSIG(t *testing.T) {
	db := listedDB(t, "evil-login.com", "bad-bank.net", "phish.example.org")
	const secret = "dGlwLXJwei10cmFuc2Zlci1rZXktZm9yLXRlc3Rz"
	cfg := dnsserve.Config{RPZ: []dnsserve.RPZ{{Name: "rpz.tip.", Selector: dnsserve.Selector{MinScore: 0.5}}},
		TransferAllow: testenv.Loopback(), TSIG: map[string]string{"tip-xfr.": secret}}
	s, tip := startTIP(t, cfg, db)
	thost, tport, _ := net.SplitHostPort(tip)
	addr, dir := named(t, func(dir, addr string) string {
		host, port, _ := net.SplitHostPort(addr)
		return fmt.Sprintf(`key "tip-xfr." {
	algorithm hmac-sha256;
	secret "%s";
};
options {
	directory "%s";
	pid-file "%s/named.pid";
	listen-on port %s { %s; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
	dnssec-validation no;
	response-policy { zone "rpz.tip"; };
};
controls { };
zone "rpz.tip" {
	type secondary;
	primaries port %s { %s key "tip-xfr."; };
	file "rpz.tip.db";
	masterfile-format text;
};
`, secret, dir, dir, port, host, tport, thost)
	})
	want := s.Serials()["rpz.tip."]
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, _, err := (&dns.Client{Timeout: time.Second}).Exchange(new(dns.Msg).SetQuestion("rpz.tip.", dns.TypeSOA), addr)
		if err == nil && m.Rcode == dns.RcodeSuccess && len(m.Answer) == 1 && m.Answer[0].(*dns.SOA).Serial == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("BIND has not transferred serial %d in 30 s (last: %v, %v)", want, m, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// BIND answers the zone's policy records as TIP serves them.
	m, _, err := (&dns.Client{}).Exchange(new(dns.Msg).SetQuestion("evil-login.com.rpz.tip.", dns.TypeCNAME), addr)
	if err != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.CNAME).Target != "." {
		t.Errorf("BIND's copy of evil-login.com: %v, %v", m, err)
	}
	zonefile := filepath.Join(dir, "rpz.tip.db")
	if out, err := exec.Command("named-checkzone", "rpz.tip", zonefile).CombinedOutput(); err != nil {
		t.Errorf("named-checkzone on BIND's transferred zone: %v\n%s", err, out)
	}

	// The export a CERT loads by hand passes too.
	tipBin := testenv.BuildTip(t)
	exported := filepath.Join(t.TempDir(), "rpz.zone")
	cmd := exec.Command(tipBin, "blacklists", "export", "--format", "rpz", "-o", exported)
	cmd.Env = append(os.Environ(), "TIP_POSTGRES_DSN="+testenv.DSN(t, db))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tip blacklists export: %v\n%s", err, out)
	}
	if out, err := exec.Command("named-checkzone", "rpz.tip", exported).CombinedOutput(); err != nil {
		t.Errorf("named-checkzone on the export: %v\n%s", err, out)
	}
}
