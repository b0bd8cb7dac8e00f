// Package spam generates the lab's spam: raw RFC 822/MIME messages as a spamtrap's
// mailbox holds them, each with its ground truth (true sender IP, forged hops, URLs,
// attachments, campaign, defects), deterministically over lab time.
//
// Every lab hour is generated from its own seed, so the mail of any window of lab
// time can be produced without producing what came before it, and a window split in
// two gives the same messages as the whole.
package spam

import (
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tip-project/tip/lab/world"
)

// Options tunes the generator.
type Options struct {
	// PerDay is the mean number of messages per lab day (default 600). The rate
	// varies from day to day and over the day around this mean.
	PerDay int
	// Stream names an independent stream of mail: "" is the lab's main one, which
	// its archive and IMAP trap carry. Another name gives other messages at other
	// times, from the same campaigns (a campaign hits every trap).
	Stream string
	// Traps receive the stream's mail; default: the world's TrapMX.
	Traps []world.TrapMX
}

// DefaultPerDay is the spam rate when Options.PerDay is zero.
const DefaultPerDay = 600

// Message is one spam as the trap received it.
type Message struct {
	Name  string    // untroubled.org style file name, e.g. 1789000000.1234567_3.txt
	Time  time.Time // lab time of receipt (whole seconds)
	Raw   []byte    // the message as the trap's mailbox stores it
	Truth Truth
}

// Truth is what a harvester should extract from one message.
type Truth struct {
	Name     string    `json:"name"`
	Received time.Time `json:"received"`
	Trap     string    `json:"trap"`    // the trap address (envelope recipient)
	TrapMX   string    `json:"trap_mx"` // the trap MX that wrote the first trusted hop
	// SenderIP is the true sender: the first address below the trap's own hops that
	// is neither a trusted relay nor private. An IPv4-mapped IPv6 address written in
	// a header is recorded as the IPv4 address.
	SenderIP netip.Addr `json:"sender_ip"`
	// SenderKind: bot (an infected host, straight to the MX), snowshoe (rented
	// servers), webmail (Gmail's outbound hosts), exchange (a compromised
	// organisation's Exchange edge), relay (a compromised web server or open relay).
	SenderKind      string       `json:"sender_kind"`
	HELO            string       `json:"helo"`
	EnvelopeFrom    string       `json:"envelope_from"` // Return-Path address; empty for <>
	From            string       `json:"from,omitempty"`
	FromName        string       `json:"from_name,omitempty"` // decoded display name
	ReplyTo         string       `json:"reply_to,omitempty"`
	MessageID       string       `json:"message_id,omitempty"` // without angle brackets
	Subject         string       `json:"subject"`              // decoded (the intended text when sent as raw 8-bit)
	Date            string       `json:"date,omitempty"`       // the Date header as written (unfolded)
	DateSkewSeconds int64        `json:"date_skew_s"`          // Date minus receipt, when Date parses
	XMailer         string       `json:"x_mailer,omitempty"`
	ReceivedCount   int          `json:"received_count"`
	Hops            []Hop        `json:"hops"`       // Received headers, newest first
	SenderHop       int          `json:"sender_hop"` // index in Hops of the header naming the sender
	URLs            []URL        `json:"urls"`
	Attachments     []Attachment `json:"attachments,omitempty"`
	// Campaign groups messages made from one template; a one-off message has a
	// campaign of its own (ids starting with "solo-").
	Campaign   string   `json:"campaign"`
	Theme      string   `json:"theme"`
	Charset    string   `json:"charset"`
	Malformed  bool     `json:"malformed,omitempty"`
	DefectKind string   `json:"defect_kind,omitempty"` // one of the defect kinds (MissingHeaders...)
	Defects    []string `json:"defects,omitempty"`     // what is wrong, in words
}

