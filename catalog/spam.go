package catalog

import (
	"bytes"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tip-project/tip/agent"
)

// Spam is the spamtrap catalog: the traps (whose trust rules pick each mail's true
// sender), the public archives to harvest and the IMAP mailboxes to poll.
type Spam struct {
	Path string `json:"-"`
	// ASNTable is an iptoasn.com TSV (optionally gzipped) that maps sender
	// addresses to their ASN and country; empty leaves them unmapped.
	ASNTable  string        `json:"asn_table,omitempty"`
	Traps     []Trap        `json:"traps"`
	Archives  []SpamArchive `json:"archives,omitempty"`
	Mailboxes []Mailbox     `json:"mailboxes,omitempty"`
	Agents    []Agent       `json:"agents,omitempty"`
}

// Agent is a spamtrap agent (`tip agent serve` on a mail server) this collector
// pulls batches from.
type Agent struct {
	Name string `json:"name"`
	URL  string `json:"url"` // https://host:port
	// Token, or TokenEnv naming the environment variable that holds it, or
	// TokenFile naming a file that holds it (relative: to the catalog's folder),
	// readable by the worker and best by nobody else.
	Token     string `json:"-"`
	TokenEnv  string `json:"token_env,omitempty"`
	TokenFile string `json:"token_file,omitempty"`
	// Fingerprint pins the agent's certificate: the SHA-256 of its DER bytes, hex.
	// CertFile pins the certificate in that PEM file instead (relative: to the
	// catalog's folder), read at every sync: a collector beside its agent, as in
	// the demo, follows a reinstalled agent's new certificate. One of the two.
	Fingerprint string        `json:"fingerprint,omitempty"`
	CertFile    string        `json:"certificate_file,omitempty"`
	Raw         bool          `json:"raw"` // also pull the raw mails (the token needs scope raw)
	Interval    time.Duration `json:"interval"`
	Enabled     bool          `json:"enabled"`
}

// Secret returns the agent token, from the environment or its file when
// configured so; "" when it cannot be had (ReadSecret says why).
func (a Agent) Secret() string {
	s, _ := a.ReadSecret()
	return s
}

// ReadSecret returns the agent token, from the environment or its file when
// configured so.
func (a Agent) ReadSecret() (string, error) {
	switch {
	case a.TokenEnv != "":
		if s := os.Getenv(a.TokenEnv); s != "" {
			return s, nil
		}
		return "", fmt.Errorf("agent %s: no token: set %s in the worker's environment", a.Name, a.TokenEnv)
	case a.TokenFile != "":
		data, err := os.ReadFile(a.TokenFile)
		if err != nil {
			return "", fmt.Errorf("agent %s: token_file: %w", a.Name, err)
		}
		s := strings.TrimSpace(string(data))
		if s == "" {
			return "", fmt.Errorf("agent %s: token_file %s is empty", a.Name, a.TokenFile)
		}
		return s, nil
	}
	return a.Token, nil
}

// Pin is the fingerprint the agent's certificate must have: Fingerprint, or that
// of the certificate in CertFile.
func (a Agent) Pin() (string, error) {
	if a.CertFile == "" {
		return a.Fingerprint, nil
	}
	fp, err := agent.CertFingerprint(a.CertFile)
	if err != nil {
		return "", fmt.Errorf("agent %s: certificate_file: %w", a.Name, err)
	}
	return fp, nil
}

// Trap is one spamtrap's mail setup.
type Trap struct {
	Name string `json:"name"`
	// MX are the host names its own mail exchangers write in Received headers;
	// MXAddrs their addresses. The header one of them wrote is the first trusted hop.
	MX      []string       `json:"mx"`
	MXAddrs []netip.Prefix `json:"mx_addrs,omitempty"`
	// Trusted are relays of the trap's own organisation, stepped over when looking
	// for the sender.
	Trusted []netip.Prefix `json:"trusted,omitempty"`
}

// SpamArchive is a public spam archive: an index page listing monthly archives.
type SpamArchive struct {
	Name     string        `json:"name"`
	Index    string        `json:"index"`
	Trap     string        `json:"trap"`
	Interval time.Duration `json:"interval"`
	Enabled  bool          `json:"enabled"`
	// AllowPrivate lets the index and the archives it lists be downloaded from
	// loopback, private and link-local addresses (the lab's); by default only
	// public addresses are connected to.
	AllowPrivate bool `json:"allow_private,omitempty"`
}

