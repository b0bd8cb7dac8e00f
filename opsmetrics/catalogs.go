package opsmetrics

import (
	"time"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/storage"
)

// sourceIntervals are the intervals the enabled sources are fetched at: the
// blacklist catalog's, and own's for TIP's own sources. When the catalog does
// not load, own's are still returned, with the error.
func sourceIntervals(path string, own map[string]time.Duration) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for name, d := range own {
		if d > 0 {
			out[name] = d
		}
	}
	c, err := catalog.Load(path, nil)
	if err != nil {
		return out, err
	}
	for _, s := range c.Enabled() {
		out[s.Name] = s.Interval
	}
	return out, nil
}

// spamCollector is a spam collector as `tip status` names it (archive:NAME,
// imap:NAME, agent:NAME), with its catalog interval.
type spamCollector struct {
	storage.SpamCollector
	interval time.Duration // 0: unknown (the catalog did not load)
}

// spamCollectors lists the spam catalog's enabled collectors by the names
// they claim their runs under and the origins their mails are recorded under,
// as `tip status` does (which lists the disabled ones too).
func spamCollectors(path string) ([]spamCollector, error) {
	c, err := catalog.LoadSpam(path)
	if err != nil {
		return nil, err
	}
	var out []spamCollector
	for _, col := range c.Collectors() {
		if col.Enabled {
			out = append(out, spamCollector{storage.SpamCollector{Name: col.Name, Origin: col.Origin}, col.Interval})
		}
	}
	return out, nil
}
