package spam

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/tip-project/tip/lab/world"
)

// builder assembles one message and its truth.
type builder struct {
	g    *Generator
	r    *rand.Rand
	c    *campaign
	at   time.Time
	trap *trapInfra
	rcpt string
	loc  string // the trap address' local part
	fill func(string) string
	t    Truth

	s        sender
	env      string
	fromAddr string
	subject  string // decoded
	trace    []header
	spam     []header
	root     *part
	attParts []*part // parallel to t.Attachments
	b64Text  []*part // base64 text bodies
}

type sender struct {
	ip    netip.Addr
	rdns  string
	helo  string
	style ipStyle
}

// link is a URL the spammer writes, in normal form.
type link struct {
	scheme, host, path string
	dom                *world.Domain
}

func (l link) String() string { return l.scheme + "://" + l.host + l.path }

func (g *Generator) message(h int64, i int, at time.Time) Message {
	r := g.w.Rand(fmt.Sprintf("%smsg/%d/%d", g.stream, h, i))
	name := g.fileName(h, i, at)
	b := &builder{g: g, r: r, at: at}
	b.c = g.pickCampaign(r, name, at)
	b.t = Truth{Name: name, Received: at, Campaign: b.c.id, Theme: b.c.th.name, Charset: b.c.charset,
		URLs: []URL{}, Hops: []Hop{}}
	raw := b.build()
	return Message{Name: name, Time: at, Raw: raw, Truth: b.t}
}

// pickCampaign chooses one of the campaigns sending at t, or makes a one-off.
func (g *Generator) pickCampaign(r *rand.Rand, name string, at time.Time) *campaign {
	active := g.activeAt(at)
	if len(active) > 0 && r.Float64() < 0.8 {
		total := 0.0
		for _, c := range active {
			total += c.weight
		}
		x := r.Float64() * total
		for _, c := range active {
			if x < c.weight {
				return c
			}
			x -= c.weight
		}
		return active[len(active)-1]
	}
	id := "solo-" + strings.TrimSuffix(name, ".txt")
	return g.newCampaign(id, g.w.Rand(g.stream+"solo/"+name), at, at)
}

func (b *builder) build() []byte {
	g, r, c := b.g, b.r, b.c
	b.trap = g.traps[r.IntN(len(g.traps))]
	b.loc = pickOne(r, b.trap.users)
	b.rcpt = b.loc + "@" + b.trap.mx.Trap
	b.t.Trap, b.t.TrapMX = b.rcpt, b.trap.mx.Name

	name := firstNameOf(b.loc)
	if name == "" {
		name = strings.ToUpper(b.loc[:1]) + b.loc[1:]
	}
	num := fmt.Sprint(10000 + r.IntN(990000))
	code := randFrom(r, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 8)
	date := b.at.Add(time.Duration(2+r.IntN(4)) * 24 * time.Hour)
	dateText := map[string]string{"en": date.Format("January 2, 2006"), "de": date.Format("02.01.2006"),
		"fr": date.Format("02/01/2006"), "es": date.Format("02/01/2006"), "ru": date.Format("02.01.2006"),
		"zh": date.Format("2006-01-02"), "ja": date.Format("2006-01-02")}[c.th.lang]
	rep := strings.NewReplacer("{name}", name, "{num}", num, "{code}", code, "{date}", dateText)
	b.fill = func(s string) string { return c.fillFixed(rep.Replace(s)) }

	b.chooseSender()
	b.addresses()
	b.root = b.body()
	b.spamHeaders()
	b.traceHeaders()

	hdrs := append(b.trace, b.spam...)
	b.root.headers = append(hdrs, b.root.headers...)
	b.t.ReceivedCount = len(b.t.Hops)

	truncate := false
	if kind := b.defectKind(); kind != "" {
		truncate = b.malform(kind)
	}
	var buf bytes.Buffer
	b.root.render(&buf)
	raw := buf.Bytes()
	if c.crlf {
		raw = bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	}
	if truncate {
		raw = b.truncate(raw)
	}
	return raw
}