// Mailbox is an IMAP spamtrap mailbox.
type Mailbox struct {
	Name     string `json:"name"`
	Address  string `json:"address"` // host:port
	TLS      string `json:"tls"`     // tls (implicit, port 993), starttls, or none (loopback only)
	Username string `json:"username"`
	// Password, or PasswordEnv naming the environment variable that holds it.
	Password    string        `json:"-"`
	PasswordEnv string        `json:"password_env,omitempty"`
	CAFile      string        `json:"ca_file,omitempty"` // a private CA or self-signed certificate to trust (relative: to the catalog's folder)
	Mailbox     string        `json:"mailbox"`
	After       string        `json:"after"` // keep, delete, or move (to MoveTo) once stored safely
	MoveTo      string        `json:"move_to,omitempty"`
	Trap        string        `json:"trap"`
	Interval    time.Duration `json:"interval"`
	Enabled     bool          `json:"enabled"`
}

// Secret returns the mailbox password, from the environment when configured so.
func (m Mailbox) Secret() string {
	if m.PasswordEnv != "" {
		return os.Getenv(m.PasswordEnv)
	}
	return m.Password
}

// AllTraps, as a collector's trap, applies the trust rules of every trap of the
// catalog: an archive or mailbox that gathers the mail of several traps.
const AllTraps = "all"

// Rules returns the trust rules a collector's trap names: one trap's, or with
// AllTraps the union of every trap's MX hosts, addresses and trusted relays.
func (s *Spam) Rules(trap string) (Trap, bool) {
	if trap != AllTraps {
		return s.Trap(trap)
	}
	all := Trap{Name: AllTraps}
	for _, t := range s.Traps {
		all.MX = append(all.MX, t.MX...)
		all.MXAddrs = append(all.MXAddrs, t.MXAddrs...)
		all.Trusted = append(all.Trusted, t.Trusted...)
	}
	return all, true
}

// Trap finds a trap by name.
func (s *Spam) Trap(name string) (Trap, bool) {
	for _, t := range s.Traps {
		if t.Name == name {
			return t, true
		}
	}
	return Trap{}, false
}

// LoadSpam reads and validates a spamtrap catalog. Every error names the file, the
// line and the field.
func LoadSpam(path string) (*Spam, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spam catalog: %w", err)
	}
	return ParseSpam(path, data)
}

