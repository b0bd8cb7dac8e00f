package config

import (
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// A LabSetting is a setting whose value is the lab's (LabFile): right for the
// simulated Internet, wrong on the real one.
type LabSetting struct {
	Key, Value string
	// Why says what the value does outside the lab.
	Why string
}

// The lab's own names and ports (lab.DefaultConfig, config/lab.tip.yaml): a
// value holding one of them was written for the lab.
const (
	labCatalog      = "lab.yaml"
	labSpamCatalog  = "spam-lab.yaml"
	labDNSPort      = "5354"
	labHTTPPort     = "8480"
	labASNTablePath = "/iptoasn/"
)

// LabSettings lists the settings of c whose values are the lab's, in the order
// of the configuration file.
func (c Config) LabSettings() []LabSetting {
	var out []LabSetting
	add := func(key, value, why string) { out = append(out, LabSetting{key, value, why}) }
	if c.IsLabCatalog() {
		add("blacklists.catalog", c.Blacklists.Catalog, "feeds served by `tip lab serve` on 127.0.0.1:"+labHTTPPort)
	}
	if c.IsLabSpamCatalog() {
		add("spam.catalog", c.Spam.Catalog, "traps, archive and mailbox of the simulated Internet")
	}
	for _, r := range strings.Split(c.Flux.Resolvers, ",") {
		if _, port, err := net.SplitHostPort(strings.TrimSpace(r)); err == nil && port == labDNSPort {
			add("flux.resolvers", c.Flux.Resolvers, "a DNS server that knows the lab's zones only")
			break
		}
	}
	if u, err := url.Parse(c.Flux.ASNTable); err == nil && c.Flux.ASNTable != "" &&
		(u.Port() == labHTTPPort || strings.HasPrefix(u.Path, labASNTablePath)) {
		add("flux.asn_table", c.Flux.ASNTable, "a made-up table: real addresses get no ASN or a wrong one")
	}
	if c.Flux.ASNTableAllowPrivate {
		add("flux.asn_table_allow_private", "true", "the ASN tables may be downloaded from loopback and private addresses")
	}
	if c.Flux.TriageWait < time.Minute {
		add("flux.triage_wait", c.Flux.TriageWait.String(),
			"flux answers live up to 300 s: a second resolution sooner sees a cached copy of the first, and flux looks benign")
	}
	return out
}

// IsLabCatalog says whether blacklists.catalog is the lab's (config/lab.yaml
// or a copy of it by the same name).
func (c Config) IsLabCatalog() bool { return filepath.Base(c.Blacklists.Catalog) == labCatalog }

// IsLabSpamCatalog says whether spam.catalog is the lab's (config/spam-lab.yaml
// or a copy of it by the same name, as the production-like stack's).
func (c Config) IsLabSpamCatalog() bool { return filepath.Base(c.Spam.Catalog) == labSpamCatalog }