// chooseSender picks the host that handed the message to the trap's side.
func (b *builder) chooseSender() {
	g, r, c := b.g, b.r, b.c
	var s sender
	switch c.senderKind {
	case "snowshoe":
		i := r.IntN(len(c.hosts))
		s.ip, s.rdns = c.hosts[i], fmt.Sprintf("mail%d.%s", i+1, c.hostDomain)
		s.helo = s.rdns
	case "webmail":
		pool := g.gmailIPs
		if len(pool) == 0 {
			pool = g.hosting
		}
		s.ip = pickOne(r, pool)
		s.rdns = fmt.Sprintf("mail-%s-f%d.google.com", pickOne(r, []string{"wr1", "ej1", "lf1", "pl1", "qk1", "yb1", "oi1"}), 41+r.IntN(150))
		s.helo = s.rdns
	case "exchange":
		s.ip, s.rdns = c.hosts[0], "mail."+c.orgDomain.Name
		s.helo = pickOne(r, []string{s.rdns, "EXCH01." + c.orgDomain.Name})
	case "relay":
		i := r.IntN(len(c.hosts))
		s.ip, s.rdns = c.hosts[i], fmt.Sprintf("web%d.%s", i+1, c.hostDomain)
		s.helo = s.rdns
	default:
		s = b.bot(c.network, c.heloStyle)
		if s.ip.Is4() && r.Float64() < c.v6Share {
			if a, ok := g.w.ASNOf(s.ip); ok && len(a.V6) > 0 {
				s.ip, s.rdns = v6Of(a, s.ip), ""
				s.helo = b.helo(s, c.heloStyle)
			}
		} else if r.Float64() < c.mappedShare {
			s.style = mappedV6
		}
	}
	b.s = s
	b.t.SenderIP, b.t.SenderKind, b.t.HELO = s.ip, c.senderKind, s.helo
}

// bot is an infected host of a botnet, with its PTR name (if any) and HELO.
func (b *builder) bot(network, heloStyle int) sender {
	r := b.r
	ip := pickOne(r, b.g.w.Networks[network].Pool)
	s := sender{ip: ip}
	if r.IntN(10) < 7 {
		if a, ok := b.g.w.ASNOf(ip); ok {
			s.rdns = botRDNS(r, a, ip)
		}
	}
	s.helo = b.helo(s, heloStyle)
	return s
}

func (b *builder) helo(s sender, style int) string {
	r := b.r
	literal := "[" + s.ip.String() + "]"
	if s.ip.Is6() {
		literal = "[IPv6:" + s.ip.String() + "]"
	}
	switch style {
	case 0:
		if s.rdns != "" {
			return s.rdns
		}
		return literal
	case 1:
		return literal
	case 2:
		return pickOne(r, []string{"User", "ylmf-pc", "localhost", "WIN-" + randFrom(r, base62[:36], 11), "DESKTOP-" + randFrom(r, base62[:36], 7)})
	case 3:
		return "mail." + b.c.fromDomain
	case 4:
		return randLower(r, 6+r.IntN(5)) + "." + pickOne(r, fakeTLDs)
	case 5:
		return b.c.fromDomain
	}
	if s.ip.Is4() {
		return s.ip.String()
	}
	return literal
}

