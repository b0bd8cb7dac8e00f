package trap

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tip-project/tip/lab/world"
)

// imapConn speaks just enough raw IMAP for the tests.
type imapConn struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	tag int
}

func dialIMAP(t *testing.T, c net.Conn) *imapConn {
	t.Helper()
	ic := &imapConn{t: t, c: c, r: bufio.NewReader(c)}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if greeting := ic.line(); !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("greeting: %q", greeting)
	}
	return ic
}

func (ic *imapConn) line() string {
	ic.t.Helper()
	s, err := ic.r.ReadString('\n')
	if err != nil {
		ic.t.Fatalf("imap read: %v", err)
	}
	// A literal {n} follows the line: read it in as part of the response.
	if m := regexp.MustCompile(`\{(\d+)\}\r\n$`).FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		lit := make([]byte, n)
		if _, err := io.ReadFull(ic.r, lit); err != nil {
			ic.t.Fatalf("imap literal: %v", err)
		}
		return s + string(lit) + ic.line()
	}
	return s
}

// cmd sends a command and returns the untagged responses; it fails the test unless
// the tagged answer is OK.
func (ic *imapConn) cmd(format string, args ...any) []string {
	ic.t.Helper()
	ic.tag++
	tag := fmt.Sprintf("a%d", ic.tag)
	if _, err := fmt.Fprintf(ic.c, "%s %s\r\n", tag, fmt.Sprintf(format, args...)); err != nil {
		ic.t.Fatal(err)
	}
	var untagged []string
	for {
		l := ic.line()
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				ic.t.Fatalf("%s: %s", strings.Fields(format)[0], strings.TrimSpace(l))
			}
			return untagged
		}
		untagged = append(untagged, l)
	}
}

func exists(t *testing.T, lines []string) int {
	t.Helper()
	n := -1
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "*" && f[2] == "EXISTS" {
			n, _ = strconv.Atoi(f[1])
		}
	}
	return n
}

func TestDovecotServesTheMaildir(t *testing.T) {
	if _, err := os.Stat(DovecotBinary); err != nil {
		t.Skip("dovecot is not installed (apt-get install dovecot-imapd)")
	}
	dir := publicDir(t)
	maildir := filepath.Join(dir, "Maildir")
	clock := world.FixedClock(epoch.Add(12 * time.Hour))
	src := newFakeSource()
	d := NewDelivery(src, clock, maildir, filepath.Join(dir, "delivery.state"))
	delivered, err := d.DeliverDue()
	if err != nil || delivered == 0 {
		t.Fatalf("deliver: %d, %v", delivered, err)
	}
	tlsPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dc, err := StartDovecot(ctx, DovecotConfig{Dir: filepath.Join(dir, "dovecot"), Maildir: maildir,
		User: "trap", Password: "s3cret pass", TLSPort: tlsPort})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = dc.Stop()
		}
	}()

	c, err := net.Dial("tcp", dc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ic := dialIMAP(t, c)
	if capa := strings.Join(ic.cmd("CAPABILITY"), ""); !strings.Contains(capa, "STARTTLS") {
		t.Errorf("no STARTTLS in %q", capa)
	}
	ic.cmd(`LOGIN trap "s3cret pass"`)
	if n := exists(t, ic.cmd("SELECT INBOX")); n != delivered {
		t.Errorf("SELECT INBOX: %d EXISTS, delivered %d", n, delivered)
	}

	// INTERNALDATE is the lab receipt time; the body is the raw mail.
	first := src.Between(time.Time{}, clock.Now())[0]
	fetch := strings.Join(ic.cmd("FETCH 1 (INTERNALDATE BODY.PEEK[])"), "")
	if want := first.Time.UTC().Format(`"02-Jan-2006 15:04:05 -0700"`); !strings.Contains(fetch, want) {
		t.Errorf("FETCH 1: want INTERNALDATE %s in %.200q", want, fetch)
	}
	if want := strings.ReplaceAll(string(first.Raw), "\n", "\r\n"); !strings.Contains(fetch, want) {
		t.Errorf("FETCH 1 body differs from the delivered mail: %.300q", fetch)
	}

	// New mail shows up as lab time passes.
	clock.Advance(6 * time.Hour)
	more, err := d.DeliverDue()
	if err != nil || more == 0 {
		t.Fatalf("deliver more: %d, %v", more, err)
	}
	if n := exists(t, ic.cmd("NOOP")); n != delivered+more {
		t.Errorf("after new mail: %d EXISTS, want %d", n, delivered+more)
	}
	ic.cmd("LOGOUT")

	// Root hands the Maildir to the mail user; new deliveries follow.
	if os.Geteuid() == 0 {
		u, err := user.Lookup(dc.MailUser())
		if err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(filepath.Join(maildir, "cur"))
		entries2, _ := os.ReadDir(filepath.Join(maildir, "new"))
		for _, e := range append(entries, entries2...) {
			fi, _ := e.Info()
			if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != u.Uid {
				t.Errorf("%s owned by uid %d, want %s (%s)", e.Name(), uid, u.Uid, dc.MailUser())
			}
		}
	}

	// TLS: STARTTLS on the plain port and implicit TLS on the IMAPS port, both trusting
	// the self-signed certificate.
	pem, err := os.ReadFile(dc.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	c2, err := net.Dial("tcp", dc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	ic2 := dialIMAP(t, c2)
	ic2.cmd("STARTTLS")
	tc := tls.Client(c2, tlsConf)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("STARTTLS handshake: %v", err)
	}
	ic2.c, ic2.r = tc, bufio.NewReader(tc)
	ic2.cmd(`LOGIN trap "s3cret pass"`)
	if n := exists(t, ic2.cmd("EXAMINE INBOX")); n != delivered+more {
		t.Errorf("over STARTTLS: %d EXISTS", n)
	}
	ic2.cmd("LOGOUT")

	c3, err := tls.Dial("tcp", dc.TLSAddr(), tlsConf)
	if err != nil {
		t.Fatalf("IMAPS: %v", err)
	}
	defer c3.Close()
	ic3 := dialIMAP(t, c3)
	ic3.cmd(`LOGIN trap "s3cret pass"`)
	ic3.cmd("LOGOUT")

	// A wrong password is refused.
	c4, err := net.Dial("tcp", dc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	ic4 := dialIMAP(t, c4)
	fmt.Fprintf(c4, "x LOGIN trap wrong\r\n")
	for {
		l := ic4.line()
		if strings.HasPrefix(l, "x ") {
			if !strings.HasPrefix(l, "x NO") {
				t.Errorf("wrong password: %q", l)
			}
			break
		}
	}

	stopped = true
	if err := dc.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{dc.Addr(), dc.TLSAddr()} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still answers after Stop", addr)
		}
	}
}

func TestStartDovecotRejectsUnreachableFolders(t *testing.T) {
	if _, err := os.Stat(DovecotBinary); err != nil {
		t.Skip("dovecot is not installed (apt-get install dovecot-imapd)")
	}
	if os.Geteuid() != 0 {
		t.Skip("only root drops to other users")
	}
	dir := t.TempDir() // 0700 parent: the mail user cannot get in
	_, err := StartDovecot(context.Background(), DovecotConfig{Dir: filepath.Join(dir, "dovecot"),
		Maildir: filepath.Join(dir, "Maildir"), User: "trap", Password: "x"})
	if err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("StartDovecot in a private folder: %v", err)
	}
}
