package dnsserve

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/tip-project/tip/config"
)

// FromConfig is the server's Config from TIP's configuration (dns section); a
// TSIG key's secret is read from its environment variable here.
func FromConfig(c config.DNS) (Config, error) {
	cfg := Config{NS: c.NS, Hostmaster: c.Hostmaster, TTL: c.TTL, NegativeTTL: c.NegativeTTL, JournalKeep: c.JournalKeep,
		Poll: c.Poll, RatePerClient: c.RatePerClient, TSIG: map[string]string{}}
	for f := range strings.SplitSeq(c.TransferAllow, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return cfg, fmt.Errorf("dns.transfer_allow: %q: %v", f, err)
		}
		cfg.TransferAllow = append(cfg.TransferAllow, p.Masked())
	}
	for f := range strings.SplitSeq(c.Notify, ",") {
		if f = strings.TrimSpace(f); f != "" {
			cfg.Notify = append(cfg.Notify, f)
		}
	}
	for _, k := range c.TSIG {
		secret := k.Secret
		if k.SecretEnv != "" {
			secret = os.Getenv(k.SecretEnv)
		}
		if k.Name == "" || secret == "" {
			return cfg, fmt.Errorf("dns.tsig: key %q: want a name and a secret (secret_env names the variable holding it)", k.Name)
		}
		if _, err := base64.StdEncoding.DecodeString(secret); err != nil {
			return cfg, fmt.Errorf("dns.tsig: key %s: the secret is not base64: %v", k.Name, err)
		}
		cfg.TSIG[k.Name] = secret
	}
	for _, z := range c.RPZ {
		cfg.RPZ = append(cfg.RPZ, RPZ{Name: z.Name, Action: z.Action, Selector: Selector{MinScore: z.MinScore, Sources: z.Sources, Types: z.Types}})
	}
	for _, z := range c.DNSBL {
		bz := DNSBL{Name: z.Name}
		for _, l := range z.Lists {
			if l.Code < 2 || l.Code > 254 {
				return cfg, fmt.Errorf("dns.dnsbl %s: list code %d: want 2 to 254", z.Name, l.Code)
			}
			bz.Lists = append(bz.Lists, List{Code: uint8(l.Code), Name: l.Name, Selector: Selector{MinScore: l.MinScore, Sources: l.Sources, Types: l.Types}})
		}
		cfg.DNSBL = append(cfg.DNSBL, bz)
	}
	return cfg, nil
}