func botRDNS(r *rand.Rand, a world.ASN, ip netip.Addr) string {
	o := ip.As4()
	words := strings.Fields(a.Name)
	num := strings.TrimPrefix(words[0], "LAB-RES-")
	tld := strings.ToLower(a.Country)
	if tld == "us" {
		tld = "net"
	}
	isp := strings.ToLower(words[len(words)-1]) + num + "." + tld
	switch r.IntN(6) {
	case 0:
		return fmt.Sprintf("host-%d-%d-%d-%d.%s", o[0], o[1], o[2], o[3], isp)
	case 1:
		return fmt.Sprintf("%d-%d-%d-%d.dyn.%s", o[0], o[1], o[2], o[3], isp)
	case 2:
		return fmt.Sprintf("dsl-%d-%d-%d-%d.pool.%s", o[0], o[1], o[2], o[3], isp)
	case 3:
		return fmt.Sprintf("ip%d-%d-%d-%d.%s", o[3], o[2], o[1], o[0], isp)
	case 4:
		return fmt.Sprintf("cpe-%d-%d-%d-%d.static.%s", o[0], o[1], o[2], o[3], isp)
	}
	return fmt.Sprintf("%d.%d.%d.%d.broadband.%s", o[3], o[2], o[1], o[0], isp)
}

// v6Of is the IPv6 address the lab gives an IPv4 host: its ASN's /32 with the
// IPv4 address in the last 32 bits (as the world does for AAAA records).
func v6Of(a world.ASN, ip netip.Addr) netip.Addr {
	b := a.V6[0].Addr().As16()
	v4 := ip.As4()
	copy(b[12:], v4[:])
	return netip.AddrFrom16(b)
}

// addresses sets the From, envelope sender and Reply-To.
func (b *builder) addresses() {
	r, c := b.r, b.c
	local := c.localPart
	switch c.senderKind {
	case "webmail":
		local = strings.ReplaceAll(local, ".", "") + fmt.Sprint(10+r.IntN(9000))
	case "bot", "snowshoe":
		if r.IntN(2) == 0 {
			local += fmt.Sprint(r.IntN(1000))
		}
	}
	b.fromAddr = local + "@" + c.fromDomain
	b.env = b.fromAddr
	if c.envDiffers {
		switch r.IntN(3) {
		case 0:
			b.env = fmt.Sprintf("bounce-%d-%s@%s", r.IntN(100000), randLower(r, 6), c.fromDomain)
		case 1:
			b.env = randLower(r, 5+r.IntN(5)) + "@" + b.g.madeUpDomain(r)
		default:
			b.env = strings.ReplaceAll(b.loc, ".", "") + "=" + b.trap.mx.Trap + "@" + c.fromDomain
		}
	}
	if r.IntN(25) == 0 && c.senderKind != "webmail" {
		b.env = ""
	}
	b.t.EnvelopeFrom, b.t.From = b.env, b.fromAddr
	if r.Float64() < c.replyShare {
		b.t.ReplyTo = fmt.Sprintf("%s%d@%s", strings.ReplaceAll(c.localPart, ".", ""), r.IntN(10000), c.replyDomain)
	}
}

// newLink makes a link to d in the campaign's style.
func (b *builder) newLink(d *world.Domain, purpose string) link {
	r, c := b.r, b.c
	l := link{scheme: "http", host: d.Name, dom: d}
	if c.https {
		l.scheme = "https"
	}
	if strings.Count(d.Name, ".") == 1 { // no subdomain in the zone name yet
		switch c.hostStyle {
		case 1:
			l.host = "www." + d.Name
		case 2:
			l.host = randLower(r, 4) + fmt.Sprint(r.IntN(100)) + "." + d.Name
		}
	}
	token := randFrom(r, base62, 10)
	switch purpose {
	case "unsub":
		l.path = "/unsubscribe?e=" + hex.EncodeToString([]byte(b.rcpt))[:16] + "&c=" + fmt.Sprint(r.IntN(10000))
		return l
	case "pixel":
		l.path = "/px/" + token + ".gif"
		return l
	case "attach":
		l.path = "/doc/" + token + "/" + pickOne(r, []string{"view.php", "download", "invoice.exe", "index.html"})
		return l
	}
	switch c.pathStyle {
	case 0:
		l.path = "/" + token
	case 1:
		l.path = fmt.Sprintf("/%s/%s.php?id=%d&ref=%s", pickOne(r, []string{"promo", "go", "track", "secure"}), randLower(r, 5), r.IntN(100000), randFrom(r, base62, 6))
	case 2:
		l.path = "/?u=" + base64.RawURLEncoding.EncodeToString([]byte(b.rcpt))
	case 3:
		l.path = "/" + randLower(r, 6) + "/index.html"
	case 4:
		l.path = fmt.Sprintf("/%s/login/%s/", b.c.th.lang, token)
	default:
		l.path = fmt.Sprintf("/click?c=%08x&r=%d&l=%s", b.c.token, r.IntN(1000000), b.c.th.lang)
	}
	return l
}

