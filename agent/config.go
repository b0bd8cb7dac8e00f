package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tip-project/tip/mail"
)

// ConfigFile is the agent's configuration file in its folder.
const ConfigFile = "agent.yaml"

// Config is an agent's configuration (agent.yaml, documented in
// docs/agent-protocol.md). Relative paths are relative to Dir.
type Config struct {
	Dir           string        `yaml:"-"`
	ID            string        `yaml:"id"`
	Listen        string        `yaml:"listen"`
	Maildirs      []Maildir     `yaml:"maildirs"`
	KeepRaw       bool          `yaml:"keep_raw"`
	BatchMaxMails int           `yaml:"batch_max_mails"`
	BatchMaxWait  time.Duration `yaml:"batch_max_wait"`
	ScanInterval  time.Duration `yaml:"scan_interval"`
	RateLimit     float64       `yaml:"rate_limit"` // requests per second per token
	TLS           TLSFiles      `yaml:"tls"`
	Trap          TrapRules     `yaml:"trap"`

	// What a client can take of the HTTPS server, before and after it
	// authenticates (Limits).
	ClientRateLimit   float64       `yaml:"client_rate_limit"` // unauthenticated requests per second per client address
	MaxConns          int           `yaml:"max_conns"`
	MaxConnsPerClient int           `yaml:"max_conns_per_client"`
	AuthTimeout       time.Duration `yaml:"auth_timeout"`
	Metrics           string        `yaml:"metrics"` // host:port serving /metrics; "" serves none
}

// Maildir is one watched Maildir folder (with new/ and cur/) and its label.
type Maildir struct {
	Path   string `yaml:"path"`
	Folder string `yaml:"folder"`
}

// TLSFiles are the PEM certificate (chain) and key the agent serves.
type TLSFiles struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// TrapRules are the trust rules that pick each mail's true sender, as a trap of
// the spam catalog has them.
type TrapRules struct {
	MX      []string       `yaml:"mx"`
	MXAddrs []netip.Prefix `yaml:"mx_addrs"`
	Trusted []netip.Prefix `yaml:"trusted"`
}

// MailConfig is the extraction setting of the agent's trap.
func (c Config) MailConfig() mail.Config {
	return mail.Config{TrapMX: c.Trap.MX, TrapMXAddrs: c.Trap.MXAddrs, TrustedRelays: c.Trap.Trusted, Limits: mail.DefaultLimits()}
}

// Path resolves a path of the configuration against the agent's folder.
func (c Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// DefaultConfig is the configuration `tip agent init` writes for folder dir.
func DefaultConfig(dir string) Config {
	host, _ := os.Hostname()
	return Config{
		Dir: dir, ID: host, Listen: "127.0.0.1:8443", KeepRaw: true,
		BatchMaxMails: 1000, BatchMaxWait: 10 * time.Second, ScanInterval: 2 * time.Second, RateLimit: DefaultRate,
		TLS:             TLSFiles{Cert: "tls/cert.pem", Key: "tls/key.pem"},
		ClientRateLimit: DefaultClientRate, MaxConns: DefaultMaxConns, MaxConnsPerClient: DefaultMaxConnsPerClient, AuthTimeout: DefaultAuthTimeout,
	}
}

// Limits are the limits of the HTTPS server the configuration sets.
func (c Config) Limits() Limits {
	return Limits{Rate: c.RateLimit, ClientRate: c.ClientRateLimit, MaxConns: c.MaxConns, MaxConnsPerClient: c.MaxConnsPerClient, AuthTimeout: c.AuthTimeout}
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

// LoadConfig reads dir/agent.yaml over the defaults and checks it; an error names
// the file and the field.
func LoadConfig(dir string) (Config, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Config{}, err
	}
	path := filepath.Join(abs, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Config{}, fmt.Errorf("%s does not exist: run `tip agent init --dir %s` first", path, dir)
		}
		return Config{}, err
	}
	c := DefaultConfig(abs)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	c.Dir = abs
	if err := c.Check(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Check validates the configuration.
func (c Config) Check() error {
	switch {
	case !idRE.MatchString(c.ID):
		return fmt.Errorf("id %q: want letters, digits, '.', '_' or '-'", c.ID)
	case c.Listen == "":
		return errors.New("listen: empty")
	case c.BatchMaxMails < 1 || c.BatchMaxMails > MaxBatchMails:
		return fmt.Errorf("batch_max_mails %d: want 1 to %d", c.BatchMaxMails, MaxBatchMails)
	case c.BatchMaxWait <= 0:
		return fmt.Errorf("batch_max_wait %s: want a positive duration", c.BatchMaxWait)
	case c.ScanInterval <= 0:
		return fmt.Errorf("scan_interval %s: want a positive duration", c.ScanInterval)
	case c.TLS.Cert == "" || c.TLS.Key == "":
		return errors.New("tls: cert and key are both needed")
	}
	if err := c.Limits().Check(); err != nil {
		return err
	}
	if c.Metrics != "" {
		if _, port, err := net.SplitHostPort(c.Metrics); err != nil || port == "" {
			return fmt.Errorf("metrics %q: want host:port, e.g. 127.0.0.1:9464, or nothing", c.Metrics)
		}
	}
	seen := map[string]bool{}
	for i, m := range c.Maildirs {
		switch {
		case m.Path == "":
			return fmt.Errorf("maildirs[%d].path: empty", i)
		case m.Folder == "" || len(m.Folder) > 255:
			return fmt.Errorf("maildirs[%d].folder %q: want a label of 1 to 255 bytes", i, m.Folder)
		case seen[m.Folder]:
			return fmt.Errorf("maildirs[%d].folder %q: used twice", i, m.Folder)
		}
		seen[m.Folder] = true
	}
	return nil
}

// Save writes the configuration to dir/agent.yaml atomically.
func (c Config) Save() error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(c.Dir, ConfigFile), data, 0o600)
}

// WriteFileAtomic writes data to a temporary file beside path, fsyncs it, renames
// it over path and fsyncs the folder: after a crash path holds either its old
// content or data, never a part.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a folder, so renames and creations in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
