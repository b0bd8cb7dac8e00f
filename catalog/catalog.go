// Package catalog reads the source catalog: the YAML list of blacklist feeds TIP
// collects, with where each lives, how to parse it and how often to fetch it. The
// same format points at the real Internet (config/sources.yaml) and at the lab
// (config/lab.yaml). Every error names the file, the line and the field.
package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Source is one feed.
type Source struct {
	Name string `json:"name"`
	// URL is where the feed is fetched; an allowlist's may be a file:// URL (an
	// absolute path once loaded: a relative path in the catalog is relative to the
	// catalog's folder), read from disk instead.
	URL       string        `json:"url"`
	Format    string        `json:"format"`
	Type      string        `json:"type"` // indicator type: ipv4, ipv6, cidr, asn, domain, url, sha1
	Interval  time.Duration `json:"interval"`
	Enabled   bool          `json:"enabled"`
	Prior     float64       `json:"prior"`      // static prior weight in [0,1]
	RateLimit time.Duration `json:"rate_limit"` // minimum time between two fetches
	Timeout   time.Duration `json:"timeout"`
	SizeLimit int64         `json:"size_limit"` // bytes
	Parser    Parser        `json:"parser"`
	// Top keeps only the first Top entries of an allowlist (a top-sites ranking is
	// benign only near its head); 0 keeps all. Allowlists only.
	Top int `json:"top,omitempty"`
	// Category is what the source lists (botnet-c2, malware, malware-download,
	// phishing, spam, scanner, bruteforce, attacker, hijacked, reputation):
	// every listing's category unless the feed says per entry.
	Category string `json:"category,omitempty"`
	// Licence is the source's licence or terms of use, as its publisher
	// states them, shown with its listings and in what TIP shares.
	Licence string `json:"licence,omitempty"`
	// TLP is how far what the source lists may be shared (Traffic Light
	// Protocol 2.0): clear (the default: public feeds), green, amber,
	// amber+strict or red. The exports, the API, STIX and MISP mark it.
	TLP string `json:"tlp,omitempty"`
	// AllowPrivate lets the download reach loopback, private and link-local
	// addresses (the lab, a mirror on the LAN), directly or by a redirect; by
	// default only public addresses are connected to.
	AllowPrivate bool `json:"allow_private,omitempty"`
}

// Parser holds the options of the generic parser (and overrides for the others).
type Parser struct {
	Comment   string  `json:"comment,omitempty"`
	Separator string  `json:"separator,omitempty"`
	Column    int     `json:"column,omitempty"` // 1-based
	Header    bool    `json:"header,omitempty"`
	MaxBad    float64 `json:"max_bad_share,omitempty"`
	// AllowUnterminated parses a last line without a newline (by default it is a
	// bad line: most likely a cut body).
	AllowUnterminated bool `json:"allow_unterminated,omitempty"`
}

// Catalog is a loaded, validated catalog.
type Catalog struct {
	Path    string
	Sources []Source
	// Allowlists are benign references (a top-sites ranking, CDN ranges) that
	// measure sources' accuracy and keep false positives out of exports. They are
	// fetched like sources but never listed.
	Allowlists []Source
}

// AllowlistDefaults are the settings an allowlist entry starts from.
var AllowlistDefaults = Source{Enabled: true, Interval: 24 * time.Hour, Timeout: 120 * time.Second, SizeLimit: 256 << 20, Top: 0}

// Enabled lists the enabled sources in catalog order.
func (c *Catalog) Enabled() []Source {
	var out []Source
	for _, s := range c.Sources {
		if s.Enabled {
			out = append(out, s)
		}
	}
	return out
}

// Source finds a source by name.
func (c *Catalog) Source(name string) (Source, bool) {
	for _, s := range c.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return Source{}, false
}

// Types are the indicator types a source may declare.
var Types = []string{"ipv4", "ipv6", "cidr", "asn", "domain", "url", "sha1", "sha256", "md5"}

// Load reads and validates a catalog file. knownFormat says whether a parser exists
// for a format name; nil accepts any.
func Load(path string, knownFormat func(string) bool) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return Parse(path, data, knownFormat)
}

// Error is a catalog mistake at a place in the file.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg) }