// record adds one occurrence of a link to the truth.
func (b *builder) record(l link, raw, where string, obfuscated bool) {
	u := URL{URL: l.String(), Host: l.host, Domain: registrable(l.host), LabDomain: l.dom.Name, Class: l.dom.Class,
		Where: where, Obfuscated: obfuscated}
	if raw != u.URL {
		u.Raw = raw
	}
	b.t.URLs = append(b.t.URLs, u)
}

// registrable is the registrable domain of a lab host: every lab suffix is a
// single label, so it is the last two labels.
func registrable(host string) string {
	labels := strings.Split(host, ".")
	if len(labels) <= 2 {
		return host
	}
	return strings.Join(labels[len(labels)-2:], ".")
}

// textURL writes a link into plain text, sometimes defanged or shouting.
func (b *builder) textURL(l link) (string, bool) {
	r := b.r
	switch {
	case r.Float64() < b.c.obfuscate:
		i := strings.LastIndex(l.host, ".")
		return strings.Replace(l.scheme, "tt", "xx", 1) + "://" + l.host[:i] + "[.]" + l.host[i+1:] + l.path, true
	case r.IntN(12) == 0:
		return strings.ToUpper(l.scheme+"://"+l.host) + l.path, false
	case r.IntN(12) == 0 && l.scheme == "http" && strings.HasPrefix(l.host, "www."):
		return l.host + l.path, false
	}
	return l.String(), false
}

// hrefURL writes a link as an HTML attribute value.
func (b *builder) hrefURL(l link) (string, bool) {
	s := l.String()
	if b.r.IntN(5) != 0 {
		s = strings.ReplaceAll(s, "&", "&amp;")
	}
	if b.c.entities {
		var pre strings.Builder
		for _, ch := range l.scheme + ":" {
			fmt.Fprintf(&pre, "&#%d;", ch)
		}
		return pre.String() + strings.TrimPrefix(s, l.scheme+":"), true
	}
	return s, false
}

// body builds the MIME tree and records every URL and attachment.
func (b *builder) body() *part {
	c, r := b.c, b.r
	links := []link{b.newLink(c.primary[0], "main")}
	if len(c.primary) > 1 {
		links = append(links, b.newLink(c.primary[1], "main"))
	} else if r.IntN(2) == 0 {
		links = append(links, b.newLink(c.primary[0], "main"))
	}
	var unsub, pixel, logo *link
	if c.unsub != nil {
		l := b.newLink(c.unsub, "unsub")
		unsub = &l
	}
	if c.pixel != nil {
		l := b.newLink(c.pixel, "pixel")
		pixel = &l
	}
	if c.logo != nil {
		l := link{scheme: "https", host: "www." + c.logo.Name, path: "/images/branding/logo.png", dom: c.logo}
		logo = &l
	}
	if c.listUnsub && unsub != nil {
		b.record(*unsub, unsub.String(), "header:List-Unsubscribe", false)
		b.spam = append(b.spam, header{"List-Unsubscribe", fold(16, fmt.Sprintf("<%s>, <mailto:unsubscribe-%d@%s>", unsub, r.IntN(100000), c.fromDomain))})
	}

	text := func() *part { return b.textPart(links, unsub) }
	htmlPart := func(cid string) *part { return b.htmlPart(links, unsub, pixel, logo, cid) }
	var bodyOf func(layout string) *part
	bodyOf = func(layout string) *part {
		switch layout {
		case "plain":
			return text()
		case "html":
			return htmlPart("")
		case "alt":
			return b.multipart("alternative", text(), htmlPart(""))
		}
		cid := fmt.Sprintf("image001.gif@%08X.%08X", r.Uint32(), r.Uint32())
		rel := b.multipart("related", htmlPart(cid), b.attachPart("image001.gif", "image/gif", "inline", makeGIF(r), cid))
		return b.multipart("alternative", text(), rel)
	}
	if c.layout != "mixed" {
		return bodyOf(c.layout)
	}
	main := bodyOf(c.bodyLayout)
	parts := []*part{main}
	if c.attach != "" {
		parts = append(parts, b.attachment(c.attach))
	}
	return b.multipart("mixed", parts...)
}

