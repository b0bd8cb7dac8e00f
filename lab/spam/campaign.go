package spam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/tip-project/tip/lab/world"
)

// campaign is a spam run: one template sent from one botnet (or one kind of sender)
// over a window of lab time. Its members share copy, links, software and structure,
// and differ in recipient, sender, tokens and small details.
type campaign struct {
	id         string
	th         *theme
	charset    string
	start, end time.Time
	weight     float64

	subject, fromName, localPart string
	greeting, closing, linkText  string
	paras                        []string
	first, last, company, brand  string
	brandDomain                  *world.Domain
	pct, amount                  int

	fromDomain  string // From address domain (spoofed or made up)
	envDiffers  bool   // envelope sender is not the From address
	replyShare  float64
	replyDomain string

	// Links: the primary domains the copy points to, and benign extras.
	primary     []*world.Domain
	hostStyle   int    // 0 bare, 1 www., 2 random label
	token       uint32 // the campaign's tracking token in its links
	pathStyle   int
	https       bool
	unsub       *world.Domain // nil: no unsubscribe link
	pixel       *world.Domain // tracking image host
	logo        *world.Domain // popular site whose logo the HTML shows
	listUnsub   bool
	obfuscate   float64 // share of plain-text links written hxxp://x[.]y
	entities    bool    // hrefs written with character entities
	hidden      bool    // Bayes poison in the HTML
	htmlOneLine bool

	layout               string // plain, html, alt, related, mixed
	bodyLayout           string // the body inside a mixed message: plain, html, alt, related
	textCTE              string
	htmlCTE              string
	b64Width             int
	subjEnc              byte // 'B', 'Q', or 0 for a plain header
	subjLabel, fromLabel string
	attach               string
	fileBase             string
	rfc2231              bool // attachment names as filename*=

	mailer      string
	msgIDStyle  int
	dateStyle   int
	zone        *time.Location
	toStyle     int
	boundary    int
	crlf        bool
	headerOrder int

	senderKind  string // bot, snowshoe, webmail, exchange, relay
	network     int
	hosts       []netip.Addr // the sending servers of snowshoe, exchange and relay campaigns
	hostDomain  string       // their domain
	heloStyle   int
	forgeShare  float64
	v6Share     float64
	mappedShare float64
	orgDomain   *world.Domain // exchange: the compromised organisation
}

var mailers = []string{
	"Microsoft Outlook Express 6.00.2900.5512",
	"Microsoft Office Outlook 12.0",
	"Microsoft Outlook 16.0",
	"The Bat! (v3.5.25) Professional",
	"PHPMailer 5.2.14 (https://github.com/PHPMailer/PHPMailer)",
	"PHPMailer 6.1.4 (https://github.com/PHPMailer/PHPMailer)",
	"Foxmail 7.2.23.116[cn]",
	"Apple Mail (2.3654.120.0.1.13)",
	"iPhone Mail (18E212)",
	"Mozilla Thunderbird 102.15.1",
	"Sendblaster 4.1.12",
	"Atomic Mail Sender 9.40",
}

var zones = []*time.Location{
	time.FixedZone("EDT", -4*3600), time.FixedZone("PDT", -7*3600), time.FixedZone("CEST", 2*3600),
	time.FixedZone("MSK", 3*3600), time.FixedZone("CST", 8*3600), time.FixedZone("JST", 9*3600),
	time.FixedZone("IST", 5*3600+1800), time.FixedZone("BRT", -3*3600), time.UTC,
}

// campaignsOfDay lists the campaigns that start on lab day d.
func (g *Generator) campaignsOfDay(d int) []*campaign {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cs, ok := g.campaigns[d]; ok {
		return cs
	}
	r := g.w.Rand(fmt.Sprintf("spam/campaigns/%d", d))
	dayStart := g.w.Start.Add(time.Duration(d) * 24 * time.Hour)
	n := 5 + r.IntN(6)
	cs := make([]*campaign, n)
	for k := range cs {
		start := dayStart.Add(time.Duration(r.IntN(24*3600)) * time.Second)
		dur := time.Hour + time.Duration(r.IntN(29*3600))*time.Second
		id := fmt.Sprintf("c%03d-%02d", d, k)
		cs[k] = g.newCampaign(id, g.w.Rand("spam/campaign/"+id), start, start.Add(dur))
		cs[k].weight = 0.3 + r.ExpFloat64()
	}
	g.campaigns[d] = cs
	return cs
}

