package trap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DovecotConfig describes a private Dovecot serving one Maildir to one user over IMAP
// on 127.0.0.1.
type DovecotConfig struct {
	Dir      string // Dovecot's own folder: config, base_dir, state, log, passwd file, TLS certificate
	Maildir  string // the Maildir served as INBOX (Delivery writes into it)
	User     string // IMAP login
	Password string
	Port     int // IMAP with STARTTLS; 0 picks a free port
	TLSPort  int // IMAPS (implicit TLS); 0: none
	// MailUser is the system account mail is read as when Dovecot starts as root
	// (Dovecot never touches mail as root); default "mail". Without root everything
	// runs as the current user.
	MailUser string
}

// Dovecot is a running private Dovecot, a child process of this one.
type Dovecot struct {
	cmd      *exec.Cmd
	addr     string
	tlsAddr  string
	certFile string
	logFile  string
	mailUser string
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

// DovecotBinary is where Debian's dovecot-core installs the server.
const DovecotBinary = "/usr/sbin/dovecot"

// StartDovecot writes a private configuration under cfg.Dir and starts Dovecot in the
// foreground as a child process. It returns once the IMAP port answers with a
// greeting. Dovecot stops when ctx ends or on Stop.
//
// Started as root (the usual case), Dovecot keeps its default privilege separation:
// login processes run as dovenull, internal ones as dovecot, and mail is accessed as
// cfg.MailUser, who is given the Maildir. Every folder on the way to cfg.Dir and
// cfg.Maildir must therefore be searchable by those users (not under /root or a 0700
// temporary folder).
func StartDovecot(ctx context.Context, cfg DovecotConfig) (*Dovecot, error) {
	bin, err := dovecotBinary()
	if err != nil {
		return nil, err
	}
	if err := checkDovecotVersion(bin); err != nil {
		return nil, err
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, err
	}
	if cfg.Maildir, err = filepath.Abs(cfg.Maildir); err != nil {
		return nil, err
	}
	if cfg.Port == 0 {
		if cfg.Port, err = freePort(); err != nil {
			return nil, fmt.Errorf("dovecot: %w", err)
		}
	}
	ids, err := dovecotUsers(cfg.MailUser)
	if err != nil {
		return nil, err
	}
	if err := prepareDovecotDirs(cfg, ids); err != nil {
		return nil, err
	}
	tlsDir := filepath.Join(cfg.Dir, "tls")
	certFile, keyFile := filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")
	if err := ensureCert(certFile, keyFile); err != nil {
		return nil, fmt.Errorf("dovecot: TLS certificate: %w", err)
	}
	passwd := filepath.Join(cfg.Dir, "passwd")
	if err := os.WriteFile(passwd, []byte(cfg.User+":{PLAIN}"+cfg.Password+"::::::\n"), 0o640); err != nil {
		return nil, fmt.Errorf("dovecot: %w", err)
	}
	if ids.root {
		// The auth process reads the passwd file as the dovecot user.
		if err := os.Chown(passwd, 0, ids.internal.gid); err != nil {
			return nil, fmt.Errorf("dovecot: %w", err)
		}
	}
	conf := filepath.Join(cfg.Dir, "dovecot.conf")
	if err := os.WriteFile(conf, []byte(dovecotConf(cfg, ids, certFile, keyFile, passwd)), 0o644); err != nil {
		return nil, fmt.Errorf("dovecot: %w", err)
	}

	out, err := os.OpenFile(filepath.Join(cfg.Dir, "dovecot.out"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dovecot: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(bin, "-F", "-c", conf)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	// Its own process group, so a Dovecot that will not stop can be killed with all
	// its children; and SIGTERM if this process dies without stopping it, so a crashed
	// lab does not leave Dovecot holding the port.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dovecot: %w", err)
	}
	d := &Dovecot{
		cmd:      cmd,
		addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)),
		certFile: certFile,
		logFile:  filepath.Join(cfg.Dir, "dovecot.log"),
		mailUser: ids.mail.name,
		exited:   make(chan struct{}),
	}
	if cfg.TLSPort != 0 {
		d.tlsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.TLSPort))
	}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()
	if err := d.waitReady(ctx, 15*time.Second); err != nil {
		_ = d.Stop()
		return nil, fmt.Errorf("dovecot did not start: %w%s", err, d.diagnostics())
	}
	go func() {
		select {
		case <-ctx.Done():
			_ = d.Stop()
		case <-d.exited:
		}
	}()
	return d, nil
}

