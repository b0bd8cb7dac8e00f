package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/lab/world"
)

// startLab runs a whole lab on free loopback ports, its clock frozen at at.
func startLab(t *testing.T, at time.Time) *Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the whole lab")
	}
	dir, err := os.MkdirTemp("", "tip-lab-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755) // Dovecot's users must reach the Maildir
	t.Cleanup(func() { os.RemoveAll(dir) })
	ports, err := devstack.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(filepath.Join(dir, "lab"))
	cfg.HTTPPort, cfg.DNSPort, cfg.IMAPPort = ports[0], ports[1], ports[2]
	cfg.Speed = 1e-9 // effectively frozen: the test sets lab time
	cfg.SlowChunkDelay = time.Millisecond
	l, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l.Clock.Set(at)
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestLabServesWhatItsTruthSays checks every service of a running lab against the
// truth the lab publishes at the same lab time.
func TestLabServesWhatItsTruthSays(t *testing.T) {
	at := world.DefaultStart.Add(50*time.Hour + 17*time.Minute)
	l := startLab(t, at)
	base := "http://" + l.HTTPAddr()

	var truth Truth
	getJSON(t, base+"/truth", &truth)
	if d := truth.At.Sub(at); d < 0 || d > time.Second {
		t.Fatalf("truth at %s, lab clock set to %s", truth.At, at)
	}
	if len(truth.Feeds) == 0 || len(truth.Spam.Messages) == 0 || len(truth.Networks) != 3 {
		t.Fatalf("truth: %d feeds, %d spam, %d networks", len(truth.Feeds), len(truth.Spam.Messages), len(truth.Networks))
	}

	// DNS answers equal the truth's current answers, for every answering domain.
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	for _, d := range truth.Domains {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(d.Name), dns.TypeA)
		r, _, err := c.Exchange(m, l.DNSAddr())
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		var got []netip.Addr
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				ip, _ := netip.AddrFromSlice(a.A.To4())
				got = append(got, ip)
			}
		}
		if d.Status == "active" && !slices.Equal(got, d.A) {
			t.Errorf("%s (%s): DNS answers %v, truth says %v", d.Name, d.Class, got, d.A)
		}
		if want := map[string]int{"nxdomain": dns.RcodeNameError, "servfail": dns.RcodeServerFailure, "refused": dns.RcodeRefused}[d.Status]; d.Status != "active" && r.Rcode != want {
			t.Errorf("%s is %s in the truth, DNS rcode %s", d.Name, d.Status, dns.RcodeToString[r.Rcode])
		}
	}

	// The ASN table in the real format covers every address the truth shows.
	resp, err := http.Get(base + "/iptoasn/ip2asn-combined.tsv.gz")
	if err != nil {
		t.Fatal(err)
	}
	tab, _, err := ipasn.Load(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range truth.Domains {
		for _, ip := range append(d.A, d.AAAA...) {
			if _, ok := tab.Lookup(ip); !ok {
				t.Errorf("%s of %s is missing from the ASN table", ip, d.Name)
			}
		}
	}

	// The feed index lists every feed the truth has.
	var idx struct{ Feeds []struct{ Name, Path string } }
	getJSON(t, base+"/feeds/", &idx)
	if len(idx.Feeds) != len(truth.Feeds) {
		t.Errorf("feed index lists %d feeds, truth %d", len(idx.Feeds), len(truth.Feeds))
	}

	// The agent trap's Maildir holds exactly its own stream received so far, none
	// of which is the IMAP trap's.
	agentMail := l.AgentSpam.Between(l.World.Start, l.Clock.Now())
	entries, err := os.ReadDir(filepath.Join(AgentMaildir(l.cfg.StateDir), "new"))
	if err != nil || len(agentMail) == 0 || len(entries) != len(agentMail) {
		t.Fatalf("the agent trap's Maildir holds %d messages (%v), its stream %d", len(entries), err, len(agentMail))
	}
	if truth.AgentTrap != l.World.AgentTrapMX || !strings.Contains(string(agentMail[0].Raw), "@"+truth.AgentTrap.Trap) {
		t.Fatalf("agent trap %+v in the truth; its first mail:\n%.600s", truth.AgentTrap, agentMail[0].Raw)
	}

	// The IMAP trap holds exactly the spam received so far.
	if l.Dovecot == nil {
		if _, err := os.Stat("/usr/sbin/dovecot"); err == nil {
			t.Fatalf("dovecot is installed but the trap did not start: %v", l.IMAPError)
		}
		t.Skip("dovecot-imapd not installed")
	}
	want := len(l.Spam.Between(l.World.Start, l.Clock.Now()))
	if got := imapMessages(t, l.Dovecot.Addr(), "trap", "trap-password"); got != want {
		t.Fatalf("IMAP INBOX holds %d messages, the lab received %d", got, want)
	}
}

// imapMessages logs in over plain IMAP and returns STATUS INBOX (MESSAGES).
func imapMessages(t *testing.T, addr, user, pass string) int {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	line := func() string {
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("imap: %v", err)
		}
		return s
	}
	line() // greeting
	fmt.Fprintf(conn, "a LOGIN %s %s\r\n", user, pass)
	if s := line(); !strings.HasPrefix(s, "a OK") {
		for !strings.HasPrefix(s, "a ") {
			s = line()
		}
		if !strings.HasPrefix(s, "a OK") {
			t.Fatalf("imap login: %s", s)
		}
	}
	fmt.Fprintf(conn, "b STATUS INBOX (MESSAGES)\r\n")
	n := -1
	for s := line(); !strings.HasPrefix(s, "b "); s = line() {
		fmt.Sscanf(s, "* STATUS INBOX (MESSAGES %d)", &n)
	}
	return n
}

func TestLabClockSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock.json")
	c1, err := loadClock(path, world.DefaultStart, 3600)
	if err != nil {
		t.Fatal(err)
	}
	first := c1.Now()
	time.Sleep(20 * time.Millisecond)
	c2, err := loadClock(path, world.DefaultStart, 1) // a new speed does not reset a running lab
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Now().After(first) || c2.Speed() != 3600 {
		t.Fatalf("restarted clock at %s (speed %g), was %s", c2.Now(), c2.Speed(), first)
	}
	os.WriteFile(path, []byte("{not json"), 0o644)
	if _, err := loadClock(path, world.DefaultStart, 1); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("corrupt clock file: %v", err)
	}
}

func TestTruthAtIsAPureFunctionOfSeedAndTime(t *testing.T) {
	at := world.DefaultStart.Add(30 * time.Hour)
	a, b := TruthAt(1, 200, at, 6*time.Hour), TruthAt(1, 200, at, 6*time.Hour)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatal("two truths for the same seed and time differ")
	}
	if len(a.Spam.Messages) == 0 {
		t.Fatal("no spam in six lab hours")
	}
}
