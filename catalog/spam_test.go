package catalog

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/lab/spam"
	"github.com/tip-project/tip/lab/world"
)

func TestShippedSpamCatalogsLoad(t *testing.T) {
	for _, name := range []string{"spam.yaml", "spam-lab.yaml"} {
		s, err := LoadSpam(filepath.Join("..", "config", name))
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Traps) == 0 || len(s.Archives) == 0 {
			t.Fatalf("%s: %+v", name, s)
		}
	}
}

// config/spam-lab.yaml must describe the lab's traps for seed 1.
func TestLabSpamCatalogMatchesTheLab(t *testing.T) {
	s, err := LoadSpam(filepath.Join("..", "config", "spam-lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w := world.NewWorld(1)
	trusted := spam.NewGenerator(w, spam.Options{}).TrustedRelays()
	for _, mx := range w.TrapMX {
		found := false
		for _, tr := range s.Traps {
			if len(tr.MX) == 1 && tr.MX[0] == mx.Name {
				found = true
				if len(tr.MXAddrs) != 1 || tr.MXAddrs[0] != netip.PrefixFrom(mx.Addr, 32) {
					t.Errorf("%s: mx_addrs %v, the lab's MX is %s", tr.Name, tr.MXAddrs, mx.Addr)
				}
				if len(tr.Trusted) != len(trusted) {
					t.Errorf("%s: trusted %v, the lab's relays are %v", tr.Name, tr.Trusted, trusted)
				}
				for i, a := range trusted {
					if i < len(tr.Trusted) && tr.Trusted[i] != netip.PrefixFrom(a, a.BitLen()) {
						t.Errorf("%s: trusted %v, the lab's relays are %v", tr.Name, tr.Trusted, trusted)
					}
				}
			}
		}
		if !found {
			t.Errorf("the lab's trap MX %s is not in spam-lab.yaml", mx.Name)
		}
	}
}

func TestSpamCatalogErrors(t *testing.T) {
	head := "traps:\n  - name: t\n    mx: [mx.example.org]\n"
	for name, c := range map[string]struct{ yaml, want string }{
		"no traps":         {"archives: []\n", "traps: missing"},
		"bad trusted":      {head + "    trusted: [10.0.0.0/33]\n", "x.yaml:4: traps[0].trusted: \"10.0.0.0/33\""},
		"unknown trap":     {head + "archives:\n  - {name: a, index: \"https://x.org/spam/\", trap: nope}\n", "x.yaml:5: archives[0].trap: \"nope\" is not one of the traps"},
		"bad index":        {head + "archives:\n  - {name: a, index: \"ftp://x\", trap: t}\n", "x.yaml:5: archives[0].index"},
		"no password":      {head + "mailboxes:\n  - {name: m, address: \"imap.x.org:993\", username: u, trap: t}\n", "mailboxes[0].password_env: missing"},
		"bad tls":          {head + "mailboxes:\n  - {name: m, address: \"imap.x.org:993\", username: u, trap: t, password: p, tls: maybe}\n", "mailboxes[0].tls: \"maybe\": want one of tls, starttls, none"},
		"move without":     {head + "mailboxes:\n  - {name: m, address: \"imap.x.org:993\", username: u, trap: t, password: p, after: move}\n", "mailboxes[0].move_to"},
		"duplicate name":   {head + "archives:\n  - {name: a, index: \"https://x.org/\", trap: t}\nmailboxes:\n  - {name: a, address: \"x:1\", username: u, trap: t, password: p}\n", "mailboxes[0].name: \"a\" is already used at line 5"},
		"unknown key":      {head + "    mxx: []\n", "x.yaml:4: traps[0].mxx: unknown key"},
		"agent over http":  {head + "agents:\n  - {name: a, url: \"http://mx.x.org:8443\", token_env: T, fingerprint: \"ab:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd\"}\n", "agents[0].url: \"http://mx.x.org:8443\": an agent serves HTTPS only"},
		"agent no token":   {head + "agents:\n  - {name: a, url: \"https://mx.x.org:8443\", fingerprint: \"ab:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd\"}\n", "agents[0].token_env: missing"},
		"agent bad pin":    {head + "agents:\n  - {name: a, url: \"https://mx.x.org:8443\", token_env: T, fingerprint: abcd}\n", "agents[0].fingerprint: \"abcd\": want the certificate's SHA-256"},
		"agent no pin":     {head + "agents:\n  - {name: a, url: \"https://mx.x.org:8443\", token_env: T}\n", "agents[0].fingerprint: give one of fingerprint"},
		"agent two pins":   {head + "agents:\n  - {name: a, url: \"https://mx.x.org:8443\", token_env: T, certificate_file: c.pem, fingerprint: \"" + strings.Repeat("ab", 32) + "\"}\n", "agents[0].fingerprint: give one of fingerprint"},
		"private value":    {head + "archives:\n  - {name: a, index: \"https://x.org/\", trap: t, allow_private: 1x}\n", "x.yaml:5: archives[0].allow_private: want true or false"},
		"private top":      {"allow_private: maybe\n" + head, "x.yaml:1: allow_private: want true or false"},
		"agent two tokens": {head + "agents:\n  - {name: a, url: \"https://mx.x.org:8443\", token_env: T, token_file: t.token, fingerprint: \"ab:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd:cd\"}\n", "agents[0].token_env: give one of token_env, token_file and token"},
	} {
		_, err := ParseSpam("x.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

func TestAddMailboxKeepsCommentsAndValidates(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "config", "spam.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "spam.yaml")
	os.WriteFile(p, src, 0o644)
	m := Mailbox{Name: "new-trap", Address: "imap.example.org:993", TLS: "tls", Username: "trap@example.org",
		PasswordEnv: "TIP_IMAP_NEW", Mailbox: "INBOX", After: "keep", Trap: "untroubled", Interval: 10 * time.Minute}
	if err := AddMailbox(p, m); err != nil {
		t.Fatal(err)
	}
	c, err := LoadSpam(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Mailboxes) != 1 || c.Mailboxes[0].Name != "new-trap" || c.Mailboxes[0].Interval != 10*time.Minute || c.Mailboxes[0].Secret() != os.Getenv("TIP_IMAP_NEW") {
		t.Fatalf("mailboxes %+v", c.Mailboxes)
	}
	data, _ := os.ReadFile(p)
	if !strings.Contains(string(data), "Bruce Guenter's spamtrap domains") {
		t.Error("comments lost")
	}
	// A second mailbox of the same name, or one naming an unknown trap, is refused
	// and the file stays as it was.
	for _, bad := range []Mailbox{m, {Name: "x", Address: "a:1", Username: "u", PasswordEnv: "E", Trap: "nope"}} {
		if err := AddMailbox(p, bad); err == nil {
			t.Errorf("added %+v", bad)
		}
	}
	if again, _ := os.ReadFile(p); string(again) != string(data) {
		t.Error("a refused mailbox changed the file")
	}
}

func TestAddAgentWritesNoTokenAndValidates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "spam.yaml")
	os.WriteFile(p, []byte("# my traps\ntraps:\n  - {name: t, mx: [mx.example.org]}\n"), 0o644)
	t.Setenv("TIP_TEST_AGENT_TOKEN", "tipa_secret")
	pin := strings.Repeat("AB:", 31) + "AB"
	fp, err := Fingerprint(pin)
	if err != nil || fp != strings.Repeat("ab", 32) {
		t.Fatalf("Fingerprint(%q) = %q, %v", pin, fp, err)
	}
	a := Agent{Name: "mx1", URL: "https://mx1.example.org:8443", TokenEnv: "TIP_TEST_AGENT_TOKEN", Fingerprint: fp, Raw: true, Interval: time.Minute}
	if err := AddAgent(p, a); err != nil {
		t.Fatal(err)
	}
	c, err := LoadSpam(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Agents) != 1 || c.Agents[0].Name != "mx1" || !c.Agents[0].Raw || c.Agents[0].Interval != time.Minute || c.Agents[0].Secret() != "tipa_secret" || c.Agents[0].Fingerprint != fp {
		t.Fatalf("agents %+v", c.Agents)
	}
	data, _ := os.ReadFile(p)
	if strings.Contains(string(data), "tipa_secret") || !strings.Contains(string(data), "# my traps") {
		t.Fatalf("catalog after AddAgent:\n%s", data)
	}
	if err := AddAgent(p, a); err == nil {
		t.Error("a second agent mx1 was added")
	}
	if again, _ := os.ReadFile(p); string(again) != string(data) {
		t.Error("a refused agent changed the file")
	}
}

// An agent's certificate may be pinned by its file (certificate_file, relative to
// the catalog's folder): the pin is its fingerprint as the file is now.
func TestAgentCertificateFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "spam.yaml")
	os.WriteFile(p, []byte("traps:\n  - {name: t, mx: [mx.example.org]}\nagents:\n"+
		"  - {name: mx1, url: \"https://mx1.example.org:8443\", token_env: T, certificate_file: agent/tls/cert.pem}\n"), 0o644)
	c, err := LoadSpam(p)
	if err != nil {
		t.Fatal(err)
	}
	ag := c.Agents[0]
	if ag.CertFile != filepath.Join(dir, "agent", "tls", "cert.pem") || ag.Fingerprint != "" {
		t.Fatalf("certificate_file resolved to %q, fingerprint %q", ag.CertFile, ag.Fingerprint)
	}
	if _, err := ag.Pin(); err == nil || !strings.Contains(err.Error(), "certificate_file") {
		t.Fatalf("Pin without the file = %v", err)
	}
	for range 2 { // a reinstalled agent: a new certificate, a new pin
		os.MkdirAll(filepath.Dir(ag.CertFile), 0o700)
		want, err := agent.WriteSelfSigned(ag.CertFile, filepath.Join(dir, "agent", "tls", "key.pem"), []string{"127.0.0.1"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ag.Pin(); err != nil || got != want {
			t.Fatalf("Pin = %q, %v; want %s", got, err, want)
		}
	}
}

// An agent's token may sit in a file beside the catalog (token_file, relative to
// the catalog's folder); SetAgent registers an agent once and replaces its entry
// only when something changed, never writing the token.
func TestAgentTokenFileAndSetAgent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "spam.yaml")
	os.WriteFile(p, []byte("# my traps\ntraps:\n  - {name: t, mx: [mx.example.org]}\nagents:\n"+
		"  - {name: mx1, url: \"https://mx1.example.org:8443\", token_file: secrets/mx1.token, fingerprint: \""+strings.Repeat("ab", 32)+"\"}\n"), 0o644)
	c, err := LoadSpam(p)
	if err != nil {
		t.Fatal(err)
	}
	ag := c.Agents[0]
	if ag.TokenFile != filepath.Join(dir, "secrets", "mx1.token") {
		t.Fatalf("token_file resolved to %q", ag.TokenFile)
	}
	if _, err := ag.ReadSecret(); err == nil || !strings.Contains(err.Error(), "mx1.token") || ag.Secret() != "" {
		t.Fatalf("ReadSecret without the file = %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
	os.WriteFile(ag.TokenFile, []byte("tipa_from_file\n"), 0o600)
	if s, err := ag.ReadSecret(); err != nil || s != "tipa_from_file" || ag.Secret() != s {
		t.Fatalf("ReadSecret = %q, %v", s, err)
	}

	lab := Agent{Name: "lab", URL: "https://127.0.0.1:8443", TokenFile: ag.TokenFile, Fingerprint: strings.Repeat("cd", 32), Raw: true, Interval: time.Minute, Enabled: true}
	for i, want := range []bool{true, false} {
		if changed, err := SetAgent(p, lab); err != nil || changed != want {
			t.Fatalf("SetAgent #%d = %t, %v; want %t", i+1, changed, err, want)
		}
	}
	before, _ := os.ReadFile(p)
	lab.Fingerprint = strings.Repeat("ef", 32) // reinstalled: a new certificate
	if changed, err := SetAgent(p, lab); err != nil || !changed {
		t.Fatalf("SetAgent with a new fingerprint = %t, %v", changed, err)
	}
	c, err = LoadSpam(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Agents) != 2 || c.Agents[0].Name != "mx1" || c.Agents[1].Name != "lab" || c.Agents[1].Fingerprint != lab.Fingerprint ||
		c.Agents[1].TokenFile != lab.TokenFile || !c.Agents[1].Raw || c.Agents[1].Interval != time.Minute || c.Agents[1].Secret() != "tipa_from_file" {
		t.Fatalf("agents after SetAgent: %+v", c.Agents)
	}
	after, _ := os.ReadFile(p)
	if strings.Contains(string(after), "tipa_from_file") || !strings.Contains(string(after), "# my traps") || string(after) == string(before) {
		t.Fatalf("catalog after SetAgent:\n%s", after)
	}
	// An entry SetAgent cannot write leaves the file as it was.
	if _, err := SetAgent(p, Agent{Name: "lab", URL: "http://127.0.0.1:8443", TokenFile: lab.TokenFile, Fingerprint: lab.Fingerprint}); err == nil {
		t.Error("SetAgent accepted an agent over http")
	}
	if again, _ := os.ReadFile(p); string(again) != string(after) {
		t.Error("a refused SetAgent changed the file")
	}
}

// An archive reaches private addresses only when it, or the catalog as a whole
// (the lab's), allows them.
func TestSpamAllowPrivate(t *testing.T) {
	body := `traps:
  - {name: t, mx: [mx.example.org]}
archives:
  - {name: public, index: "https://x.org/spam/", trap: t}
  - {name: mirror, index: "http://192.168.1.5/spam/", trap: t, allow_private: true}
`
	s, err := ParseSpam("x.yaml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if s.Archives[0].AllowPrivate || !s.Archives[1].AllowPrivate {
		t.Errorf("per archive: %+v", s.Archives)
	}
	// The key may come after the archives: it applies to all of them.
	s, err = ParseSpam("x.yaml", []byte(body+"allow_private: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Archives[0].AllowPrivate || !s.Archives[1].AllowPrivate {
		t.Errorf("catalog-wide: %+v", s.Archives)
	}
	for name, want := range map[string]bool{"spam.yaml": false, "spam-lab.yaml": true} {
		c, err := LoadSpam(filepath.Join("..", "config", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range c.Archives {
			if a.AllowPrivate != want {
				t.Errorf("%s: archive %s allows private destinations: %v, want %v", name, a.Name, a.AllowPrivate, want)
			}
		}
	}
}
