package spam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/tip-project/tip/lab/world"
)

// Received header forms.
const (
	Postfix  = "postfix"
	Exim     = "exim"
	Sendmail = "sendmail"
	Exchange = "exchange"
	Gmail    = "gmail"
	Amavis   = "amavis"
)

// hop is what one Received header says, before it is written.
type hop struct {
	form  string
	by    string
	byIP  netip.Addr // Exchange names its own address too
	helo  string
	rdns  string // "" when the connecting address has no PTR
	ip    netip.Addr
	noIP  bool // "Received: by ..." with no from-clause
	style ipStyle
	ident string
	env   string // envelope sender (Exim writes it)
	rcpt  string
	tls   bool
	proto string // LMTP, ESMTP, SMTP...
	at    time.Time
	// extra is form-specific: Postfix "from userid", Exchange "mapi", Gmail "mx".
	extra string
	id    string
	fold  string // the fold used between clauses: "\n\t" or "\n        "
	role  string
}

// ipStyle says how an address is written inside the brackets.
type ipStyle int

const (
	plainIP  ipStyle = iota
	mappedV6         // an IPv4 address as IPv6:::ffff:a.b.c.d (or ::ffff:a.b.c.d in Exim)
)

// trapInfra is one trap's mail system: its MX (whose first header holds the true
// sender), a trusted relay in front of it, and the internal hops around it.
type trapInfra struct {
	mx       world.TrapMX
	form     string // the MX's software
	loc      *time.Location
	relay    string // trusted relay (backup MX) name
	relayIP  netip.Addr
	relayMTA string
	edge     string // an internal hop with a private address in front of the MX
	edgeIP   netip.Addr
	mxInner  netip.Addr // the MX's private address, seen by the mailbox host
	store    string     // the mailbox host above the MX
	storeIP  netip.Addr
	users    []string
}

func newTrapInfra(i int, mx world.TrapMX, relayIP netip.Addr, r *rand.Rand) *trapInfra {
	t := &trapInfra{mx: mx, relayIP: relayIP}
	net := 10 + 10*i
	t.mxInner = netip.AddrFrom4([4]byte{10, byte(net), 0, 5})
	t.edgeIP = netip.AddrFrom4([4]byte{10, byte(net), 0, 7})
	t.storeIP = netip.AddrFrom4([4]byte{10, byte(net), 0, 9})
	switch i % 3 {
	case 0:
		t.form, t.relayMTA, t.loc = Postfix, Sendmail, time.UTC
		t.relay = "mx2." + mx.Trap
		t.edge = "filter." + mx.Trap
		t.store = "imap." + mx.Trap
	case 1:
		t.form, t.relayMTA, t.loc = Exim, Postfix, time.FixedZone("CEST", 2*3600)
		t.relay = "relay." + mx.Trap
		t.edge = "edge." + strings.TrimSuffix(mx.Trap, ".net") + ".local"
		t.store = "MBX01." + strings.TrimSuffix(mx.Trap, ".net") + ".local"
	default:
		t.form, t.relayMTA, t.loc = Sendmail, Exim, time.FixedZone("EDT", -4*3600)
		t.relay = "backup." + mx.Trap
		t.edge = "gw." + mx.Trap
		t.store = "mail." + mx.Trap
	}
	// Trap addresses look harvested: names, roles, and junk.
	roles := []string{"info", "sales", "admin", "webmaster", "contact", "billing", "office", "support"}
	seen := map[string]bool{}
	for len(t.users) < 30 {
		var u string
		f, l := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		switch r.IntN(6) {
		case 0:
			u = roles[r.IntN(len(roles))]
		case 1:
			u = strings.ToLower(f + "." + l)
		case 2:
			u = strings.ToLower(f[:1] + l)
		case 3:
			u = strings.ToLower(f) + fmt.Sprint(r.IntN(100))
		case 4:
			u = strings.ToLower(f[:1] + "_" + l)
		default:
			u = randLower(r, 5+r.IntN(4))
		}
		if !seen[u] {
			seen[u] = true
			t.users = append(t.users, u)
		}
	}
	return t
}

// firstNameOf guesses the greeting name from a trap address' local part.
func firstNameOf(local string) string {
	for _, f := range firstNames {
		if strings.HasPrefix(local, strings.ToLower(f)) {
			return f
		}
	}
	return ""
}

func (h hop) ipText() string {
	ip := h.ip
	switch {
	case h.style == mappedV6 && ip.Is4():
		if h.form == Exim {
			return "::ffff:" + ip.String()
		}
		return "IPv6:::ffff:" + ip.String()
	case ip.Is6() && (h.form == Postfix || h.form == Sendmail):
		return "IPv6:" + ip.String()
	}
	return ip.String()
}

