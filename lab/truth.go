package lab

import (
	"net/netip"
	"time"

	"github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/spam"
	"github.com/tip-project/tip/lab/world"
)

// Truth is what the lab knows at one lab time: what every domain is and answers,
// which botnets exist, what every feed lists, and the facts of recent spam.
type Truth struct {
	Seed     uint64            `json:"seed"`
	At       time.Time         `json:"at"`
	LabDay   int               `json:"lab_day"`
	Traps    []world.TrapMX    `json:"traps"`
	Networks []NetworkTruth    `json:"networks"`
	Domains  []DomainTruth     `json:"domains"`
	Feeds    []feeds.FeedTruth `json:"feeds"`
	Spam     SpamTruth         `json:"spam"`

	// AgentTrap's mail is only in its Maildir, for a spamtrap agent: Spam leaves it out.
	AgentTrap world.TrapMX `json:"agent_trap"`
}

// NetworkTruth is one botnet.
type NetworkTruth struct {
	Name    string   `json:"name"`
	Bots    int      `json:"bots"`
	ASNs    []int    `json:"asns"`
	Domains []string `json:"domains"`
}

// DomainTruth is one lab domain's class and current answers.
type DomainTruth struct {
	Name       string         `json:"name"`
	Class      world.Class    `json:"class"`
	Network    string         `json:"network,omitempty"`
	Popular    bool           `json:"popular,omitempty"`
	Status     string         `json:"status"`
	TTL        uint32         `json:"ttl"`
	PoolSize   int            `json:"pool_size"`
	A          []netip.Addr   `json:"a,omitempty"`
	AAAA       []netip.Addr   `json:"aaaa,omitempty"`
	NS         []world.NSHost `json:"ns,omitempty"`
	TakedownAt *time.Time     `json:"takedown_at,omitempty"`
	ServfailAt *time.Time     `json:"servfail_at,omitempty"`
}

// SpamTruth lists the spam received in a window of lab time.
type SpamTruth struct {
	From     time.Time    `json:"from"`
	To       time.Time    `json:"to"`
	Messages []spam.Truth `json:"messages"`
}

// BuildTruth assembles the ground truth at lab time at, with the spam received in
// [spamFrom, at).
func BuildTruth(w *world.World, fs *feeds.Server, gen *spam.Generator, at, spamFrom time.Time) Truth {
	t := Truth{Seed: w.Seed, At: at, LabDay: w.Day(at), Traps: w.TrapMX, AgentTrap: w.AgentTrapMX, Feeds: fs.Truth(at)}
	byNet := map[string][]string{}
	for _, d := range w.Domains {
		dt := DomainTruth{Name: d.Name, Class: d.Class, Network: d.Network, Popular: d.Popular,
			Status: d.StatusAt(at).String(), TTL: d.TTL, PoolSize: len(d.Pool)}
		dt.A, _ = w.A(d, at)
		dt.AAAA, _ = w.AAAA(d, at)
		dt.NS, _ = w.NS(d, at)
		if !d.TakedownAt.IsZero() {
			dt.TakedownAt, dt.ServfailAt = &d.TakedownAt, &d.ServfailAt
		}
		t.Domains = append(t.Domains, dt)
		if d.Class.IsFlux() {
			byNet[d.Network] = append(byNet[d.Network], d.Name)
		}
	}
	for _, n := range w.Networks {
		t.Networks = append(t.Networks, NetworkTruth{Name: n.Name, Bots: len(n.Pool), ASNs: n.ASNs, Domains: byNet[n.Name]})
	}
	t.Spam = SpamTruth{From: spamFrom, To: at}
	for _, m := range gen.Between(spamFrom, at) {
		t.Spam.Messages = append(t.Spam.Messages, m.Truth)
	}
	return t
}