// paragraphs are the copy with its links: text pieces around link slots.
func (b *builder) copyLines() []string {
	c := b.c
	lines := []string{b.fill(c.greeting)}
	for _, p := range c.paras {
		lines = append(lines, b.fill(p))
	}
	return append(lines, b.fill(c.closing))
}

func (b *builder) textPart(links []link, unsub *link) *part {
	c := b.c
	var sb strings.Builder
	k := 0
	for i, line := range b.copyLines() {
		if i > 0 {
			sb.WriteString("\n\n")
		}
		pieces := strings.Split(line, "{url}")
		for j, p := range pieces {
			sb.WriteString(p)
			if j < len(pieces)-1 {
				l := links[min(k, len(links)-1)]
				k++
				raw, obf := b.textURL(l)
				b.record(l, raw, "text/plain", obf)
				sb.WriteString(raw)
			}
		}
	}
	if unsub != nil {
		raw, obf := b.textURL(*unsub)
		b.record(*unsub, raw, "text/plain", obf)
		sb.WriteString("\n\n--\nTo unsubscribe: " + raw)
	}
	body := sb.String()
	if c.th.lang != "zh" && c.th.lang != "ja" {
		body = wrapText(body, 74)
	}
	return b.leaf("text/plain", mustEncode(c.charset, body+"\n"), c.textCTE)
}

func (b *builder) htmlPart(links []link, unsub, pixel, logo *link, cid string) *part {
	c, r := b.c, b.r
	var lines []string
	lines = append(lines, "<html>", "<head>",
		fmt.Sprintf(`<meta http-equiv="Content-Type" content="text/html; charset=%s">`, c.subjLabel), "</head>",
		`<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px">`)
	if logo != nil {
		b.record(*logo, logo.String(), "text/html", false)
		lines = append(lines, fmt.Sprintf(`<img src="%s" alt="%s" width="120">`, logo, html.EscapeString(c.brand)))
	}
	if cid != "" {
		lines = append(lines, fmt.Sprintf(`<img src="cid:%s" width="1" height="1" alt="">`, cid))
	}
	k := 0
	for _, line := range b.copyLines() {
		var sb strings.Builder
		pieces := strings.Split(line, "{url}")
		for j, p := range pieces {
			sb.WriteString(strings.ReplaceAll(html.EscapeString(p), "\n", "<br>\n"))
			if j < len(pieces)-1 {
				l := links[min(k, len(links)-1)]
				k++
				raw, obf := b.hrefURL(l)
				b.record(l, raw, "text/html", obf)
				anchor := html.EscapeString(b.fill(c.linkText))
				if c.th.phish && c.brandDomain != nil {
					shown := link{scheme: "https", host: "www." + c.brandDomain.Name, path: "/account/signin", dom: c.brandDomain}
					b.record(shown, shown.String(), "text/html", false)
					anchor = shown.String()
				}
				fmt.Fprintf(&sb, `<a href="%s" style="color:#0645ad">%s</a>`, raw, anchor)
			}
		}
		lines = append(lines, "<p>"+sb.String()+"</p>")
	}
	if unsub != nil {
		raw, obf := b.hrefURL(*unsub)
		b.record(*unsub, raw, "text/html", obf)
		lines = append(lines, fmt.Sprintf(`<p style="font-size:10px;color:#999">If you no longer wish to receive these emails, <a href="%s">unsubscribe</a>.</p>`, raw))
	}
	if pixel != nil {
		b.record(*pixel, pixel.String(), "text/html", false)
		lines = append(lines, fmt.Sprintf(`<img src="%s" width="1" height="1" border="0">`, pixel))
	}
	if c.hidden {
		words := make([]string, 12+r.IntN(20))
		for i := range words {
			words[i] = pickOne(r, c.th.hidden)
		}
		lines = append(lines, `<div style="display:none">`+strings.Join(words, " ")+`</div>`)
	}
	lines = append(lines, "</body>", "</html>")
	sep := "\n"
	cte := c.htmlCTE
	if c.htmlOneLine {
		sep = ""
		if cte == "7bit" {
			cte = "quoted-printable"
		}
	}
	return b.leaf("text/html", mustEncode(c.charset, strings.Join(lines, sep)+"\n"), cte)
}