// ParseSpam validates spamtrap catalog YAML; path only labels errors.
func ParseSpam(path string, data []byte) (*Spam, error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, &Error{path, 1, "catalog", "want a mapping with traps, archives and mailboxes"}
	}
	s := &Spam{Path: path}
	doc := root.Content[0]
	names := map[string]int{}
	var archives, mailboxes, agents *yaml.Node
	allowPrivate := false
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch k.Value {
		case "allow_private":
			var err error
			if allowPrivate, err = boolValue(v); err != nil {
				return nil, &Error{path, v.Line, k.Value, err.Error()}
			}
		case "asn_table":
			if _, err := httpURL(v.Value); err != nil {
				return nil, &Error{path, v.Line, "asn_table", err.Error()}
			}
			s.ASNTable = v.Value
		case "traps":
			if v.Kind != yaml.SequenceNode {
				return nil, &Error{path, v.Line, "traps", "want a list"}
			}
			for j, n := range v.Content {
				t, err := parseTrap(path, fmt.Sprintf("traps[%d]", j), n)
				if err != nil {
					return nil, err
				}
				if line, dup := names["trap "+t.Name]; dup {
					return nil, &Error{path, n.Line, fmt.Sprintf("traps[%d].name", j), fmt.Sprintf("%q is already used at line %d", t.Name, line)}
				}
				names["trap "+t.Name] = n.Line
				s.Traps = append(s.Traps, t)
			}
		case "archives":
			archives = v
		case "mailboxes":
			mailboxes = v
		case "agents":
			agents = v
		default:
			return nil, &Error{path, k.Line, k.Value, "unknown key (want allow_private, asn_table, traps, archives, mailboxes or agents)"}
		}
	}
	if len(s.Traps) == 0 {
		return nil, &Error{path, doc.Line, "traps", "missing: name at least one trap and its MX hosts"}
	}
	trapRef := func(n *yaml.Node, field, name string) error {
		if _, ok := s.Trap(name); !ok && name != AllTraps {
			return &Error{path, n.Line, field + ".trap", fmt.Sprintf("%q is not one of the traps", name)}
		}
		return nil
	}
	if archives != nil {
		if archives.Kind != yaml.SequenceNode {
			return nil, &Error{path, archives.Line, "archives", "want a list"}
		}
		for j, n := range archives.Content {
			field := fmt.Sprintf("archives[%d]", j)
			a := SpamArchive{Interval: 6 * time.Hour, Enabled: true}
			if err := fieldsOf(path, field, n, map[string]func(*yaml.Node) error{
				"name":          func(v *yaml.Node) error { return setName(&a.Name, v) },
				"index":         func(v *yaml.Node) error { _, err := httpURL(v.Value); a.Index = v.Value; return err },
				"trap":          func(v *yaml.Node) error { a.Trap = v.Value; return nil },
				"interval":      func(v *yaml.Node) (err error) { a.Interval, err = duration(v.Value, time.Minute); return },
				"enabled":       func(v *yaml.Node) error { return v.Decode(&a.Enabled) },
				"allow_private": func(v *yaml.Node) (err error) { a.AllowPrivate, err = boolValue(v); return },
			}, "name", "index", "trap"); err != nil {
				return nil, err
			}
			a.AllowPrivate = a.AllowPrivate || allowPrivate
			if err := trapRef(n, field, a.Trap); err != nil {
				return nil, err
			}
			if line, dup := names[a.Name]; dup {
				return nil, &Error{path, n.Line, field + ".name", fmt.Sprintf("%q is already used at line %d", a.Name, line)}
			}
			names[a.Name] = n.Line
			s.Archives = append(s.Archives, a)
		}
	}
	if mailboxes != nil {
		if mailboxes.Kind != yaml.SequenceNode {
			return nil, &Error{path, mailboxes.Line, "mailboxes", "want a list"}
		}
		for j, n := range mailboxes.Content {
			field := fmt.Sprintf("mailboxes[%d]", j)
			m := Mailbox{TLS: "tls", Mailbox: "INBOX", After: "keep", Interval: 5 * time.Minute, Enabled: true}
			if err := fieldsOf(path, field, n, map[string]func(*yaml.Node) error{
				"name":         func(v *yaml.Node) error { return setName(&m.Name, v) },
				"address":      func(v *yaml.Node) error { m.Address = v.Value; return hostPort(v.Value) },
				"tls":          func(v *yaml.Node) error { m.TLS = v.Value; return oneOf(v.Value, "tls", "starttls", "none") },
				"username":     func(v *yaml.Node) error { m.Username = v.Value; return nil },
				"password":     func(v *yaml.Node) error { m.Password = v.Value; return nil },
				"password_env": func(v *yaml.Node) error { m.PasswordEnv = v.Value; return nil },
				"ca_file":      func(v *yaml.Node) error { m.CAFile = relativeTo(path, v.Value); return nil },
				"mailbox":      func(v *yaml.Node) error { m.Mailbox = v.Value; return nil },
				"after":        func(v *yaml.Node) error { m.After = v.Value; return oneOf(v.Value, "keep", "delete", "move") },
				"move_to":      func(v *yaml.Node) error { m.MoveTo = v.Value; return nil },
				"trap":         func(v *yaml.Node) error { m.Trap = v.Value; return nil },
				"interval":     func(v *yaml.Node) (err error) { m.Interval, err = duration(v.Value, 10*time.Second); return },
				"enabled":      func(v *yaml.Node) error { return v.Decode(&m.Enabled) },
			}, "name", "address", "username", "trap"); err != nil {
				return nil, err
			}
			if err := trapRef(n, field, m.Trap); err != nil {
				return nil, err
			}
			if m.After == "move" && m.MoveTo == "" {
				return nil, &Error{path, n.Line, field + ".move_to", "after: move needs the mailbox to move to"}
			}
			if m.Password == "" && m.PasswordEnv == "" {
				return nil, &Error{path, n.Line, field + ".password_env", "missing: name the environment variable holding the password (or give password)"}
			}
			if line, dup := names[m.Name]; dup {
				return nil, &Error{path, n.Line, field + ".name", fmt.Sprintf("%q is already used at line %d", m.Name, line)}
			}
			names[m.Name] = n.Line
			s.Mailboxes = append(s.Mailboxes, m)
		}
	}
	if agents != nil {
		if agents.Kind != yaml.SequenceNode {
			return nil, &Error{path, agents.Line, "agents", "want a list"}
		}
		for j, n := range agents.Content {
			field := fmt.Sprintf("agents[%d]", j)
			a := Agent{Interval: 5 * time.Minute, Enabled: true}
			if err := fieldsOf(path, field, n, map[string]func(*yaml.Node) error{
				"name": func(v *yaml.Node) error { return setName(&a.Name, v) },
				"url": func(v *yaml.Node) error {
					u, err := httpURL(v.Value)
					if err == nil && u.Scheme != "https" {
						err = fmt.Errorf("%q: an agent serves HTTPS only", v.Value)
					}
					a.URL = strings.TrimSuffix(v.Value, "/")
					return err
				},
				"token":      func(v *yaml.Node) error { a.Token = v.Value; return nil },
				"token_env":  func(v *yaml.Node) error { a.TokenEnv = v.Value; return nil },
				"token_file": func(v *yaml.Node) error { a.TokenFile = relativeTo(path, v.Value); return nil },
				"fingerprint": func(v *yaml.Node) (err error) {
					a.Fingerprint, err = Fingerprint(v.Value)
					return err
				},
				"certificate_file": func(v *yaml.Node) error { a.CertFile = relativeTo(path, v.Value); return nil },
				"raw":              func(v *yaml.Node) error { return v.Decode(&a.Raw) },
				"interval":         func(v *yaml.Node) (err error) { a.Interval, err = duration(v.Value, 10*time.Second); return },
				"enabled":          func(v *yaml.Node) error { return v.Decode(&a.Enabled) },
			}, "name", "url"); err != nil {
				return nil, err
			}
			if (a.Fingerprint == "") == (a.CertFile == "") {
				return nil, &Error{path, n.Line, field + ".fingerprint", "give one of fingerprint (the agent certificate's SHA-256, as `tip agent init` prints it) and certificate_file"}
			}
			switch given := btoi(a.Token != "") + btoi(a.TokenEnv != "") + btoi(a.TokenFile != ""); {
			case given == 0:
				return nil, &Error{path, n.Line, field + ".token_env", "missing: name the environment variable holding the agent's token (or give token_file or token)"}
			case given > 1:
				return nil, &Error{path, n.Line, field + ".token_env", "give one of token_env, token_file and token"}
			}
			if line, dup := names[a.Name]; dup {
				return nil, &Error{path, n.Line, field + ".name", fmt.Sprintf("%q is already used at line %d", a.Name, line)}
			}
			names[a.Name] = n.Line
			s.Agents = append(s.Agents, a)
		}
	}
	return s, nil
}