// Hop is one Received header.
type Hop struct {
	By     string     `json:"by,omitempty"`     // the host that wrote it
	FromIP netip.Addr `json:"from_ip,omitzero"` // the connecting IP in its from-clause, if any
	Form   string     `json:"form"`             // postfix, exim, sendmail, exchange, gmail, amavis
	Role   string     `json:"role"`             // trap, sender, upstream, forged
	Forged bool       `json:"forged,omitempty"` // written by the spammer, not by the host it names
}

// Hop roles.
const (
	RoleTrap     = "trap"     // written by the trap's own hosts or trusted relays
	RoleSender   = "sender"   // the trap's hop whose from-clause holds the true sender
	RoleUpstream = "upstream" // genuine, but beyond what the trap can vouch for
	RoleForged   = "forged"   // fabricated by the spammer
)

// URL is one occurrence of a URL in a message; the same URL can occur in several
// places (text, HTML, an attachment).
type URL struct {
	URL        string      `json:"url"`           // normalised: lower-case scheme and host, path at least "/"
	Raw        string      `json:"raw,omitempty"` // as written, when it differs (entities, hxxp, case)
	Host       string      `json:"host"`
	Domain     string      `json:"domain"`     // registrable domain (every lab suffix is one label)
	LabDomain  string      `json:"lab_domain"` // the lab zone serving Host
	Class      world.Class `json:"class"`
	Where      string      `json:"where"` // text/plain, text/html, attachment:<name>[/<member>], header:<name>
	Obfuscated bool        `json:"obfuscated,omitempty"`
}

// Attachment is one non-body MIME part.
type Attachment struct {
	Name        string   `json:"name"`
	ContentType string   `json:"content_type"` // as declared
	Disposition string   `json:"disposition"`  // attachment or inline
	Size        int      `json:"size"`         // decoded bytes
	SHA256      string   `json:"sha256"`       // of the decoded bytes
	Members     []Member `json:"members,omitempty"`
	// Damaged: a defect (bad base64, truncation) keeps the decoded bytes from
	// matching Size and SHA256.
	Damaged bool `json:"damaged,omitempty"`
}

