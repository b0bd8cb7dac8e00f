package spam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// spamHeaders writes the headers the spammer's software writes.
func (b *builder) spamHeaders() {
	c, r := b.c, b.r
	var h []header
	add := func(name, value string) { h = append(h, header{name, fold(len(name), value)}) }

	from, name := b.address(c.fromName, b.fromAddr, c.fromLabel)
	add("From", from)
	b.t.FromName = name
	add("To", b.toValue())

	subject := b.fill(c.subject)
	prefix := ""
	if r.IntN(15) == 0 {
		prefix = pickOne(r, []string{"Re: ", "RE: ", "Fwd: ", "FW: "})
	}
	b.subject = prefix + subject
	b.t.Subject = b.subject
	if c.subjEnc == 0 {
		add("Subject", b.subject)
	} else {
		add("Subject", prefix+strings.Join(encodedWords(subject, c.charset, c.subjLabel, c.subjEnc), " "))
	}

	date, skew := b.dateValue()
	add("Date", date)
	b.t.Date, b.t.DateSkewSeconds = date, skew

	mailer := c.mailer
	switch c.senderKind {
	case "webmail", "exchange":
		mailer = ""
	}
	b.t.XMailer = mailer
	if id := b.messageID(); id != "" {
		add("Message-ID", "<"+id+">")
		b.t.MessageID = id
	}
	if b.t.ReplyTo != "" {
		replyTo, _ := b.address(pickOne(r, []string{"", c.fromName}), b.t.ReplyTo, c.fromLabel)
		add("Reply-To", replyTo)
	}
	if mailer != "" {
		add("X-Mailer", mailer)
		if strings.HasPrefix(mailer, "Microsoft Outlook Express") {
			add("X-Priority", "3")
			add("X-MSMail-Priority", "Normal")
			add("X-MimeOLE", "Produced By Microsoft MimeOLE V6.00.2900.5512")
		}
	}
	if c.senderKind == "exchange" {
		add("Thread-Topic", b.subject)
		add("Thread-Index", "AQH"+randFrom(r, base62, 25)+"==")
		add("X-MS-Has-Attach", map[bool]string{true: "yes", false: ""}[len(b.t.Attachments) > 0])
	}
	add("MIME-Version", "1.0")
	h = append(h, b.spam...) // List-Unsubscribe, written with the links

	orders := [][]string{
		{"From", "To", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version", "X-Priority", "X-MSMail-Priority", "X-Mailer", "X-MimeOLE"},
		{"Date", "To", "From", "Reply-To", "Subject", "Message-ID", "X-Mailer", "List-Unsubscribe", "MIME-Version"},
		{"Message-ID", "From", "Reply-To", "To", "Subject", "Date", "List-Unsubscribe", "X-Mailer", "MIME-Version"},
	}
	order := orders[c.headerOrder]
	rank := func(name string) int {
		if i := slices.Index(order, name); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(h, func(x, y header) int { return rank(x.name) - rank(y.name) })
	b.spam = h
}

// address writes "Name <addr>" with the name quoted or RFC 2047-encoded as needed,
// or sometimes the bare address; it returns the name it wrote.
func (b *builder) address(name, addr, label string) (string, string) {
	r := b.r
	if name == "" || r.IntN(12) == 0 {
		if r.IntN(2) == 0 {
			return addr, ""
		}
		return "<" + addr + ">", ""
	}
	if !isASCII(name) {
		charset := strings.ToLower(label)
		if _, err := encodeCharset(charset, name); err != nil {
			charset, label = "utf-8", "UTF-8"
		}
		return strings.Join(encodedWords(name, charset, label, pickOne(r, []byte{'B', 'Q'})), " ") + " <" + addr + ">", name
	}
	if strings.ContainsAny(name, `.,()<>@:;"[]\`) || r.IntN(3) == 0 {
		return `"` + name + `" <` + addr + ">", name
	}
	return name + " <" + addr + ">", name
}

func (b *builder) toValue() string {
	r := b.r
	switch b.c.toStyle {
	case 1:
		return "<" + b.rcpt + ">"
	case 2:
		return `"` + b.loc + `" <` + b.rcpt + ">"
	case 3:
		return "undisclosed-recipients:;"
	case 4:
		list := []string{b.rcpt}
		for range 2 + r.IntN(3) {
			u := b.trap.users[r.IntN(len(b.trap.users))] + "@" + b.g.madeUpDomain(r)
			list = slices.Insert(list, r.IntN(len(list)+1), u)
		}
		return strings.Join(list, ", ")
	}
	return b.rcpt
}

// dateValue is the Date header: the sender's clock, mostly right, sometimes hours
// or years off, in one of the formats seen in spam; skew is Date minus receipt.
func (b *builder) dateValue() (string, int64) {
	r, c := b.r, b.c
	sent := b.at.Add(-time.Duration(2+r.IntN(900)) * time.Second).In(c.zone)
	switch k := r.IntN(100); {
	case k < 82:
	case k < 90: // local wall time labelled as another zone
		sent = time.Date(sent.Year(), sent.Month(), sent.Day(), sent.Hour(), sent.Minute(), sent.Second(), 0, time.UTC)
	case k < 96: // a clock days off
		sent = sent.Add(time.Duration(r.IntN(61)-30) * 24 * time.Hour).Add(time.Duration(r.IntN(3600)) * time.Second)
	default: // wildly off
		sent = sent.AddDate(pickOne(r, []int{-27, -10, -1, 1, 12}), 0, 0)
	}
	var v string
	switch c.dateStyle {
	case 0:
		v = sent.Format("Mon, 2 Jan 2006 15:04:05 -0700")
	case 1:
		v = sent.Format("Mon, 02 Jan 2006 15:04:05 -0700 (MST)")
	case 2:
		v = sent.Format("2 Jan 2006 15:04:05 -0700")
	case 3:
		v = sent.UTC().Format("Mon, 2 Jan 2006 15:04:05 -0700")
	default:
		v = sent.UTC().Format("Mon, 2 Jan 2006 15:04:05") + " GMT"
	}
	return v, sent.Unix() - b.at.Unix()
}

func (b *builder) messageID() string {
	r, c := b.r, b.c
	host := c.fromDomain
	if b.s.rdns != "" && r.IntN(2) == 0 {
		host = b.s.rdns
	}
	switch c.senderKind {
	case "webmail":
		return "CA" + randFrom(r, base62+"+_-", 42) + "@mail.gmail.com"
	case "exchange":
		short := strings.SplitN(c.orgDomain.Name, ".", 2)[0]
		return randFrom(r, base62[:36], 40) + "@EXCH01." + short + ".local"
	}
	style := c.msgIDStyle
	if strings.HasPrefix(b.t.XMailer, "Microsoft Outlook Express") {
		style = 2
	} else if style == 2 {
		style = 0
	}
	switch style {
	case 0:
		return randFrom(r, "0123456789abcdef", 32) + "@" + host
	case 1:
		return fmt.Sprintf("%s.%d.qmail@%s", b.at.UTC().Format("20060102150405"), r.IntN(100000), host)
	case 2: // Outlook Express: the last field is the sender's LAN address in hex
		lan := netip.AddrFrom4([4]byte{192, 168, byte(r.IntN(3)), byte(2 + r.IntN(250))}).As4()
		return fmt.Sprintf("%012x$%08x$%02x%02x%02x%02x@%s", r.Uint64()>>16, r.Uint32(), lan[3], lan[2], lan[1], lan[0],
			pickOne(r, []string{"PC", "HOME", "OFFICE", "USER"})+fmt.Sprint(r.IntN(1000)))
	case 3:
		return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x@%s", r.Uint32(), r.IntN(0x10000), r.IntN(0x10000), r.IntN(0x10000), r.Uint64()>>16, host)
	case 4:
		return ""
	}
	return fmt.Sprintf("%X.%X@[192.168.%d.%d]", r.Uint32(), r.IntN(0x10000), r.IntN(3), 2+r.IntN(250))
}

// traceHeaders writes the delivery headers and the Received chain, newest first:
// the trap's own hosts, the hop naming the true sender, then what lies below.
func (b *builder) traceHeaders() {
	r, c, tr := b.r, b.c, b.trap
	mx := tr.mx.Name
	t := b.at
	step := func(maxSeconds int) time.Time {
		t = t.Add(-time.Duration(1+r.IntN(maxSeconds)) * time.Second)
		return t.In(tr.loc)
	}
	add := func(name, value string) { b.trace = append(b.trace, header{name, value}) }

	switch tr.form {
	case Exim:
		add("Return-path", "<"+b.env+">")
		add("Envelope-to", b.rcpt)
		add("Delivery-date", b.at.In(tr.loc).Format(dateNumericTZ))
		add("Delivered-To", b.rcpt)
	default:
		add("Return-Path", "<"+b.env+">")
		if r.IntN(2) == 0 {
			add("X-Original-To", b.rcpt)
		}
		add("Delivered-To", b.rcpt)
	}
	// The mailbox host's hop, above the MX.
	switch tr.form {
	case Postfix:
		b.addHop(hop{form: Postfix, proto: "LMTP", helo: mx, rdns: mx, ip: tr.mxInner, by: tr.store, rcpt: b.rcpt,
			id: postfixID(r), at: b.at.In(tr.loc)}, RoleTrap)
	case Exim:
		b.addHop(hop{form: Exchange, helo: mx, ip: tr.mxInner, by: tr.store, byIP: tr.storeIP, id: exchangeBuild(r),
			at: b.at.In(tr.loc)}, RoleTrap)
	}
	if r.IntN(2) == 0 {
		spf := pickOne(r, []string{"softfail", "neutral", "none", "fail"})
		add("Authentication-Results", fmt.Sprintf("%s;\n\tspf=%s smtp.mailfrom=%s smtp.helo=%s;\n\tdkim=none (no signatures found);\n\tdmarc=%s header.from=%s",
			mx, spf, b.env, b.s.helo, pickOne(r, []string{"none", "fail"}), c.fromDomain))
	}

	writerForm, writerName := tr.form, mx
	switch weighted(r, 6, 2, 2) {
	case 1: // through an internal hop: a content filter or an edge host
		if tr.form == Postfix {
			b.addHop(hop{form: Postfix, proto: "ESMTP", helo: "localhost", rdns: "localhost", ip: netip.MustParseAddr("127.0.0.1"),
				by: mx, rcpt: b.rcpt, id: postfixID(r), at: step(2)}, RoleTrap)
			score := 5 + r.Float64()*20
			add("X-Virus-Scanned", "amavisd-new at "+tr.mx.Trap)
			add("X-Spam-Flag", "YES")
			add("X-Spam-Score", fmt.Sprintf("%.3f", score))
			add("X-Spam-Level", strings.Repeat("*", int(score)))
			add("X-Spam-Status", fold(13, fmt.Sprintf("Yes, score=%.3f tagged_above=-999 required=5 tests=[%s] autolearn=no autolearn_force=no", score,
				strings.Join(pickSome(r, []string{"BAYES_99", "RDNS_NONE", "HTML_MESSAGE", "URIBL_BLACK", "URIBL_DBL_SPAM", "FREEMAIL_FROM", "MISSING_MID", "DATE_IN_PAST_96_XX", "SPF_SOFTFAIL", "HELO_DYNAMIC_IPADDR", "RCVD_IN_SBL", "MIME_HTML_ONLY"}, 3+r.IntN(4)), ", "))))
			b.addHop(hop{form: Amavis, helo: mx, ip: netip.MustParseAddr("127.0.0.1"), by: "localhost", extra: mx,
				id: amavisID(r), rcpt: b.rcpt, at: step(3)}, RoleTrap)
		} else {
			b.addHop(hop{form: tr.form, proto: "ESMTP", helo: tr.edge, rdns: tr.edge, ip: tr.edgeIP, by: mx, env: b.env,
				rcpt: b.rcpt, id: idFor(r, tr.form, t), at: step(2)}, RoleTrap)
			writerForm, writerName = Postfix, tr.edge
		}
	case 2: // through the trap's trusted relay (backup MX)
		b.addHop(hop{form: tr.form, proto: "ESMTP", helo: tr.relay, rdns: tr.relay, ip: tr.relayIP, by: mx, env: b.env,
			rcpt: b.rcpt, tls: true, id: idFor(r, tr.form, t), at: step(3)}, RoleTrap)
		writerForm, writerName = tr.relayMTA, tr.relay
	}
	if r.IntN(3) == 0 {
		add("Received-SPF", fold(12, fmt.Sprintf("Softfail (%s: domain of transitioning %s does not designate %s as permitted sender) client-ip=%s; envelope-from=%s; helo=%s;",
			writerName, b.env, b.s.ip, b.s.ip, b.env, b.s.helo)))
	}

	// The hop whose from-clause holds the true sender.
	sh := hop{form: writerForm, by: writerName, helo: b.s.helo, rdns: b.s.rdns, ip: b.s.ip, style: b.s.style, env: b.env,
		rcpt: b.rcpt, tls: r.IntN(10) < 4, proto: "ESMTP", at: step(20)}
	if r.IntN(5) == 0 {
		sh.proto = "SMTP"
	}
	if r.IntN(5) == 0 {
		sh.fold = "\n        "
	}
	if writerForm == Exim && r.IntN(8) == 0 {
		sh.ident = pickOne(r, []string{"root", "nobody", "www-data", "admin"})
	}
	if writerForm == Sendmail && sh.rdns != "" && r.IntN(4) == 0 {
		sh.extra = "forged"
	}
	sh.id = idFor(r, writerForm, t)
	b.t.SenderHop = len(b.t.Hops)
	b.addHop(sh, RoleSender)

	// Below: what the sender's side wrote, genuine or not.
	earlier := func(maxSeconds int) time.Time {
		t = t.Add(-time.Duration(1+r.IntN(maxSeconds)) * time.Second)
		return t.In(c.zone)
	}
	switch c.senderKind {
	case "webmail":
		pdt := time.FixedZone("PDT", -7*3600)
		b.addHop(hop{form: Gmail, noIP: true, by: b.s.rdns, id: fmt.Sprintf("%sso%d%s.%d", randLower(r, 2), 1000000+r.IntN(9000000), randLower(r, 3), r.IntN(200)),
			at: earlier(2).In(pdt)}, RoleUpstream)
		add("X-Received", fmt.Sprintf("by %s with SMTP id %s;\n        %s", gmailInternalBy(r), gmailInternalID(r), earlier(2).In(pdt).Format(dateGmail)))
		b.addHop(hop{form: Gmail, noIP: true, by: gmailInternalBy(r), at: earlier(30).In(pdt)}, RoleUpstream)
	case "exchange":
		short := strings.SplitN(c.orgDomain.Name, ".", 2)[0]
		edge := fmt.Sprintf("EXCH01.%s.local", short)
		inner := fmt.Sprintf("EXCH0%d.%s.local", 2+r.IntN(3), short)
		edgeIP := netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), 5})
		innerIP := netip.AddrFrom4([4]byte{10, edgeIP.As4()[1], edgeIP.As4()[2], 6})
		b.addHop(hop{form: Exchange, helo: inner, ip: innerIP, by: edge, byIP: edgeIP, id: exchangeBuild(r),
			extra: pickOne(r, []string{"", "frontend"}), at: earlier(3)}, RoleUpstream)
		ll := netip.AddrFrom16([16]byte{0xfe, 0x80, 10: byte(r.IntN(256)), 11: byte(r.IntN(256)), 14: byte(r.IntN(256)), 15: byte(r.IntN(256))}).WithZone(fmt.Sprint(10 + r.IntN(20)))
		b.addHop(hop{form: Exchange, helo: inner, ip: ll, by: inner, byIP: ll, id: mapiBuild(r), extra: "mapi", at: earlier(5)}, RoleUpstream)
	case "relay":
		if r.IntN(2) == 0 {
			bs := b.bot(r.IntN(len(b.g.w.Networks)), r.IntN(7))
			form := pickOne(r, []string{Postfix, Sendmail})
			b.addHop(hop{form: form, by: b.s.rdns, helo: bs.helo, rdns: bs.rdns, ip: bs.ip, rcpt: b.rcpt, proto: "ESMTP",
				id: idFor(r, form, t), at: earlier(60)}, RoleUpstream)
		} else {
			b.addHop(hop{form: Postfix, noIP: true, by: b.s.rdns, extra: ", from userid 33", id: postfixID(r), at: earlier(5)}, RoleUpstream)
		}
	case "snowshoe":
		if r.IntN(3) == 0 {
			b.addHop(hop{form: Postfix, noIP: true, by: b.s.rdns, extra: ", from userid 1001", id: postfixID(r), at: earlier(5)}, RoleUpstream)
		}
	}
	if (c.senderKind == "bot" || c.senderKind == "snowshoe") && r.Float64() < c.forgeShare {
		for range 1 + r.IntN(3) {
			at := earlier(7200)
			if r.IntN(6) == 0 { // forgers get the clock wrong
				at = b.at.Add(time.Duration(r.IntN(48)) * time.Hour).In(c.zone)
			}
			b.addForged(at)
		}
	}
}

func (b *builder) addHop(h hop, role string) {
	b.trace = append(b.trace, header{"Received", h.write()})
	hp := Hop{By: h.by, Form: h.form, Role: role, Forged: role == RoleForged}
	if !h.noIP {
		hp.FromIP = h.ip
	}
	b.t.Hops = append(b.t.Hops, hp)
}

// addForged adds a hop the spammer made up: any form, any address, sometimes
// claiming to be the trap's own MX or a big provider.
func (b *builder) addForged(at time.Time) {
	r, c, g := b.r, b.c, b.g
	form := pickOne(r, []string{Postfix, Exim, Sendmail, Gmail, Exchange})
	h := hop{form: form, at: at, rcpt: b.rcpt, env: b.env, proto: "ESMTP"}
	switch r.IntN(5) {
	case 0, 1:
		h.ip = pickOne(r, []netip.Addr{
			netip.AddrFrom4([4]byte{192, 168, byte(r.IntN(256)), byte(1 + r.IntN(254))}),
			netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))}),
			netip.AddrFrom4([4]byte{172, byte(16 + r.IntN(16)), byte(r.IntN(256)), byte(1 + r.IntN(254))}),
		})
	case 2, 3:
		h.ip = pickOne(r, pickOne(r, g.w.Networks).Pool)
	default:
		h.ip = pickOne(r, g.hosting)
	}
	h.helo = pickOne(r, []string{"mail." + g.madeUpDomain(r), "[" + h.ip.String() + "]", randLower(r, 7), "smtp." + c.fromDomain})
	if r.IntN(2) == 0 {
		h.rdns = "mail" + fmt.Sprint(r.IntN(20)) + "." + g.madeUpDomain(r)
	}
	switch {
	case form == Gmail:
		h.by = "mx.google.com"
		if h.rdns == "" {
			h.rdns = "mail." + g.madeUpDomain(r)
		}
	case form == Exchange:
		h.helo = fmt.Sprintf("%s%02d.%s.local", pickOne(r, []string{"EXCH", "MAIL", "SRV"}), r.IntN(10), randLower(r, 5))
		h.by = fmt.Sprintf("EXCH%02d.%s.local", r.IntN(10), randLower(r, 5))
		h.byIP = netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
	case r.IntN(8) == 0:
		h.by = b.trap.mx.Name
	case r.IntN(2) == 0:
		h.by = "mail." + c.fromDomain
	default:
		h.by = "smtp." + g.madeUpDomain(r)
	}
	h.id = idFor(r, form, at)
	b.addHop(h, RoleForged)
}

func idFor(r *rand.Rand, form string, at time.Time) string {
	switch form {
	case Exim:
		return eximID(r)
	case Sendmail:
		return sendmailID(r, at)
	case Exchange:
		return exchangeBuild(r)
	case Gmail:
		return gmailSMTPID(r, at)
	}
	return postfixID(r)
}

// pickSome returns n distinct items of xs in their order.
func pickSome(r *rand.Rand, xs []string, n int) []string {
	idx := r.Perm(len(xs))[:min(n, len(xs))]
	slices.Sort(idx)
	out := make([]string, len(idx))
	for i, k := range idx {
		out[i] = xs[k]
	}
	return out
}