// leaf makes a text part in the campaign's charset.
func (b *builder) leaf(mediaType string, data []byte, cte string) *part {
	c, r := b.c, b.r
	p := &part{}
	var ct string
	switch r.IntN(4) {
	case 0:
		ct = fmt.Sprintf("%s; charset=%s", mediaType, c.subjLabel)
	case 1:
		ct = fmt.Sprintf("%s;\n\tcharset=\"%s\"", mediaType, c.subjLabel)
	default:
		ct = fmt.Sprintf("%s; charset=\"%s\"", mediaType, c.subjLabel)
	}
	p.set("Content-Type", ct)
	p.set("Content-Transfer-Encoding", cte)
	p.body = encodeBody(data, cte, c.b64Width)
	if cte == "base64" {
		b.b64Text = append(b.b64Text, p)
	}
	return p
}

func (b *builder) multipart(sub string, children ...*part) *part {
	p := &part{children: children, boundary: b.newBoundary()}
	if b.r.IntN(2) == 0 {
		p.set("Content-Type", fmt.Sprintf("multipart/%s;\n\tboundary=\"%s\"", sub, p.boundary))
	} else {
		p.set("Content-Type", fmt.Sprintf("multipart/%s; boundary=\"%s\"", sub, p.boundary))
	}
	if b.c.boundary <= 1 {
		p.preamble = "This is a multi-part message in MIME format."
	}
	return p
}

func (b *builder) newBoundary() string {
	r := b.r
	switch b.c.boundary {
	case 0:
		return fmt.Sprintf("----=_NextPart_%03d_%04X_%08X.%08X", r.IntN(3), r.IntN(0x10000), r.Uint32(), r.Uint32())
	case 1:
		return "------------" + randFrom(r, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", 24)
	case 2:
		return "b1_" + randFrom(r, "0123456789abcdef", 32)
	case 3:
		return fmt.Sprintf("Apple-Mail=_%08X-%04X-%04X-%04X-%012X", r.Uint32(), r.IntN(0x10000), r.IntN(0x10000), r.IntN(0x10000), r.Uint64()>>16)
	}
	return fmt.Sprintf("----=_Part_%d_%d.%d", r.IntN(100000), r.IntN(1000000000), b.at.UnixMilli())
}

// attachPart makes a base64 attachment and records it.
func (b *builder) attachPart(name, mediaType, disposition string, data []byte, cid string) *part {
	r, c := b.r, b.c
	p := &part{}
	nameParam := `name="` + name + `"`
	fileParam := `filename="` + name + `"`
	if !isASCII(name) {
		if c.rfc2231 {
			fileParam = "filename*=UTF-8''" + percentEncode(name)
		} else {
			fileParam = `filename="` + strings.Join(encodedWords(name, "utf-8", "UTF-8", 'B'), " ") + `"`
		}
		nameParam = `name="` + strings.Join(encodedWords(name, "utf-8", "UTF-8", 'B'), " ") + `"`
	}
	p.set("Content-Type", fmt.Sprintf("%s;\n\t%s", mediaType, nameParam))
	p.set("Content-Transfer-Encoding", "base64")
	if cid != "" {
		p.set("Content-ID", "<"+cid+">")
	}
	if disposition != "" && (cid == "" || r.IntN(2) == 0) {
		p.set("Content-Disposition", fmt.Sprintf("%s;\n\t%s", disposition, fileParam))
	} else {
		disposition = "inline"
	}
	p.body = base64Lines(data, c.b64Width)
	sum := sha256.Sum256(data)
	b.t.Attachments = append(b.t.Attachments, Attachment{Name: name, ContentType: mediaType, Disposition: disposition,
		Size: len(data), SHA256: hex.EncodeToString(sum[:])})
	b.attParts = append(b.attParts, p)
	return p
}

func percentEncode(s string) string {
	var sb strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' {
			sb.WriteByte(c)
		} else {
			fmt.Fprintf(&sb, "%%%02X", c)
		}
	}
	return sb.String()
}