// Fingerprint normalises a certificate's SHA-256 fingerprint as tools print it
// (hex, with or without colons, any case) to 64 lower-case hex digits.
func Fingerprint(s string) (string, error) {
	f := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(s), "sha256:"), ":", ""))
	if len(f) != 64 || strings.Trim(f, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%q: want the certificate's SHA-256 fingerprint, 64 hex digits (colons allowed)", s)
	}
	return f, nil
}

func parseTrap(path, field string, n *yaml.Node) (Trap, error) {
	var t Trap
	err := fieldsOf(path, field, n, map[string]func(*yaml.Node) error{
		"name": func(v *yaml.Node) error { return setName(&t.Name, v) },
		"mx": func(v *yaml.Node) error {
			var hosts []string
			if err := v.Decode(&hosts); err != nil || len(hosts) == 0 {
				return fmt.Errorf("want a list of host names")
			}
			for _, h := range hosts {
				t.MX = append(t.MX, strings.ToLower(strings.TrimSuffix(h, ".")))
			}
			return nil
		},
		"mx_addrs": func(v *yaml.Node) (err error) { t.MXAddrs, err = prefixes(v); return },
		"trusted":  func(v *yaml.Node) (err error) { t.Trusted, err = prefixes(v); return },
	}, "name", "mx")
	return t, err
}