// activeAt lists the campaigns sending at t (they last at most 30 hours, so they
// started that day or the two before).
func (g *Generator) activeAt(t time.Time) []*campaign {
	var out []*campaign
	d := g.w.Day(t)
	for day := d - 2; day <= d; day++ {
		if day < 0 {
			continue
		}
		for _, c := range g.campaignsOfDay(day) {
			if !t.Before(c.start) && t.Before(c.end) {
				out = append(out, c)
			}
		}
	}
	return out
}

func pickOne[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func (g *Generator) newCampaign(id string, r *rand.Rand, start, end time.Time) *campaign {
	th := pickOne(r, themes)
	c := &campaign{id: id, th: th, start: start, end: end, weight: 1}
	c.charset = pickOne(r, th.charsets)
	c.first, c.last, c.company = pickOne(r, firstNames), pickOne(r, lastNames), pickOne(r, companies)
	c.pct = 10 + 5*r.IntN(15)
	c.amount = th.amounts[0] + r.IntN(th.amounts[1]-th.amounts[0]+1)
	if len(g.popular) > 0 {
		c.brandDomain = pickOne(r, g.popular)
		c.brand = brands[c.brandDomain.Name]
	}
	if c.brand == "" {
		c.brand = "Webmail"
	}
	fill := func(s string) string { return c.fillFixed(s) }
	c.subject = pickOne(r, th.subjects)
	c.fromName = fill(pickOne(r, th.fromNames))
	c.localPart = strings.ToLower(fill(pickOne(r, th.localParts)))
	c.greeting = pickOne(r, th.greetings)
	c.closing = fill(pickOne(r, th.closings))
	c.linkText = fill(pickOne(r, th.linkTexts))
	// A fixed subset of the paragraphs, in order, with at least one link.
	for {
		c.paras = nil
		for _, p := range th.paras {
			if r.IntN(4) != 0 {
				c.paras = append(c.paras, p)
			}
		}
		if len(c.paras) > 0 && strings.Contains(strings.Join(c.paras, " "), "{url}") {
			break
		}
	}

	// Where the links go: flux networks mostly, malicious sites often.
	nPrimary := 1 + r.IntN(2)
	for len(c.primary) < nPrimary {
		var d *world.Domain
		if r.Float64() < 0.65 && len(g.flux) > 0 {
			d = pickOne(r, g.flux)
		} else if len(g.bad) > 0 {
			d = pickOne(r, g.bad)
		} else {
			d = pickOne(r, g.benign)
		}
		if len(c.primary) == 0 || c.primary[0] != d {
			c.primary = append(c.primary, d)
		}
	}
	c.hostStyle = weighted(r, 5, 3, 2)
	c.token = r.Uint32()
	c.pathStyle = r.IntN(6)
	c.https = r.IntN(3) != 0
	if r.IntN(2) == 0 && len(g.benign) > 0 {
		c.unsub = pickOne(r, g.benign)
	}
	if r.IntN(3) == 0 {
		if r.IntN(2) == 0 && len(g.cdn) > 0 {
			c.pixel = pickOne(r, g.cdn)
		} else {
			c.pixel = c.primary[0]
		}
	}
	if th.phish || r.IntN(5) == 0 {
		c.logo = c.brandDomain
	}
	c.listUnsub = c.unsub != nil && r.IntN(2) == 0
	if r.IntN(5) == 0 {
		c.obfuscate = 0.5 + 0.5*r.Float64()
	}
	c.entities = r.IntN(8) == 0
	c.hidden = len(th.hidden) > 0 && r.IntN(3) == 0
	c.htmlOneLine = r.IntN(5) == 0

	// Structure and encodings.
	c.layout = []string{"plain", "html", "alt", "related", "mixed"}[weighted(r, 3, 2, 4, 1, 0)]
	c.bodyLayout = c.layout
	if th.attach != nil && r.IntN(4) != 0 {
		c.attach = pickOne(r, th.attach)
		c.fileBase = pickOne(r, th.fileBases)
		c.layout = "mixed"
	}
	c.rfc2231 = r.IntN(3) == 0
	ascii := c.charset == "us-ascii"
	c.textCTE = pickOne(r, []string{"7bit", "quoted-printable", "base64"})
	c.htmlCTE = pickOne(r, []string{"7bit", "quoted-printable", "quoted-printable", "base64"})
	if !ascii {
		c.textCTE = pickOne(r, []string{"8bit", "quoted-printable", "base64", "base64"})
		c.htmlCTE = pickOne(r, []string{"quoted-printable", "base64"})
	}
	c.b64Width = pickOne(r, []int{76, 76, 76, 72, 64})
	c.subjLabel = pickOne(r, charsetNames[c.charset])
	c.fromLabel = c.subjLabel
	c.subjEnc = pickOne(r, []byte{'B', 'Q'})
	if ascii && r.IntN(4) != 0 {
		c.subjEnc = 0
	}
	if ascii && c.subjEnc != 0 { // spammers encode plain ASCII too
		c.subjLabel = pickOne(r, []string{"UTF-8", "utf-8", "us-ascii"})
		c.fromLabel = c.subjLabel
		c.charset = strings.ToLower(c.subjLabel)
	}

	c.boundary = r.IntN(5)
	if r.IntN(5) != 0 {
		c.mailer = pickOne(r, mailers)
	}
	// Mail software writes its own kind of boundary.
	for prefix, style := range map[string]int{"Microsoft": 0, "Mozilla": 1, "PHPMailer": 2, "Apple": 3, "iPhone": 3} {
		if strings.HasPrefix(c.mailer, prefix) {
			c.boundary = style
		}
	}
	c.msgIDStyle = r.IntN(6)
	c.dateStyle = r.IntN(5)
	c.zone = pickOne(r, zones)
	c.toStyle = weighted(r, 6, 2, 1, 1, 1)
	c.crlf = r.IntN(12) == 0
	c.headerOrder = r.IntN(3)

	// Who sends it.
	c.senderKind = []string{"bot", "snowshoe", "webmail", "exchange", "relay"}[weighted(r, 62, 12, 9, 9, 8)]
	c.network = r.IntN(len(g.w.Networks))
	c.heloStyle = r.IntN(7)
	c.forgeShare = []float64{0, 0.3, 0.8}[r.IntN(3)]
	c.v6Share = []float64{0, 0, 0.15, 0.4}[r.IntN(4)]
	c.mappedShare = []float64{0, 0, 0.1, 0.3}[r.IntN(4)]
	c.fromDomain = g.madeUpDomain(r)
	switch c.senderKind {
	case "snowshoe":
		c.hostDomain = g.madeUpDomain(r)
		c.fromDomain = c.hostDomain
		for range 3 + r.IntN(6) {
			c.hosts = append(c.hosts, pickOne(r, g.hosting))
		}
	case "webmail":
		c.fromDomain = "gmail.com"
	case "exchange":
		c.hosts = []netip.Addr{pickOne(r, g.hosting)}
		c.orgDomain = pickOne(r, g.benign)
		c.fromDomain = c.orgDomain.Name
		c.forgeShare = 0
	case "relay":
		c.hosts = []netip.Addr{pickOne(r, g.hosting), pickOne(r, g.hosting)}
		c.hostDomain = pickOne(r, g.benign).Name
	}
	if r.IntN(6) == 0 && c.senderKind == "bot" && c.brandDomain != nil {
		c.fromDomain = c.brandDomain.Name // a spoofed brand
	}
	c.envDiffers = r.IntN(3) == 0
	c.replyShare = th.replyTo
	if c.replyShare == 0 && r.IntN(3) == 0 {
		c.replyShare = 0.7
	}
	c.replyDomain = pickOne(r, freemail)
	return c
}

// fillFixed replaces the placeholders fixed for the whole campaign.
func (c *campaign) fillFixed(s string) string {
	return strings.NewReplacer("{first}", c.first, "{last}", c.last, "{company}", c.company, "{brand}", c.brand,
		"{pct}", fmt.Sprint(c.pct), "{amount}", fmt.Sprint(c.amount)).Replace(s)
}

// weighted picks an index with the given relative weights.
func weighted(r *rand.Rand, weights ...int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.IntN(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

var fakeTLDs = []string{"com", "net", "info", "biz", "xyz", "top", "ru", "online", "site"}

// madeUpDomain is a sender domain that is no lab zone: spammers write any name.
func (g *Generator) madeUpDomain(r *rand.Rand) string {
	for {
		n := ""
		for range 2 + r.IntN(2) {
			n += pickOne(r, []string{"mail", "news", "deal", "best", "shop", "promo", "info", "net", "star", "prime", "go", "max", "top", "line"})
		}
		if r.IntN(2) == 0 {
			n += fmt.Sprint(r.IntN(1000))
		}
		n += "." + pickOne(r, fakeTLDs)
		if _, taken := g.w.Domain(n); !taken {
			return n
		}
	}
}