// Parse validates catalog YAML; path only labels errors.
func Parse(path string, data []byte, knownFormat func(string) bool) (*Catalog, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, &Error{path, 1, "catalog", "want a mapping with defaults and sources"}
	}
	p := &parser{file: path, known: knownFormat}
	doc := root.Content[0]
	defaults := Source{Enabled: true, Prior: 0.5, Interval: time.Hour, RateLimit: 0, Timeout: 60 * time.Second, SizeLimit: 1 << 30}
	var sourcesNode, allowNode *yaml.Node
	allowPrivate := false
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch k.Value {
		case "allow_private":
			var err error
			if allowPrivate, err = boolValue(v); err != nil {
				return nil, &Error{path, v.Line, k.Value, err.Error()}
			}
		case "defaults":
			if err := p.fields(v, "defaults", &defaults, true); err != nil {
				return nil, err
			}
		case "sources":
			sourcesNode = v
		case "allowlists":
			allowNode = v
		default:
			return nil, &Error{path, k.Line, k.Value, "unknown key (want allow_private, defaults, sources or allowlists)"}
		}
	}
	if sourcesNode == nil || sourcesNode.Kind != yaml.SequenceNode {
		return nil, &Error{path, doc.Line, "sources", "missing: want a list of sources"}
	}
	c := &Catalog{Path: path}
	seen := map[string]int{}
	for i, n := range sourcesNode.Content {
		s := defaults
		s.Parser = defaults.Parser
		field := fmt.Sprintf("sources[%d]", i)
		if n.Kind != yaml.MappingNode {
			return nil, &Error{path, n.Line, field, "want a mapping"}
		}
		if err := p.fields(n, field, &s, false); err != nil {
			return nil, err
		}
		for _, req := range []struct{ v, name string }{{s.Name, "name"}, {s.URL, "url"}, {s.Format, "format"}, {s.Type, "type"}} {
			if req.v == "" {
				return nil, &Error{path, n.Line, field + "." + req.name, "missing"}
			}
		}
		if line, dup := seen[s.Name]; dup {
			return nil, &Error{path, n.Line, field + ".name", fmt.Sprintf("%q is already used at line %d", s.Name, line)}
		}
		seen[s.Name] = n.Line
		if s.TLP == "" {
			s.TLP = DefaultTLP
		}
		if s.Format == "generic" && s.Parser.Column == 0 {
			return nil, &Error{path, n.Line, field + ".parser.column", "the generic format needs a column"}
		}
		c.Sources = append(c.Sources, s)
	}
	if len(c.Sources) == 0 {
		return nil, &Error{path, sourcesNode.Line, "sources", "empty"}
	}
	if allowNode != nil {
		if allowNode.Kind != yaml.SequenceNode {
			return nil, &Error{path, allowNode.Line, "allowlists", "want a list of allowlists"}
		}
		for i, n := range allowNode.Content {
			s := AllowlistDefaults
			field := fmt.Sprintf("allowlists[%d]", i)
			if n.Kind != yaml.MappingNode {
				return nil, &Error{path, n.Line, field, "want a mapping"}
			}
			p.allowlist = true
			err := p.fields(n, field, &s, false)
			p.allowlist = false
			if err != nil {
				return nil, err
			}
			for _, req := range []struct{ v, name string }{{s.Name, "name"}, {s.URL, "url"}, {s.Format, "format"}} {
				if req.v == "" {
					return nil, &Error{path, n.Line, field + "." + req.name, "missing"}
				}
			}
			if line, dup := seen[s.Name]; dup {
				return nil, &Error{path, n.Line, field + ".name", fmt.Sprintf("%q is already used at line %d", s.Name, line)}
			}
			seen[s.Name] = n.Line
			if s.Type == "" && s.Format == "misp-warninglist" {
				return nil, &Error{path, n.Line, field + ".type", "missing: a misp-warninglist allowlist keeps domain (hostname, string and substring lists) or cidr (cidr and string lists of addresses) entries; say which"}
			}
			if s.Type == "" {
				s.Type = formatType(s.Format)
			}
			if s.Type != "domain" && s.Type != "cidr" && s.Type != "ipv4" && s.Type != "ipv6" {
				return nil, &Error{path, n.Line, field + ".type", fmt.Sprintf("an allowlist holds domains or address ranges, not %q", s.Type)}
			}
			c.Allowlists = append(c.Allowlists, s)
		}
	}
	if allowPrivate {
		for i := range c.Sources {
			c.Sources[i].AllowPrivate = true
		}
		for i := range c.Allowlists {
			c.Allowlists[i].AllowPrivate = true
		}
	}
	return c, nil
}