// write renders the header value (without "Received: ").
func (h hop) write() string {
	f := h.fold
	if f == "" {
		f = "\n\t"
	}
	switch h.form {
	case Postfix:
		return h.postfix(f)
	case Exim:
		return h.exim(f)
	case Sendmail:
		return h.sendmail(f)
	case Exchange:
		return h.exchange()
	case Gmail:
		return h.gmail()
	case Amavis:
		return fmt.Sprintf("from %s ([%s])%sby %s (%s [%s]) (amavisd-new, port 10024)%swith ESMTP id %s for <%s>;%s%s",
			h.helo, h.ipText(), f, h.by, h.extra, h.ip, f, h.id, h.rcpt, f, h.at.Format(dateNumericTZ))
	}
	panic("unknown Received form " + h.form)
}

const (
	// Postfix pads the day with a space and names the zone.
	datePostfix   = "Mon, _2 Jan 2006 15:04:05 -0700 (MST)"
	dateNumericTZ = "Mon, 02 Jan 2006 15:04:05 -0700"
	dateSendmail  = "Mon, 2 Jan 2006 15:04:05 -0700"
	dateGmail     = "Mon, 02 Jan 2006 15:04:05 -0700 (MST)"
)

func (h hop) postfix(f string) string {
	var sb strings.Builder
	if h.noIP {
		fmt.Fprintf(&sb, "by %s (Postfix%s)%sid %s; %s", h.by, h.extra, f, h.id, h.at.Format(datePostfix))
		return sb.String()
	}
	rdns := h.rdns
	if rdns == "" {
		rdns = "unknown"
	}
	fmt.Fprintf(&sb, "from %s (%s [%s])", h.helo, rdns, h.ipText())
	with := h.proto
	if h.tls {
		sb.WriteString(f + "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" + f +
			" key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)" + f + "(No client certificate requested)")
		if with == "ESMTP" {
			with = "ESMTPS"
		}
	}
	fmt.Fprintf(&sb, "%sby %s (Postfix) with %s id %s", f, h.by, with, h.id)
	if h.rcpt != "" {
		fmt.Fprintf(&sb, "%sfor <%s>", f, h.rcpt)
	}
	fmt.Fprintf(&sb, "; %s", h.at.Format(datePostfix))
	return sb.String()
}

func (h hop) exim(f string) string {
	var sb strings.Builder
	ip := h.ipText()
	switch {
	case h.rdns == "":
		fmt.Fprintf(&sb, "from [%s] (helo=%s", ip, h.helo)
		if h.ident != "" {
			fmt.Fprintf(&sb, " ident=%s", h.ident)
		}
		sb.WriteString(")")
	case strings.EqualFold(h.rdns, h.helo) && h.ident == "":
		fmt.Fprintf(&sb, "from %s ([%s])", h.rdns, ip)
	default:
		fmt.Fprintf(&sb, "from %s ([%s] helo=%s", h.rdns, ip, h.helo)
		if h.ident != "" {
			fmt.Fprintf(&sb, " ident=%s", h.ident)
		}
		sb.WriteString(")")
	}
	with := "esmtp (Exim 4.96)"
	if h.tls {
		with = "esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384" + f + "(Exim 4.96)"
	}
	if h.proto == "SMTP" {
		with = "smtp (Exim 4.96)"
	}
	fmt.Fprintf(&sb, "%sby %s with %s", f, h.by, with)
	if h.env != "" || h.rcpt != "" {
		fmt.Fprintf(&sb, "%s(envelope-from <%s>)", f, h.env)
	}
	fmt.Fprintf(&sb, "%sid %s", f, h.id)
	if h.rcpt != "" {
		fmt.Fprintf(&sb, "%sfor %s", f, h.rcpt)
	}
	fmt.Fprintf(&sb, "; %s", h.at.Format(dateNumericTZ))
	return sb.String()
}

func (h hop) sendmail(f string) string {
	var sb strings.Builder
	ip := h.ipText()
	host := h.rdns
	if h.ident != "" {
		host = h.ident + "@" + host
	}
	switch {
	case h.rdns == "":
		fmt.Fprintf(&sb, "from %s ([%s])", h.helo, ip)
	case h.extra == "forged":
		fmt.Fprintf(&sb, "from %s (%s [%s] (may be forged))", h.helo, host, ip)
	default:
		fmt.Fprintf(&sb, "from %s (%s [%s])", h.helo, host, ip)
	}
	fmt.Fprintf(&sb, "%sby %s (8.17.1/8.17.1) with %s id %s", f, h.by, h.proto, h.id)
	if h.rcpt != "" {
		fmt.Fprintf(&sb, "%sfor <%s>", f, h.rcpt)
	}
	fmt.Fprintf(&sb, "; %s", h.at.Format(dateSendmail))
	return sb.String()
}