// Addr is the host:port of the IMAP listener (plain, STARTTLS offered).
func (d *Dovecot) Addr() string { return d.addr }

// TLSAddr is the host:port of the IMAPS listener, "" if there is none.
func (d *Dovecot) TLSAddr() string { return d.tlsAddr }

// CertFile is the PEM file of Dovecot's self-signed certificate, for clients to trust.
func (d *Dovecot) CertFile() string { return d.certFile }

// LogFile is Dovecot's log.
func (d *Dovecot) LogFile() string { return d.logFile }

// MailUser is the system account Dovecot reads the Maildir as.
func (d *Dovecot) MailUser() string { return d.mailUser }

// Done is closed when Dovecot has exited, stopped or not.
func (d *Dovecot) Done() <-chan struct{} { return d.exited }

// Stop shuts Dovecot down (SIGTERM, then SIGKILL to its process group after 10 s) and
// waits until its ports are closed.
func (d *Dovecot) Stop() error {
	d.stopOnce.Do(func() {
		pid := d.cmd.Process.Pid
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-d.exited
		}
		// The master is gone; its children close the listening sockets as they exit.
		deadline := time.Now().Add(5 * time.Second)
		for _, addr := range []string{d.addr, d.tlsAddr} {
			for addr != "" && listening(addr) {
				if time.Now().After(deadline) {
					_ = syscall.Kill(-pid, syscall.SIGKILL)
					d.stopErr = fmt.Errorf("dovecot: %s still open after stop", addr)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	return d.stopErr
}

// waitReady polls the IMAP port until it greets.
func (d *Dovecot) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			return fmt.Errorf("dovecot exited: %v", d.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if last = greets(d.addr); last == nil {
			if d.tlsAddr == "" || tlsGreets(d.tlsAddr, d.certFile) == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no IMAP greeting on %s within %s: %v", d.addr, limit, last)
}

// diagnostics is the tail of what Dovecot wrote, for error messages.
func (d *Dovecot) diagnostics() string {
	var b strings.Builder
	for _, p := range []string{filepath.Join(filepath.Dir(d.logFile), "dovecot.out"), d.logFile} {
		data, err := os.ReadFile(p)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		if len(data) > 2000 {
			data = data[len(data)-2000:]
		}
		fmt.Fprintf(&b, "\n%s:\n%s", p, bytes.TrimSpace(data))
	}
	return b.String()
}

func greets(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return readGreeting(c)
}

func tlsGreets(addr, certFile string) error {
	pool := x509.NewCertPool()
	if pemBytes, err := os.ReadFile(certFile); err == nil {
		pool.AppendCertsFromPEM(pemBytes)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr,
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return err
	}
	return readGreeting(c)
}

// readGreeting expects an IMAP "* OK" greeting on c, then closes it.
func readGreeting(c net.Conn) error {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("unexpected greeting %q", strings.TrimSpace(line))
	}
	return nil
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func dovecotBinary() (string, error) {
	if _, err := os.Stat(DovecotBinary); err == nil {
		return DovecotBinary, nil
	}
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	return "", errors.New("dovecot is not installed (no " + DovecotBinary + "); install it with `apt-get install dovecot-imapd`")
}

// checkDovecotVersion accepts Dovecot 2.3, the version this configuration is written
// for (Debian 12); 2.4 renamed most settings.
func checkDovecotVersion(bin string) error {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return fmt.Errorf("dovecot --version: %w", err)
	}
	v := strings.TrimSpace(string(out))
	if !strings.HasPrefix(v, "2.3.") {
		return fmt.Errorf("dovecot %s: the lab's private configuration is written for Dovecot 2.3 (Debian 12's dovecot-imapd)", v)
	}
	for _, dir := range []string{"/usr/lib/dovecot", "/usr/libexec/dovecot"} {
		if _, err := os.Stat(filepath.Join(dir, "imap")); err == nil {
			return nil
		}
	}
	return errors.New("dovecot has no IMAP server; install it with `apt-get install dovecot-imapd`")
}

func (cfg DovecotConfig) check() error {
	if cfg.Dir == "" || cfg.Maildir == "" {
		return errors.New("dovecot: Dir and Maildir are required")
	}
	if cfg.User == "" || strings.ContainsAny(cfg.User, ": \t\r\n%") {
		return fmt.Errorf("dovecot: bad user name %q", cfg.User)
	}
	if cfg.Password == "" || strings.ContainsAny(cfg.Password, ":\r\n") {
		return errors.New("dovecot: the password must be non-empty, without ':' or line breaks")
	}
	// Dovecot splits settings on spaces and ':' and expands '%' in these paths.
	for _, p := range []string{cfg.Dir, cfg.Maildir} {
		if strings.ContainsAny(p, " \t\r\n%:\"#{}<") {
			return fmt.Errorf("dovecot: path %q has a character Dovecot's config cannot take", p)
		}
	}
	if cfg.Port < 0 || cfg.Port > 65535 || cfg.TLSPort < 0 || cfg.TLSPort > 65535 {
		return errors.New("dovecot: bad port")
	}
	return nil
}

type account struct {
	name     string
	uid, gid int
	group    string
}

type dovecotIDs struct {
	root     bool
	mail     account // reads and writes the Maildir
	internal account // default_internal_user: auth and other internal processes
	login    account // default_login_user: untrusted login processes
}

// dovecotUsers picks the accounts Dovecot runs as: its own when started as root,
// the current user otherwise.
func dovecotUsers(mailUser string) (dovecotIDs, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return dovecotIDs{}, fmt.Errorf("dovecot: %w", err)
		}
		a, err := lookupAccount(u.Username)
		if err != nil {
			return dovecotIDs{}, err
		}
		return dovecotIDs{mail: a, internal: a, login: a}, nil
	}
	if mailUser == "" {
		mailUser = "mail"
	}
	var ids dovecotIDs
	ids.root = true
	var err error
	if ids.mail, err = lookupAccount(mailUser); err != nil {
		return ids, err
	}
	if ids.mail.uid == 0 {
		return ids, errors.New("dovecot: the mail user must not be root")
	}
	if ids.internal, err = lookupAccount("dovecot"); err != nil {
		return ids, fmt.Errorf("%w (dovecot-core creates it)", err)
	}
	if ids.login, err = lookupAccount("dovenull"); err != nil {
		return ids, fmt.Errorf("%w (dovecot-core creates it)", err)
	}
	return ids, nil
}

func lookupAccount(name string) (account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, fmt.Errorf("dovecot: system user %q: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	a := account{name: u.Username, uid: uid, gid: gid, group: u.Gid}
	if g, err := user.LookupGroupId(u.Gid); err == nil {
		a.group = g.Name
	}
	return a, nil
}

// prepareDovecotDirs creates Dovecot's folders and hands the Maildir to the mail user.
func prepareDovecotDirs(cfg DovecotConfig, ids dovecotIDs) error {
	for _, sub := range []string{"", "state", "home", "tls"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, sub), 0o755); err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
	}
	// Dovecot's processes reach sockets in base_dir and the passwd file through Dir.
	if err := os.Chmod(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	if err := os.Chmod(filepath.Join(cfg.Dir, "tls"), 0o700); err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(cfg.Maildir, sub), 0o700); err != nil {
			return fmt.Errorf("dovecot: maildir: %w", err)
		}
	}
	if !ids.root {
		return nil
	}
	if err := chownTree(filepath.Join(cfg.Dir, "home"), ids.mail); err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	if err := chownTree(cfg.Maildir, ids.mail); err != nil {
		return fmt.Errorf("dovecot: maildir: %w", err)
	}
	for _, need := range []struct {
		path string
		who  account
	}{
		{cfg.Maildir, ids.mail}, {cfg.Dir, ids.mail}, {cfg.Dir, ids.internal}, {cfg.Dir, ids.login},
	} {
		if err := searchable(need.path, need.who); err != nil {
			return err
		}
	}
	return nil
}