// isLocal says whether an allowlist's url names a file on this machine: a
// file:// URL, or anything without a scheme.
func isLocal(v string) bool {
	return strings.HasPrefix(v, "file://") || !strings.Contains(v, "://")
}

// localURL turns a file:// URL or a path (relative to the catalog's folder) into
// the file:// URL of an absolute path.
func (p *parser) localURL(v string) (string, error) {
	name := v
	if strings.HasPrefix(v, "file://") {
		u, err := url.Parse(v)
		if err != nil || (u.Host != "" && u.Host != "localhost") || u.Path == "" {
			return "", fmt.Errorf("%q: want file:///absolute/path or a path", v)
		}
		name = u.Path
	}
	if name == "" {
		return "", errors.New("empty path")
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(filepath.Dir(p.file), name)
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return "", fmt.Errorf("%q: %w", v, err)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String(), nil
}

// LocalPath is the file an allowlist's url names, when it names one: such a list
// is read from disk, never downloaded.
func LocalPath(u string) (string, bool) {
	if !strings.HasPrefix(u, "file://") {
		return "", false
	}
	v, err := url.Parse(u)
	if err != nil {
		return "", false
	}
	return filepath.FromSlash(v.Path), true
}

// boolValue reads a YAML boolean scalar.
func boolValue(v *yaml.Node) (bool, error) {
	b, err := strconv.ParseBool(v.Value)
	if v.Kind != yaml.ScalarNode || err != nil {
		return false, errors.New("want true or false")
	}
	return b, nil
}

// formatType is the indicator type a format's name implies for an allowlist.
func formatType(format string) string {
	switch {
	case strings.HasPrefix(format, "tranco"), format == "hosts":
		return "domain"
	default:
		return "cidr"
	}
}

type parser struct {
	file      string
	known     func(string) bool
	allowlist bool // the fields of an allowlist entry (top is allowed, prior is not)
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

var categoryPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+){0,7}$`)

// TLPs are the Traffic Light Protocol 2.0 labels a source's terms may take,
// least restrictive first.
var TLPs = []string{"clear", "green", "amber", "amber+strict", "red"}

// DefaultTLP is a source's TLP when its catalog entry does not set one: the
// public feeds TIP reads are published for anyone.
const DefaultTLP = "clear"

func (p *parser) fields(n *yaml.Node, prefix string, s *Source, defaults bool) error {
	if n.Kind != yaml.MappingNode {
		return &Error{p.file, n.Line, prefix, "want a mapping"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := prefix + "." + k.Value
		bad := func(msg string) error { return &Error{p.file, v.Line, field, msg} }
		if defaults {
			switch k.Value {
			case "name", "url", "format", "type":
				return bad("cannot have a default")
			case "allow_private":
				return bad("cannot have a default: set allow_private at the top of the catalog for every source")
			}
		}
		if k.Value != "parser" && v.Kind != yaml.ScalarNode {
			return bad("want a single value")
		}
		var err error
		switch k.Value {
		case "name":
			if !namePattern.MatchString(v.Value) {
				return bad(fmt.Sprintf("%q: want lower-case letters, digits, '.', '_' or '-'", v.Value))
			}
			s.Name = v.Value
		case "url":
			if p.allowlist && isLocal(v.Value) {
				if s.URL, err = p.localURL(v.Value); err != nil {
					return bad(err.Error())
				}
				continue
			}
			u, perr := url.Parse(v.Value)
			if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				want := "an http or https URL"
				if p.allowlist {
					want += ", a file:// URL or a path"
				}
				return bad(fmt.Sprintf("%q: want %s", v.Value, want))
			}
			s.URL = v.Value
		case "format":
			if p.known != nil && !p.known(v.Value) {
				return bad(fmt.Sprintf("%q: no parser of that name (see `tip feeds formats`)", v.Value))
			}
			s.Format = v.Value
		case "type":
			if !slices.Contains(Types, v.Value) {
				return bad(fmt.Sprintf("%q: want one of %s", v.Value, strings.Join(Types, ", ")))
			}
			s.Type = v.Value
		case "interval":
			s.Interval, err = duration(v.Value, time.Minute)
		case "rate_limit":
			s.RateLimit, err = duration(v.Value, 0)
		case "timeout":
			s.Timeout, err = duration(v.Value, time.Second)
		case "enabled":
			s.Enabled, err = boolValue(v)
		case "allow_private":
			s.AllowPrivate, err = boolValue(v)
		case "prior":
			if p.allowlist {
				return &Error{p.file, k.Line, field, "an allowlist has no prior: it is not a source of indicators"}
			}
			s.Prior, err = strconv.ParseFloat(v.Value, 64)
			if err != nil || s.Prior < 0 || s.Prior > 1 {
				err = fmt.Errorf("%q: want a number from 0 to 1", v.Value)
			}
		case "size_limit":
			s.SizeLimit, err = size(v.Value)
		case "category":
			if !categoryPattern.MatchString(v.Value) {
				err = fmt.Errorf("%q: want lower-case words joined by '-' (botnet-c2, phishing, spam, ...)", v.Value)
			}
			s.Category = v.Value
		case "licence", "license":
			if len(v.Value) > 500 {
				err = fmt.Errorf("want at most 500 characters (link to the terms)")
			}
			s.Licence = v.Value
		case "tlp":
			s.TLP = strings.ToLower(strings.TrimPrefix(strings.ToLower(v.Value), "tlp:"))
			if !slices.Contains(TLPs, s.TLP) {
				err = fmt.Errorf("%q: want one of %s", v.Value, strings.Join(TLPs, ", "))
			}
		case "top":
			if !p.allowlist {
				return &Error{p.file, k.Line, field, "only allowlists have a top"}
			}
			s.Top, err = strconv.Atoi(v.Value)
			if err != nil || s.Top < 0 {
				err = fmt.Errorf("%q: want a count of entries, 0 for all", v.Value)
			}
		case "parser":
			if err := p.parserFields(v, field, &s.Parser); err != nil {
				return err
			}
		default:
			return &Error{p.file, k.Line, field, "unknown key"}
		}
		if err != nil {
			return bad(err.Error())
		}
	}
	return nil
}

func (p *parser) parserFields(n *yaml.Node, prefix string, o *Parser) error {
	if n.Kind != yaml.MappingNode {
		return &Error{p.file, n.Line, prefix, "want a mapping"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := prefix + "." + k.Value
		bad := func(msg string) error { return &Error{p.file, v.Line, field, msg} }
		var err error
		switch k.Value {
		case "comment":
			o.Comment = v.Value
		case "separator":
			o.Separator = strings.NewReplacer(`\t`, "\t").Replace(v.Value)
		case "column":
			o.Column, err = strconv.Atoi(v.Value)
			if err != nil || o.Column < 1 {
				return bad(fmt.Sprintf("%q: want a column number from 1", v.Value))
			}
		case "header":
			if o.Header, err = strconv.ParseBool(v.Value); err != nil {
				return bad("want true or false")
			}
		case "allow_unterminated":
			if o.AllowUnterminated, err = strconv.ParseBool(v.Value); err != nil {
				return bad("want true or false")
			}
		case "max_bad_share":
			o.MaxBad, err = strconv.ParseFloat(v.Value, 64)
			if err != nil || o.MaxBad < 0 || o.MaxBad > 1 {
				return bad(fmt.Sprintf("%q: want a share from 0 to 1", v.Value))
			}
		default:
			return &Error{p.file, k.Line, field, "unknown key (want comment, separator, column, header, max_bad_share, allow_unterminated)"}
		}
	}
	return nil
}

func duration(s string, least time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration such as 30s, 15m or 6h", s)
	}
	if d < least {
		return 0, fmt.Errorf("%s is below the minimum of %s", d, least)
	}
	return d, nil
}

var sizePattern = regexp.MustCompile(`^(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?$`)

func size(s string) (int64, error) {
	m := sizePattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q: want a size such as 500MiB or 2GiB", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a positive size", s)
	}
	mult := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1e3, "MB": 1e6, "GB": 1e9}[m[2]]
	return n * mult, nil
}