// fieldsOf walks a mapping node, calling set for each known key; every error is
// placed at its line. required keys must be present.
func fieldsOf(path, prefix string, n *yaml.Node, set map[string]func(*yaml.Node) error, required ...string) error {
	if n.Kind != yaml.MappingNode {
		return &Error{path, n.Line, prefix, "want a mapping"}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := set[k.Value]
		if !ok {
			return &Error{path, k.Line, prefix + "." + k.Value, "unknown key"}
		}
		if err := f(v); err != nil {
			return &Error{path, v.Line, prefix + "." + k.Value, err.Error()}
		}
		seen[k.Value] = true
	}
	for _, r := range required {
		if !seen[r] {
			return &Error{path, n.Line, prefix + "." + r, "missing"}
		}
	}
	return nil
}

// relativeTo resolves a path of the catalog at path against the catalog's folder,
// so any working directory finds it.
func relativeTo(path, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(path), p)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func setName(dst *string, v *yaml.Node) error {
	if !namePattern.MatchString(v.Value) {
		return fmt.Errorf("%q: want lower-case letters, digits, '.', '_' or '-'", v.Value)
	}
	*dst = v.Value
	return nil
}

func httpURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q: want an http or https URL", s)
	}
	return u, nil
}

func hostPort(s string) error {
	if _, err := netip.ParseAddrPort(s); err == nil {
		return nil
	}
	if i := strings.LastIndexByte(s, ':'); i > 0 && i < len(s)-1 {
		return nil
	}
	return fmt.Errorf("%q: want host:port", s)
}

func oneOf(s string, allowed ...string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return fmt.Errorf("%q: want one of %s", s, strings.Join(allowed, ", "))
}

// prefixes reads a list of addresses or CIDR blocks.
func prefixes(v *yaml.Node) ([]netip.Prefix, error) {
	var raw []string
	if err := v.Decode(&raw); err != nil {
		return nil, fmt.Errorf("want a list of addresses or CIDR blocks")
	}
	var out []netip.Prefix
	for _, r := range raw {
		if p, err := netip.ParsePrefix(r); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(r)
		if err != nil {
			return nil, fmt.Errorf("%q: want an address or CIDR block", r)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// AddMailbox appends a mailbox to the spamtrap catalog file at path, keeping its
// comments and layout, after checking that the result is a valid catalog (the
// file is replaced atomically, so a mistake never leaves a half-written catalog).
func AddMailbox(path string, m Mailbox) error {
	kv := [][2]string{{"name", m.Name}, {"address", m.Address}, {"tls", m.TLS}, {"ca_file", m.CAFile}, {"username", m.Username},
		{"password_env", m.PasswordEnv}, {"mailbox", m.Mailbox}, {"after", m.After}, {"move_to", m.MoveTo}, {"trap", m.Trap}}
	if m.Interval > 0 {
		kv = append(kv, [2]string{"interval", durationText(m.Interval)})
	}
	_, err := putEntry(path, "mailboxes", kv, false)
	return err
}

// AddAgent appends an agent to the spamtrap catalog file at path, as AddMailbox
// does a mailbox. The token itself is never written: only the variable or the
// file naming it.
func AddAgent(path string, a Agent) error {
	_, err := putEntry(path, "agents", agentEntry(a), false)
	return err
}

// SetAgent adds an agent to the spamtrap catalog file at path, or replaces the
// entry of that name if it differs (a reinstalled agent has a new certificate):
// how `tip dev up` keeps the lab's agent registered. It reports whether the file
// changed; like AddAgent it never writes the token itself.
func SetAgent(path string, a Agent) (bool, error) {
	return putEntry(path, "agents", agentEntry(a), true)
}

func agentEntry(a Agent) [][2]string {
	kv := [][2]string{{"name", a.Name}, {"url", a.URL}, {"token_env", a.TokenEnv}, {"token_file", a.TokenFile}, {"fingerprint", a.Fingerprint},
		{"certificate_file", a.CertFile}}
	if a.Raw {
		kv = append(kv, [2]string{"raw", "true"})
	}
	if a.Interval > 0 {
		kv = append(kv, [2]string{"interval", durationText(a.Interval)})
	}
	return kv
}

// putEntry writes a mapping of the non-empty values of kv (whose first pair is
// its name) into the list under section: appended, or with replace in place of
// the entry of the same name. An entry that is already so leaves the file as it
// is; otherwise the resulting catalog is checked and the file replaced atomically.
func putEntry(path, section string, kv [][2]string, replace bool) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("spam catalog: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return false, &Error{path, 1, "catalog", "want a mapping with traps, archives, mailboxes and agents"}
	}
	doc := root.Content[0]
	var list *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == section {
			list = doc.Content[i+1]
		}
	}
	if list == nil {
		list = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: section}, list)
	}
	list.Kind, list.Tag, list.Style = yaml.SequenceNode, "!!seq", 0
	entry := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, p := range kv {
		if p[1] == "" {
			continue
		}
		tag := "!!str"
		if p[1] == "true" {
			tag = "!!bool"
		}
		entry.Content = append(entry.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p[0]},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: p[1]})
	}
	at := -1
	if replace {
		at = slices.IndexFunc(list.Content, func(n *yaml.Node) bool { return mappingValue(n, "name") == kv[0][1] })
	}
	if at < 0 {
		list.Content = append(list.Content, entry)
	} else if !updateMapping(list.Content[at], entry) {
		return false, nil
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return false, err
	}
	if _, err := ParseSpam(path, out.Bytes()); err != nil {
		return false, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o644); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, path)
}

