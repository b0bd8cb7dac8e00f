package testenv

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// UnboundBinary is the real Unbound (Debian's package, which
// deploy/local/tools.sh installs), or $TIP_UNBOUND.
func UnboundBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("TIP_UNBOUND"), "/usr/sbin/unbound"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("unbound"); err == nil {
		return p
	}
	t.Fatal("unbound not found: install it (apt-get install unbound; deploy/local/tools.sh does) or set TIP_UNBOUND")
	return ""
}

// StartUnbound runs an Unbound for the test on a free loopback port, with the
// server clause's own lines added to TIP's base (loopback only, no daemon, no
// control, its files in a temporary folder, which {dir} in the text names),
// and clauses (forward-zone:, rpz:, ...) after it. It returns the address
// once ready(addr) says Unbound answers, and stops it when the test ends
// (printing its log when the test failed).
func StartUnbound(t testing.TB, server, clauses string, ready func(addr string) bool) (addr, dir string) {
	t.Helper()
	return StartUnboundAt(t, FreeAddr(t), server, clauses, ready)
}

// StartUnboundAt is StartUnbound on an address the test chose (FreeAddr).
func StartUnboundAt(t testing.TB, addr, server, clauses string, ready func(addr string) bool) (string, string) {
	t.Helper()
	bin := UnboundBinary(t)
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf(`server:
	interface: %s
	port: %s
	do-ip6: no
	access-control: 127.0.0.0/8 allow
	username: ""
	chroot: ""
	directory: %q
	pidfile: %q
	do-daemonize: no
	use-syslog: no
	logfile: ""
	num-threads: 1
	do-not-query-localhost: no
`, host, port, dir, filepath.Join(dir, "unbound.pid"))
	conf += strings.ReplaceAll(server, "{dir}", dir) + "remote-control:\n\tcontrol-enable: no\n" + strings.ReplaceAll(clauses, "{dir}", dir)
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(filepath.Dir(bin), "unbound-checkconf"), path).CombinedOutput(); err != nil && !os.IsNotExist(err) {
		t.Fatalf("unbound-checkconf: %v\n%s\n%s", err, out, conf)
	}
	logPath := filepath.Join(dir, "unbound.log")
	exited := RunDaemon(t, "unbound", exec.Command(bin, "-d", "-c", path), logPath)
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("unbound exited: %v\n%s", err, b)
		default:
		}
		if ready(addr) {
			return addr, dir
		}
		if time.Now().After(deadline) {
			t.Fatal("unbound is not ready after 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Loopback are the loopback networks, IPv4 and IPv6.
func Loopback() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// RunDaemon starts a test's server process, its output in logPath, and kills
// it when the test ends, printing its log when the test failed. The channel
// receives its exit.
func RunDaemon(t testing.TB, name string, cmd *exec.Cmd, logPath string) <-chan error {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s's log:\n%s", name, b)
		}
	})
	return exited
}