// Member is one file inside a zip attachment.
type Member struct {
	Name   string `json:"name"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

// Generator makes the lab's spam from its world.
type Generator struct {
	w       *world.World
	perDay  int
	stream  string // "spam/" or "spam/<stream>/": the prefix of its random labels
	traps   []*trapInfra
	trusted []netip.Addr
	// hosting are server addresses free for senders: no trap host, relay or site.
	hosting  []netip.Addr
	flux     []*world.Domain
	bad      []*world.Domain // malicious, not flux
	benign   []*world.Domain // static and round-robin sites
	popular  []*world.Domain
	cdn      []*world.Domain // CDN domains that are not popular names
	gmailIPs []netip.Addr

	// forceDefect, set by tests, breaks every message it fits in that way.
	forceDefect string

	mu        sync.Mutex
	campaigns map[int][]*campaign // by lab day
}

// NewGenerator prepares the spam of a world.
func NewGenerator(w *world.World, opts Options) *Generator {
	g := &Generator{w: w, perDay: opts.PerDay, stream: "spam/", campaigns: map[int][]*campaign{}}
	if opts.Stream != "" {
		g.stream = "spam/" + opts.Stream + "/"
	}
	if g.perDay <= 0 {
		g.perDay = DefaultPerDay
	}
	g.flux = w.DomainsOf(world.SingleFlux, world.DoubleFlux)
	g.bad = w.DomainsOf(world.Malicious)
	g.benign = w.DomainsOf(world.Static, world.RoundRobin)
	for _, d := range w.DomainsOf(world.CDNDomain) {
		if d.Popular {
			g.popular = append(g.popular, d)
		} else {
			g.cdn = append(g.cdn, d)
		}
	}
	if d, ok := w.Domain("google.com"); ok {
		g.gmailIPs = d.Pool
	}

	// Addresses in use by sites and name servers stay out of the sender pool, and
	// the relays the traps trust are taken from its end.
	used := map[netip.Addr]bool{}
	for _, d := range w.Domains {
		for _, a := range append(slices.Clone(d.Pool), d.NSPool...) {
			used[a] = true
		}
	}
	for _, mx := range w.TrapMX {
		used[mx.Addr] = true
	}
	var free []netip.Addr
	for _, a := range w.HostingAddrs() {
		if !used[a] {
			free = append(free, a)
		}
	}
	nTrusted := len(w.TrapMX)
	g.trusted = slices.Clone(free[len(free)-nTrusted:])
	g.hosting = free[:len(free)-nTrusted]
	// Traps of a stream's own come after the world's, so their mail systems differ
	// from those (other software, other internal networks); each trusts one of the
	// relays in front of the world's traps.
	traps, first := w.TrapMX, 0
	if len(opts.Traps) > 0 {
		traps, first = opts.Traps, len(w.TrapMX)
	}
	for i, mx := range traps {
		k := first + i
		g.traps = append(g.traps, newTrapInfra(k, mx, g.trusted[k%nTrusted], w.Rand("spam/trap/"+mx.Trap)))
	}
	return g
}

// TrustedRelays are the relays in front of the traps' MX hosts (one backup MX or
// relay per trap): a trap's configuration trusts them, as it does private addresses.
func (g *Generator) TrustedRelays() []netip.Addr { return slices.Clone(g.trusted) }

// Between returns every message received in [from, to), ordered by time.
func (g *Generator) Between(from, to time.Time) []Message {
	var out []Message
	for m := range g.All(from, to) {
		out = append(out, m)
	}
	return out
}

// All yields the messages received in [from, to) in order, one at a time, for
// windows too long to hold in memory.
func (g *Generator) All(from, to time.Time) iter.Seq[Message] {
	return func(yield func(Message) bool) {
		if !from.Before(to) {
			return
		}
		for h := max(0, g.hourOf(from)); g.hourStart(h).Before(to); h++ {
			for i, at := range g.slots(h) {
				if at.Before(from) || !at.Before(to) {
					continue
				}
				if !yield(g.message(h, i, at)) {
					return
				}
			}
		}
	}
}

func (g *Generator) hourStart(h int64) time.Time { return g.w.Start.Add(time.Duration(h) * time.Hour) }

func (g *Generator) hourOf(t time.Time) int64 {
	d := t.Sub(g.w.Start)
	h := int64(d / time.Hour)
	if d < 0 && d%time.Hour != 0 {
		h--
	}
	return h
}

// rate is the mean number of messages in lab hour h: the daily mean scaled by a
// factor per day (a quiet or a busy day) and a daily cycle.
func (g *Generator) rate(h int64) float64 {
	day := h / 24
	dayFactor := 0.55 + 0.9*g.w.Rand(fmt.Sprintf("%sday/%d", g.stream, day)).Float64()
	hourOfDay := float64(h % 24)
	cycle := 1 + 0.35*math.Sin(2*math.Pi*(hourOfDay-9)/24)
	return float64(g.perDay) / 24 * dayFactor * cycle
}

// slots are the receipt times of lab hour h's messages, sorted; a message's index
// in its hour names it and seeds it.
func (g *Generator) slots(h int64) []time.Time {
	r := g.w.Rand(fmt.Sprintf("%shour/%d", g.stream, h))
	n := poisson(r, g.rate(h))
	start := g.hourStart(h)
	out := make([]time.Time, n)
	for i := range out {
		out[i] = start.Add(time.Duration(r.IntN(3600)) * time.Second)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

func poisson(r *rand.Rand, mean float64) int {
	if mean > 200 {
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	limit, k, p := math.Exp(-mean), 0, r.Float64()
	for p > limit {
		k++
		p *= r.Float64()
	}
	return k
}

// fileName is the untroubled.org style name: receipt time, a per-hour number like
// the delivering process's, and the message's index in its hour.
func (g *Generator) fileName(h int64, i int, at time.Time) string {
	pid := 1000000 + g.w.Rand(fmt.Sprintf("%spid/%d", g.stream, h)).IntN(9000000)
	return fmt.Sprintf("%d.%d_%d.txt", at.Unix(), pid, i)
}