// durationText writes a duration as people do: 1m rather than 1m0s.
func durationText(d time.Duration) string {
	t := d.String()
	if strings.HasSuffix(t, "m0s") {
		t = strings.TrimSuffix(t, "0s")
	}
	if strings.HasSuffix(t, "h0m") {
		t = strings.TrimSuffix(t, "0m")
	}
	return t
}

// mappingValue is the scalar value of key in mapping n, or "".
func mappingValue(n *yaml.Node, key string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// updateMapping makes mapping dst hold the keys and values of src, in src's
// order, keeping the nodes (and so the comments) of the keys it already had. It
// reports whether anything changed.
func updateMapping(dst, src *yaml.Node) bool {
	if dst.Kind != yaml.MappingNode {
		*dst = *src
		return true
	}
	old := map[string][2]*yaml.Node{}
	for i := 0; i+1 < len(dst.Content); i += 2 {
		old[dst.Content[i].Value] = [2]*yaml.Node{dst.Content[i], dst.Content[i+1]}
	}
	changed := len(dst.Content) != len(src.Content)
	content := make([]*yaml.Node, 0, len(src.Content))
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		if i >= len(dst.Content) || dst.Content[i].Value != k.Value {
			changed = true // a key added, dropped or moved
		}
		if kept, ok := old[k.Value]; ok && kept[1].Kind == yaml.ScalarNode {
			if kept[1].Value != v.Value {
				changed = true
				kept[1].Value, kept[1].Tag, kept[1].Style = v.Value, v.Tag, 0
			}
			k, v = kept[0], kept[1]
		} else {
			changed = true
		}
		content = append(content, k, v)
	}
	dst.Content = content
	return changed
}

// Collector is one spam collector of a catalog: its name as its runs, `tip
// status` and the metrics call it (archive:NAME, imap:NAME, agent:NAME), the
// origin its mails are recorded under, its interval and whether it runs.
type Collector struct {
	Name, Origin string
	Interval     time.Duration
	Enabled      bool
}

// Collectors lists the catalog's archives, mailboxes and agents as
// collectors, in that order.
func (c *Spam) Collectors() []Collector {
	var out []Collector
	for _, s := range c.Archives {
		// An archive's months are resolved against its index: their origins
		// start with the index's folder.
		dir := s.Index[:strings.LastIndex(s.Index, "/")+1]
		out = append(out, Collector{Name: "archive:" + s.Name, Origin: "archive:" + dir, Interval: s.Interval, Enabled: s.Enabled})
	}
	for _, m := range c.Mailboxes {
		out = append(out, Collector{Name: "imap:" + m.Name, Origin: "imap:" + m.Name, Interval: m.Interval, Enabled: m.Enabled})
	}
	for _, ag := range c.Agents {
		out = append(out, Collector{Name: "agent:" + ag.Name, Origin: "agent:" + ag.Name, Interval: ag.Interval, Enabled: ag.Enabled})
	}
	return out
}