// attachment makes the campaign's attachment, with a link of its own inside.
func (b *builder) attachment(kind string) *part {
	r, c := b.r, b.c
	base := b.fill(c.fileBase)
	l := b.newLink(pickOne(r, c.primary), "attach")
	uri := l.String()
	mod := b.at.Add(-time.Duration(r.IntN(72*3600)) * time.Second)
	lines := []string{strings.ToUpper(strings.ReplaceAll(base, "_", " ")), "Amount due: " + fmt.Sprint(c.amount) + ".00",
		"Reference: " + randFrom(r, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 8), "View and pay online: " + uri}
	switch kind {
	case "pdf":
		name := base + ".pdf"
		mt := pickOne(r, []string{"application/pdf", "application/pdf", "application/octet-stream"})
		b.record(l, uri, "attachment:"+name, false)
		return b.attachPart(name, mt, "attachment", makePDF(lines, uri), "")
	case "doc": // an RTF document, named as Word names it
		name := base + pickOne(r, []string{".doc", ".rtf"})
		mt := pickOne(r, []string{"application/msword", "application/rtf", "application/octet-stream"})
		b.record(l, uri, "attachment:"+name, false)
		return b.attachPart(name, mt, "attachment", makeRTF(lines[:3], uri), "")
	case "html":
		name := base + pickOne(r, []string{".html", ".htm", ".shtml"})
		href := strings.ReplaceAll(uri, "&", "&amp;")
		b.record(l, href, "attachment:"+name, false)
		return b.attachPart(name, "text/html", "attachment", makeLoginPage(html.EscapeString(c.brand+" - "+strings.ReplaceAll(base, "_", " ")), b.rcpt, href), "")
	}
	zipName := base + ".zip"
	var entry zipEntry
	switch kind {
	case "zip-js":
		entry = zipEntry{name: base + pickOne(r, []string{".js", ".pdf.js", ".jse"}), data: makeDropper(r, uri)}
		b.record(l, uri, "attachment:"+zipName+"/"+entry.name, false)
	case "zip-txt":
		entry = zipEntry{name: "readme.txt", data: []byte(strings.Join(lines, "\r\n") + "\r\n")}
		b.record(l, uri, "attachment:"+zipName+"/"+entry.name, false)
	default:
		entry = zipEntry{name: base + pickOne(r, []string{".exe", ".scr", ".pdf.exe"}), data: makeExe(r)}
	}
	data := makeZip([]zipEntry{entry}, mod)
	mt := pickOne(r, []string{"application/zip", "application/x-zip-compressed", "application/octet-stream"})
	p := b.attachPart(zipName, mt, "attachment", data, "")
	sum := sha256.Sum256(entry.data)
	a := &b.t.Attachments[len(b.t.Attachments)-1]
	a.Members = []Member{{Name: entry.name, Size: len(entry.data), SHA256: hex.EncodeToString(sum[:])}}
	return p
}
