package dnsserve_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/dnsserve"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

// postfixMainCf is the private Postfix's main.cf ({dir} its folder): the
// DNSBL check and XCLIENT from loopback, as the README gives them.
const postfixMainCf = `compatibility_level = 3.6
queue_directory = {dir}/spool
data_directory = {dir}/data
meta_directory = /etc/postfix
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.trap.example
mydestination = $myhostname
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
smtputf8_enable = no
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_client_restrictions = reject_rbl_client bl.tip
smtpd_relay_restrictions = reject_unauth_destination
`

// postfixMasterCf runs smtpd on {addr} and the daemons a delivery needs.
const postfixMasterCf = `{addr} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
local     unix  - n n -  - local
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
`

// startPostfix runs a real Postfix for the test, its resolver pointed at
// 127.0.0.1 (port 53, where glibc asks): in a mount namespace of its own, so
// the machine's /etc/resolv.conf stays as it is.
func startPostfix(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the Postfix test runs as root: Postfix's queue belongs to its postfix user, and the test binds 127.0.0.1:53")
	}
	// Postfix's daemons run as its own user: its folder must be reachable
	// by them, which a test's temporary folder (0700) is not.
	dir, err := os.MkdirTemp("", "tip-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	for _, d := range []string{"conf", "spool", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, text string) {
		text = strings.ReplaceAll(strings.ReplaceAll(text, "{dir}", dir), "{addr}", addr)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("conf/main.cf", postfixMainCf)
	write("conf/master.cf", postfixMasterCf)
	write("resolv.conf", "nameserver 127.0.0.1\n")
	postfix := func(args ...string) {
		t.Helper()
		// Postfix speaks to a terminal only; script(1) gives it one.
		cmd := exec.Command("script", "-qec", "postfix -c "+filepath.Join(dir, "conf")+" "+strings.Join(args, " "), "/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("postfix %s: %v\n%s", args, err, out)
		}
	}
	postfix("set-permissions")
	postfix("check")
	logf, err := os.Create(filepath.Join(dir, "fg.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		"mount --bind "+filepath.Join(dir, "resolv.conf")+" /etc/resolv.conf && exec postfix -c "+filepath.Join(dir, "conf")+" start-fg")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		postfix("stop")
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Logf("postfix's log:\n%s", b)
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			m, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Fatalf("postfix does not listen on %s after 20 s\n%s\n%s", addr, b, m)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// swaks sends a mail through the server as if from client (XCLIENT), and
// returns the conversation.
func swaks(t *testing.T, server, client string) string {
	t.Helper()
	out, _ := exec.Command("swaks", "--server", server, "--xclient-addr", client, "--from", "spammer@bulk.example",
		"--to", "trap@mx.trap.example", "--quit-after", "RCPT", "--timeout", "20").CombinedOutput()
	return string(out)
}

// A real Postfix with reject_rbl_client on TIP's DNSBL refuses a sender TIP
// lists with a 5xx naming the zone, and takes mail from one it does not.
func TestPostfixRefusesListedSenders(t *testing.T) {
	db := listedDB(t, "evil-login.com")
	ctx := context.Background()
	if err := db.UpsertSource(ctx, storage.SourceRow{Name: "tip-spamtrap-senders", URL: "tip://spamtraps", Format: "ip-list", Type: "ipv4", Prior: 0.6, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	loadList(t, db, "tip-spamtrap-senders", "ip-list", "45.10.0.7\n")
	cfg := dnsserve.Config{DNSBL: []dnsserve.DNSBL{{Name: "bl.tip.", Lists: []dnsserve.List{
		{Code: 2, Name: "aggregate", Selector: dnsserve.Selector{MinScore: 0.5}},
		{Code: 3, Name: "spamtrap senders", Selector: dnsserve.Selector{Sources: []string{"tip-spamtrap-senders"}}},
	}}}}
	s, err := dnsserve.New(cfg, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// glibc asks port 53: the test's server takes 127.0.0.1:53.
	udp, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		t.Fatalf("the Postfix test serves the DNSBL on 127.0.0.1:53, where Postfix's resolver asks: %v", err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:53")
	if err != nil {
		udp.Close()
		t.Fatalf("the Postfix test serves the DNSBL on 127.0.0.1:53: %v", err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { defer close(served); s.ServeListeners(sctx, udp, tcp) }()
	t.Cleanup(func() { stop(); <-served })

	mx := startPostfix(t)
	listed := swaks(t, mx, "45.10.0.7")
	if !strings.Contains(listed, "<** 554") || !strings.Contains(listed, "blocked using bl.tip") {
		t.Errorf("a listed sender was not refused naming bl.tip:\n%s", listed)
	}
	clean := swaks(t, mx, "45.10.0.8")
	if !strings.Contains(clean, "<-  250 2.1.5 Ok") {
		t.Errorf("an unlisted sender was not accepted:\n%s", clean)
	}
	t.Log(lastLine(listed, "<** 554"))
}

func lastLine(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return fmt.Sprint(strings.TrimSpace(l))
		}
	}
	return ""
}