// chownTree gives a folder and everything in it to a.
func chownTree(root string, a account) error {
	return filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == a.uid && int(st.Gid) == a.gid {
			return nil
		}
		return os.Lchown(p, a.uid, a.gid)
	})
}

// searchable checks that a can reach path: every folder above it lets a search it.
func searchable(path string, a account) error {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		if ok {
			allowed := mode&0o001 != 0 ||
				(int(st.Uid) == a.uid && mode&0o100 != 0) ||
				(int(st.Gid) == a.gid && mode&0o010 != 0)
			if !allowed {
				return fmt.Errorf("dovecot: %s is not reachable by user %s (uid %d): %s has mode %04o; "+
					"keep the lab state in a folder others can search (e.g. chmod o+x %s)", path, a.name, a.uid, dir, mode, dir)
			}
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// dovecotConf is a complete Dovecot 2.3 configuration: nothing is read from /etc.
func dovecotConf(cfg DovecotConfig, ids dovecotIDs, certFile, keyFile, passwd string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Private Dovecot of TIP's lab (lab/trap): one user, one Maildir, loopback only.")
	w("# Written by trap.StartDovecot at every start; edits are lost.")
	w("base_dir = %s", filepath.Join(cfg.Dir, "run"))
	w("state_dir = %s", filepath.Join(cfg.Dir, "state"))
	w("instance_name = tip-lab-trap")
	w("log_path = %s", filepath.Join(cfg.Dir, "dovecot.log"))
	w("protocols = imap")
	w("listen = 127.0.0.1")
	w("shutdown_clients = yes")
	w("")
	w("default_internal_user = %s", ids.internal.name)
	w("default_internal_group = %s", ids.internal.group)
	w("default_login_user = %s", ids.login.name)
	w("first_valid_uid = %d", ids.mail.uid)
	w("last_valid_uid = %d", ids.mail.uid)
	w("first_valid_gid = %d", ids.mail.gid)
	w("last_valid_gid = %d", ids.mail.gid)
	w("mail_uid = %d", ids.mail.uid)
	w("mail_gid = %d", ids.mail.gid)
	w("mail_privileged_group =")
	w("mail_location = maildir:%s", cfg.Maildir)
	w("namespace inbox {")
	w("  inbox = yes")
	w("  separator = /")
	w("}")
	w("")
	w("# Loopback only, so a plain LOGIN is allowed; STARTTLS and IMAPS are offered too.")
	w("disable_plaintext_auth = no")
	w("auth_mechanisms = plain login")
	w("passdb {")
	w("  driver = passwd-file")
	w("  args = %s", passwd)
	w("}")
	w("userdb {")
	w("  driver = static")
	w("  args = uid=%d gid=%d home=%s", ids.mail.uid, ids.mail.gid, filepath.Join(cfg.Dir, "home"))
	w("}")
	w("")
	w("ssl = yes")
	w("ssl_cert = <%s", certFile)
	w("ssl_key = <%s", keyFile)
	w("ssl_min_protocol = TLSv1.2")
	if _, err := os.Stat("/usr/share/dovecot/dh.pem"); err == nil {
		w("ssl_dh = </usr/share/dovecot/dh.pem")
	}
	w("")
	w("service imap-login {")
	w("  inet_listener imap {")
	w("    address = 127.0.0.1")
	w("    port = %d", cfg.Port)
	w("  }")
	w("  inet_listener imaps {")
	w("    address = 127.0.0.1")
	w("    port = %d", cfg.TLSPort)
	w("    ssl = yes")
	w("  }")
	if !ids.root {
		w("  chroot =")
	}
	w("}")
	if !ids.root {
		// Without root there is no chroot (see HowTo.Rootless in Dovecot's docs).
		w("service anvil {")
		w("  chroot =")
		w("}")
	}
	return b.String()
}

// ensureCert keeps a self-signed certificate for 127.0.0.1 and localhost, making one
// if there is none or it expires within a day.
func ensureCert(certFile, keyFile string) error {
	if pemBytes, err := os.ReadFile(certFile); err == nil {
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
			if blk, _ := pem.Decode(pemBytes); blk != nil {
				if c, err := x509.ParseCertificate(blk.Bytes); err == nil && time.Until(c.NotAfter) > 24*time.Hour {
					return nil
				}
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "TIP lab IMAP spamtrap", Organization: []string{"TIP lab"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