// exchange writes Microsoft's form: addresses in parentheses without brackets, a
// build number that looks like an IPv4 address, and a single-space fold.
func (h hop) exchange() string {
	if h.extra == "mapi" {
		return fmt.Sprintf("from %s ([%s]) by %s\n ([%s]) with mapi id %s;\n %s",
			h.helo, h.ip, h.by, h.byIP, h.id, h.at.Format(dateSendmail))
	}
	via := ""
	if h.extra == "frontend" {
		via = " via Frontend Transport"
	}
	return fmt.Sprintf("from %s (%s) by %s\n (%s) with Microsoft SMTP Server (version=TLS1_2,\n cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id %s%s;\n %s",
		h.helo, h.ip, h.by, h.byIP, h.id, via, h.at.Format(dateSendmail))
}

// gmail writes Google's forms: "by <IPv6-looking id> with SMTP id" with no
// from-clause, and mx.google.com's ids whose tail looks like dotted numbers.
func (h hop) gmail() string {
	const f = "\n        "
	if h.noIP && h.id == "" {
		return fmt.Sprintf("by %s with HTTP;%s%s", h.by, f, h.at.Format(dateGmail))
	}
	if h.noIP {
		return fmt.Sprintf("by %s with SMTP id %s;%s%s", h.by, h.id, f, h.at.Format(dateGmail))
	}
	tls := "(version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256)"
	with := "ESMTPS"
	if strings.HasSuffix(h.helo, ".google.com") {
		tls, with = "(Google Transport Security)", "SMTPS"
	}
	return fmt.Sprintf("from %s (%s. [%s])%sby %s with %s id %s%sfor <%s>%s%s;%s%s",
		h.helo, h.rdns, h.ipText(), f, h.by, with, h.id, f, h.rcpt, f, tls, f, h.at.Format(dateGmail))
}

// Queue ids in each MTA's alphabet.
const (
	upperHex = "0123456789ABCDEF"
	base62   = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	lower    = "abcdefghijklmnopqrstuvwxyz"
)

func randFrom(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func randLower(r *rand.Rand, n int) string { return randFrom(r, lower, n) }

func postfixID(r *rand.Rand) string {
	if r.IntN(3) == 0 { // long queue ids
		return randFrom(r, "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz", 12)
	}
	return randFrom(r, upperHex, 10+r.IntN(2))
}

func eximID(r *rand.Rand) string {
	return randFrom(r, base62, 6) + "-" + randFrom(r, base62, 6) + "-" + randFrom(r, base62, 2)
}

func sendmailID(r *rand.Rand, at time.Time) string {
	// Sendmail's ids encode the year, month, day and hour in base 60ish letters.
	letters := base62
	return fmt.Sprintf("%c%c%c%c%s%06d", letters[at.Year()%60], letters[int(at.Month())-1], letters[at.Day()], letters[at.Hour()],
		randFrom(r, base62, 2), r.IntN(1000000))
}

func amavisID(r *rand.Rand) string { return randFrom(r, base62, 12) }

// exchangeBuild is an Exchange build number: four dotted numbers, like an address.
func exchangeBuild(r *rand.Rand) string {
	builds := []string{"15.1.2507.39", "15.1.2375.7", "15.2.1118.40", "15.0.1497.48", "14.3.513.0", "15.20.7409.29", "15.20.4195.25"}
	return builds[r.IntN(len(builds))]
}

func mapiBuild(r *rand.Rand) string {
	builds := []string{"15.01.2507.039", "15.02.1118.040", "15.00.1497.048"}
	return builds[r.IntN(len(builds))]
}

// gmailSMTPID is mx.google.com's id: letters, digits, then .N.YYYY.MM.DD.HH.MM.SS.
func gmailSMTPID(r *rand.Rand, at time.Time) string {
	return fmt.Sprintf("%s%d%s%d%s.%d.%s", randLower(r, 1), 1+r.IntN(99), []string{"si", "sor"}[r.IntN(2)],
		1000000+r.IntN(9000000), randLower(r, 3), 1+r.IntN(120), at.UTC().Format("2006.01.02.15.04.05"))
}

// gmailInternalBy is the by-clause Gmail writes for its own hops: an IPv6-looking
// token, or in older mail a private IPv4 address.
func gmailInternalBy(r *rand.Rand) string {
	if r.IntN(4) == 0 {
		return fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254))
	}
	return fmt.Sprintf("2002:a%02x:%x:%x:b0:%x:%x:%x", r.IntN(256), r.IntN(0x10000), r.IntN(0x10000),
		r.IntN(0x10000), r.IntN(0x10000), r.IntN(0x10000))
}

func gmailInternalID(r *rand.Rand) string {
	return fmt.Sprintf("%s%dcsp%d%s", randLower(r, 2), r.IntN(20), 100000+r.IntN(9000000), randLower(r, 3))
}
