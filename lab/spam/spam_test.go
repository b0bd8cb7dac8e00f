package spam

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tip-project/tip/lab/world"
)

// Two lab days of spam from seed 1, shared by the tests that only read it.
var (
	sampleOnce sync.Once
	sampleGen  *Generator
	sampleMsgs []Message
)

func sample(t *testing.T) (*Generator, []Message) {
	t.Helper()
	sampleOnce.Do(func() {
		w := world.NewWorld(1)
		sampleGen = NewGenerator(w, Options{})
		sampleMsgs = sampleGen.Between(w.Start, w.Start.Add(48*time.Hour))
	})
	return sampleGen, sampleMsgs
}

func TestSameSeedSameBytes(t *testing.T) {
	w := world.NewWorld(7)
	from, to := w.Start.Add(30*time.Hour), w.Start.Add(36*time.Hour)
	a := NewGenerator(w, Options{}).Between(from, to)
	b := NewGenerator(world.NewWorld(7), Options{}).Between(from, to)
	if len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Fatalf("the same seed gave different spam (%d vs %d messages)", len(a), len(b))
	}
	c := NewGenerator(world.NewWorld(8), Options{}).Between(from, to)
	if len(c) > 0 && bytes.Equal(a[0].Raw, c[0].Raw) {
		t.Fatal("different seeds gave the same first message")
	}
}

// Windows compose: any split of a window yields the same messages, so the trap can
// deliver in steps and a late reader can start anywhere.
func TestWindowsCompose(t *testing.T) {
	w := world.NewWorld(3)
	g := NewGenerator(w, Options{PerDay: 900})
	a := w.Start.Add(5*time.Hour + 17*time.Minute + 3*time.Second)
	b := a.Add(7*time.Hour + 41*time.Minute + 500*time.Millisecond)
	c := b.Add(19 * time.Hour)
	whole := g.Between(a, c)
	parts := append(g.Between(a, b), g.Between(b, c)...)
	if len(whole) == 0 || !reflect.DeepEqual(whole, parts) {
		t.Fatalf("Between(a,c) has %d messages, Between(a,b)+Between(b,c) %d", len(whole), len(parts))
	}
	// A fresh generator asked only for the late window agrees.
	late := NewGenerator(world.NewWorld(3), Options{PerDay: 900}).Between(b, c)
	if !reflect.DeepEqual(late, g.Between(b, c)) {
		t.Fatal("a window generated alone differs")
	}
	if got := g.Between(w.Start.Add(-48*time.Hour), w.Start); len(got) != 0 {
		t.Fatalf("%d messages before the lab epoch", len(got))
	}
}

var nameRE = regexp.MustCompile(`^(\d+)\.(\d{7})_(\d+)\.txt$`)

func TestOrderAndNames(t *testing.T) {
	g, msgs := sample(t)
	seen := map[string]bool{}
	for i, m := range msgs {
		if i > 0 && m.Time.Before(msgs[i-1].Time) {
			t.Fatalf("%s out of order", m.Name)
		}
		sm := nameRE.FindStringSubmatch(m.Name)
		if sm == nil || sm[1] != fmt.Sprint(m.Time.Unix()) {
			t.Fatalf("name %q does not fit receipt time %d", m.Name, m.Time.Unix())
		}
		if seen[m.Name] || m.Truth.Name != m.Name || !m.Truth.Received.Equal(m.Time) {
			t.Fatalf("%s: duplicate name or truth disagrees", m.Name)
		}
		seen[m.Name] = true
	}
	// The rate follows PerDay.
	for _, perDay := range []int{300, 2000} {
		g2 := NewGenerator(g.w, Options{PerDay: perDay})
		n := len(g2.Between(g.w.Start, g.w.Start.Add(7*24*time.Hour)))
		if mean := float64(n) / 7; mean < 0.7*float64(perDay) || mean > 1.3*float64(perDay) {
			t.Errorf("PerDay %d: %.0f a day over a week", perDay, mean)
		}
	}
}

// charsetReader lets the tests decode every charset the lab writes.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(input)
	if err != nil {
		return nil, err
	}
	s, err := decodeCharset(charset, b)
	return strings.NewReader(s), err
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// parsed is a message taken apart with the standard library only.
type parsed struct {
	msg   *mail.Message
	plain [][]byte
	html  [][]byte
	atts  []parsedAtt
}

type parsedAtt struct {
	name, mediaType, disposition string
	data                         []byte
}

func parse(raw []byte) (*parsed, error) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	p := &parsed{msg: m}
	return p, p.walk(func(k string) string { return m.Header.Get(k) }, m.Body)
}

func (p *parsed) walk(get func(string) string, body io.Reader) error {
	ct := get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("content-type %q: %w", ct, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		n := 0
		for {
			part, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			n++
			if err := p.walk(part.Header.Get, part); err != nil {
				return err
			}
		}
		if n == 0 {
			return fmt.Errorf("multipart without parts")
		}
		return nil
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	var data []byte
	switch strings.ToLower(get("Content-Transfer-Encoding")) {
	case "base64":
		data, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	case "quoted-printable":
		data, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
	default:
		data = raw
	}
	if err != nil {
		return err
	}
	name := ""
	disp, dparams, _ := mime.ParseMediaType(get("Content-Disposition"))
	if n := dparams["filename"]; n != "" {
		name = n
	} else if n := params["name"]; n != "" {
		name = n
	}
	if name, err = wordDecoder.DecodeHeader(name); err != nil {
		return err
	}
	switch {
	case name != "" || disp == "attachment" || get("Content-ID") != "":
		if disp == "" {
			disp = "inline"
		}
		p.atts = append(p.atts, parsedAtt{name: name, mediaType: mt, disposition: disp, data: data})
	case mt == "text/html":
		p.html = append(p.html, data)
	default:
		p.plain = append(p.plain, data)
	}
	return nil
}

func TestMessagesMatchTruth(t *testing.T) {
	g, msgs := sample(t)
	addrParser := mail.AddressParser{WordDecoder: wordDecoder}
	checked := 0
	for _, m := range msgs {
		tr := m.Truth
		if tr.Malformed {
			continue
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf("%s (%s, %s): %s", m.Name, tr.Campaign, tr.Theme, fmt.Sprintf(format, args...))
		}
		p, err := parse(m.Raw)
		if err != nil {
			fail("parse: %v", err)
			continue
		}
		checked++
		h := p.msg.Header
		if got, err := wordDecoder.DecodeHeader(h.Get("Subject")); err != nil || got != tr.Subject {
			fail("subject %q (%v), truth %q", got, err, tr.Subject)
		}
		if from, err := addrParser.Parse(h.Get("From")); err != nil || from.Address != tr.From || from.Name != tr.FromName {
			fail("From %q parses to %v (%v), truth %q %q", h.Get("From"), from, err, tr.FromName, tr.From)
		}
		if tr.ReplyTo != "" {
			if rt, err := addrParser.Parse(h.Get("Reply-To")); err != nil || rt.Address != tr.ReplyTo {
				fail("Reply-To %q, truth %q", h.Get("Reply-To"), tr.ReplyTo)
			}
		}
		if got := strings.Trim(h.Get("Message-ID"), "<>"); got != tr.MessageID {
			fail("Message-ID %q, truth %q", got, tr.MessageID)
		}
		if h.Get("X-Mailer") != tr.XMailer {
			fail("X-Mailer %q, truth %q", h.Get("X-Mailer"), tr.XMailer)
		}
		if h.Get("Date") != tr.Date {
			fail("Date %q, truth %q", h.Get("Date"), tr.Date)
		} else if d, err := mail.ParseDate(tr.Date); err != nil || d.Unix()-m.Time.Unix() != tr.DateSkewSeconds {
			fail("Date %q: %v, skew %d", tr.Date, err, tr.DateSkewSeconds)
		}
		if !strings.Contains(h.Get("To"), tr.Trap) && h.Get("Delivered-To") != tr.Trap {
			fail("trap %s is in neither To nor Delivered-To", tr.Trap)
		}
		if n := len(h["Received"]); n != tr.ReceivedCount || n != len(tr.Hops) {
			fail("%d Received headers, truth %d", n, tr.ReceivedCount)
		}
		if rp := strings.Trim(h.Get("Return-Path"), "<>"); rp != tr.EnvelopeFrom {
			fail("Return-Path %q, truth %q", rp, tr.EnvelopeFrom)
		}

		// Attachments: names, types, sizes and digests of the decoded bytes.
		if len(p.atts) != len(tr.Attachments) {
			fail("%d attachments, truth %d", len(p.atts), len(tr.Attachments))
			continue
		}
		for i, a := range tr.Attachments {
			pa := p.atts[i]
			sum := sha256.Sum256(pa.data)
			if pa.name != a.Name || pa.mediaType != a.ContentType || pa.disposition != a.Disposition ||
				len(pa.data) != a.Size || hex.EncodeToString(sum[:]) != a.SHA256 {
				fail("attachment %d: %q %s %s %d bytes, truth %+v", i, pa.name, pa.mediaType, pa.disposition, len(pa.data), a)
			}
			if len(a.Members) > 0 {
				members := zipMembers(t, pa.data)
				for _, mb := range a.Members {
					data, ok := members[mb.Name]
					sum := sha256.Sum256(data)
					if !ok || len(data) != mb.Size || hex.EncodeToString(sum[:]) != mb.SHA256 {
						fail("zip member %s of %s does not match", mb.Name, a.Name)
					}
				}
			}
		}

		// Every URL is where the truth says, as written, and normalises to its URL.
		for _, u := range tr.URLs {
			raw := u.URL
			if u.Raw != "" {
				raw = u.Raw
			}
			if !found(t, p, h, u.Where, raw) {
				fail("URL %q not found in %s", raw, u.Where)
			}
			if got := normalise(raw); got != u.URL {
				fail("raw URL %q normalises to %q, truth %q", raw, got, u.URL)
			}
			d, ok := g.w.Domain(u.LabDomain)
			if !ok || d.Class != u.Class || !(u.Host == u.LabDomain || strings.HasSuffix(u.Host, "."+u.LabDomain)) ||
				!strings.HasSuffix(u.Host, u.Domain) || strings.Count(u.Domain, ".") != 1 {
				fail("URL %s: host %s, domain %s, lab domain %s (%s) disagree", u.URL, u.Host, u.Domain, u.LabDomain, u.Class)
			}
		}
	}
	if checked < len(msgs)*9/10 {
		t.Errorf("only %d of %d messages checked", checked, len(msgs))
	}
}

func zipMembers(t *testing.T, data []byte) map[string][]byte {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Errorf("zip: %v", err)
		return nil
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Errorf("zip member %s: %v", f.Name, err)
			continue
		}
		out[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	return out
}

func found(t *testing.T, p *parsed, h mail.Header, where, raw string) bool {
	in := func(bodies [][]byte) bool {
		return slices.ContainsFunc(bodies, func(b []byte) bool { return bytes.Contains(b, []byte(raw)) })
	}
	switch {
	case where == "text/plain":
		return in(p.plain)
	case where == "text/html":
		return in(p.html)
	case strings.HasPrefix(where, "header:"):
		return strings.Contains(h.Get(strings.TrimPrefix(where, "header:")), raw)
	case strings.HasPrefix(where, "attachment:"):
		name, member, _ := strings.Cut(strings.TrimPrefix(where, "attachment:"), ".zip/")
		if member != "" {
			name += ".zip"
		}
		for _, a := range p.atts {
			if a.name != name {
				continue
			}
			if member == "" {
				return bytes.Contains(a.data, []byte(raw))
			}
			return bytes.Contains(zipMembers(t, a.data)[member], []byte(raw))
		}
	}
	return false
}

// normalise undoes what spammers do to links, independently of the generator.
func normalise(raw string) string {
	s := html.UnescapeString(raw)
	s = strings.ReplaceAll(s, "[.]", ".")
	if strings.HasPrefix(strings.ToLower(s), "hxxp") {
		s = "http" + s[4:]
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "unparseable: " + err.Error()
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String()
}

// receivedBy and receivedFromIP read a Received header the way feeds.md says a
// harvester must: the by-host, and the connecting IP from the from-clause only.
var (
	byRE      = regexp.MustCompile(`(?i)(?:^|\s)by\s+([^\s;()]+)`)
	bracketRE = regexp.MustCompile(`\[([0-9A-Fa-f:.IPv%]+)\]`)
	parenIPRE = regexp.MustCompile(`\(([0-9A-Fa-f:.]+)\)`)
)

func receivedBy(v string) string {
	if m := byRE.FindStringSubmatch(v); m != nil {
		return strings.ToLower(m[1])
	}
	return ""
}

func receivedFromIP(v string) (netip.Addr, bool) {
	v = strings.Join(strings.Fields(v), " ")
	if !strings.HasPrefix(strings.ToLower(v), "from ") {
		return netip.Addr{}, false
	}
	clause, _, _ := strings.Cut(v, " by ")
	var candidates []string
	for _, m := range bracketRE.FindAllStringSubmatchIndex(clause, -1) {
		if strings.HasSuffix(clause[:m[0]], "helo=") {
			continue
		}
		inParens := strings.Count(clause[:m[0]], "(") > strings.Count(clause[:m[0]], ")")
		if inParens {
			candidates = slices.Insert(candidates, 0, clause[m[2]:m[3]])
		} else {
			candidates = append(candidates, clause[m[2]:m[3]])
		}
	}
	if m := parenIPRE.FindStringSubmatch(clause); m != nil { // Exchange: (1.2.3.4)
		candidates = append(candidates, m[1])
	}
	for _, c := range candidates {
		if ip, err := netip.ParseAddr(strings.TrimPrefix(c, "IPv6:")); err == nil {
			return ip.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// The sender IP in the truth is the one the feeds.md rule finds: from the trap MX's
// first header down, skipping trusted relays and private addresses.
func TestSenderIPFollowsTheRule(t *testing.T) {
	g, msgs := sample(t)
	trusted := g.TrustedRelays()
	if len(trusted) == 0 {
		t.Fatal("no trusted relays")
	}
	for _, m := range msgs {
		tr := m.Truth
		msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		rcvd := msg.Header["Received"]
		start := slices.IndexFunc(rcvd, func(v string) bool { return receivedBy(v) == tr.TrapMX })
		if start < 0 {
			t.Errorf("%s: no header by %s", m.Name, tr.TrapMX)
			continue
		}
		var got netip.Addr
		hop := -1
		for j := start; j < len(rcvd); j++ {
			ip, ok := receivedFromIP(rcvd[j])
			if !ok {
				t.Errorf("%s: no from-clause IP in %q", m.Name, rcvd[j])
				break
			}
			if slices.Contains(trusted, ip) || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
				continue
			}
			got, hop = ip, j
			break
		}
		if got != tr.SenderIP || hop != tr.SenderHop {
			t.Errorf("%s: the rule finds %s (hop %d), truth %s (hop %d)", m.Name, got, hop, tr.SenderIP, tr.SenderHop)
		}
		for i, h := range tr.Hops {
			if (h.Role == RoleForged || h.Role == RoleUpstream) != (i > tr.SenderHop) || h.Forged != (h.Role == RoleForged) {
				t.Errorf("%s: hop %d is %s", m.Name, i, h.Role)
			}
			if ip, ok := receivedFromIP(rcvd[i]); ok && h.FromIP.IsValid() && ip != h.FromIP {
				t.Errorf("%s: hop %d from-clause %s, truth %s", m.Name, i, ip, h.FromIP)
			}
		}
		if tr.Hops[tr.SenderHop].FromIP != tr.SenderIP || tr.Hops[tr.SenderHop].Role != RoleSender {
			t.Errorf("%s: sender hop %d does not name the sender", m.Name, tr.SenderHop)
		}
	}
}

// The sample exercises every trap a harvester must survive.
func TestVariety(t *testing.T) {
	_, msgs := sample(t)
	forms, senderForms, kinds := map[string]int{}, map[string]int{}, map[string]int{}
	labels, encs, ctes, mediaTypes, classes, defects := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}, map[world.Class]int{}, map[string]int{}
	campaigns := map[string][]Truth{}
	var v6, mapped, forged, obfuscated, onlyInAttachment, malformed, crlf, folded, wildDate int
	wordRE := regexp.MustCompile(`=\?([^?]+)\?([BbQq])\?`)
	cteRE := regexp.MustCompile(`(?i)Content-Transfer-Encoding: (\S+)`)
	ctRE := regexp.MustCompile(`(?i)Content-Type: ([a-z]+/[a-z.+-]+)`)
	for _, m := range msgs {
		tr := m.Truth
		for i, h := range tr.Hops {
			forms[h.Form]++
			if i == tr.SenderHop {
				senderForms[h.Form]++
			}
			if h.Forged {
				forged++
			}
		}
		kinds[tr.SenderKind]++
		if tr.SenderIP.Is6() {
			v6++
		}
		if bytes.Contains(m.Raw, []byte("IPv6:::ffff:")) {
			mapped++
		}
		hdr, _, _ := bytes.Cut(m.Raw, []byte("\n\n"))
		if bytes.Contains(hdr, []byte("\r\n")) {
			crlf++
			hdr, _, _ = bytes.Cut(m.Raw, []byte("\r\n\r\n"))
		}
		if regexp.MustCompile(`\nSubject: [^\n]*\r?\n[ \t]`).Match(hdr) {
			folded++
		}
		for _, sm := range wordRE.FindAllSubmatch(hdr, -1) {
			labels[strings.ToLower(string(sm[1]))]++
			encs[strings.ToUpper(string(sm[2]))]++
		}
		for _, sm := range cteRE.FindAllSubmatch(m.Raw, -1) {
			ctes[strings.ToLower(string(sm[1]))]++
		}
		for _, sm := range ctRE.FindAllSubmatch(m.Raw, -1) {
			mediaTypes[strings.ToLower(string(sm[1]))]++
		}
		inBody := map[string]bool{}
		for _, u := range tr.URLs {
			classes[u.Class]++
			if u.Obfuscated {
				obfuscated++
			}
			if !strings.HasPrefix(u.Where, "attachment:") {
				inBody[u.URL] = true
			}
		}
		for _, u := range tr.URLs {
			if strings.HasPrefix(u.Where, "attachment:") && !inBody[u.URL] {
				onlyInAttachment++
			}
		}
		if tr.Malformed {
			malformed++
			for _, d := range tr.Defects {
				defects[strings.Fields(d)[0]+" "+strings.Fields(d)[1]]++
			}
		}
		if tr.DateSkewSeconds > 7*24*3600 || tr.DateSkewSeconds < -7*24*3600 {
			wildDate++
		}
		campaigns[tr.Campaign] = append(campaigns[tr.Campaign], tr)
	}
	for _, f := range []string{Postfix, Exim, Sendmail, Exchange, Gmail, Amavis} {
		if forms[f] == 0 {
			t.Errorf("no %s Received header", f)
		}
	}
	for _, f := range []string{Postfix, Exim, Sendmail} {
		if senderForms[f] == 0 {
			t.Errorf("the sender is never named by a %s header", f)
		}
	}
	for _, k := range []string{"bot", "snowshoe", "webmail", "exchange", "relay"} {
		if kinds[k] == 0 {
			t.Errorf("no %s sender", k)
		}
	}
	for _, l := range []string{"utf-8", "iso-8859-1", "koi8-r", "windows-1251", "gb2312", "shift_jis"} {
		if labels[l] == 0 {
			t.Errorf("no %s encoded-word", l)
		}
	}
	for _, e := range []string{"B", "Q"} {
		if encs[e] == 0 {
			t.Errorf("no %s-encoded words", e)
		}
	}
	for _, e := range []string{"base64", "quoted-printable", "7bit", "8bit"} {
		if ctes[e] == 0 {
			t.Errorf("no %s transfer encoding", e)
		}
	}
	for _, mt := range []string{"text/plain", "text/html", "multipart/alternative", "multipart/mixed", "multipart/related", "image/gif", "application/pdf", "text/html"} {
		if mediaTypes[mt] == 0 {
			t.Errorf("no %s part", mt)
		}
	}
	if mediaTypes["application/zip"]+mediaTypes["application/x-zip-compressed"] == 0 || mediaTypes["application/msword"]+mediaTypes["application/rtf"] == 0 {
		t.Errorf("no zip or office attachment: %v", mediaTypes)
	}
	for _, c := range []world.Class{world.SingleFlux, world.DoubleFlux, world.Malicious, world.Static, world.RoundRobin, world.CDNDomain} {
		if classes[c] == 0 {
			t.Errorf("no URL to a %s domain", c)
		}
	}
	n := len(msgs)
	t.Logf("%d messages; hop forms %v; sender forms %v; kinds %v; charsets %v; defects %v", n, forms, senderForms, kinds, labels, defects)
	t.Logf("IPv6 senders %d, mapped %d, forged hops %d, obfuscated URLs %d, attachment-only URLs %d, CRLF %d, folded subjects %d, wild dates %d",
		v6, mapped, forged, obfuscated, onlyInAttachment, crlf, folded, wildDate)
	if v6 == 0 || mapped == 0 || forged == 0 || obfuscated == 0 || onlyInAttachment == 0 || crlf == 0 || folded == 0 || wildDate == 0 {
		t.Error("a trap is missing from the sample")
	}
	if share := float64(malformed) / float64(n); malformed == 0 || share > 0.08 {
		t.Errorf("malformed share %.3f", share)
	}
	big := 0
	for id, members := range campaigns {
		if strings.HasPrefix(id, "solo-") {
			if len(members) != 1 {
				t.Errorf("one-off %s has %d members", id, len(members))
			}
			continue
		}
		if len(members) >= 5 {
			big++
		}
		for _, m := range members[1:] {
			if m.Theme != members[0].Theme || m.SenderKind != members[0].SenderKind {
				t.Errorf("campaign %s mixes templates", id)
				break
			}
		}
	}
	if big < 5 {
		t.Errorf("only %d campaigns with 5 or more members", big)
	}
}

// Every kind of defect really breaks what it claims to, and the truth says so.
func TestDefects(t *testing.T) {
	w := world.NewWorld(1)
	for _, kind := range []string{MissingHeaders, EightBitHeader, BadDate, BadBoundary, BadBase64, BadBase64Text, Truncated} {
		g := NewGenerator(w, Options{PerDay: 2400})
		g.forceDefect = kind
		broken := 0
		for _, m := range g.Between(w.Start, w.Start.Add(2*time.Hour)) {
			tr := m.Truth
			if !tr.Malformed {
				continue
			}
			broken++
			if tr.DefectKind != kind || len(tr.Defects) == 0 {
				t.Fatalf("%s: defect %q %v, want %s", m.Name, tr.DefectKind, tr.Defects, kind)
			}
			msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
			if err != nil {
				t.Fatalf("%s: headers do not parse: %v", m.Name, err)
			}
			h := msg.Header
			hdr, _, _ := bytes.Cut(m.Raw, []byte("\n\n"))
			_, parseErr := parse(m.Raw)
			switch kind {
			case MissingHeaders:
				for _, d := range tr.Defects {
					name := strings.Fields(d)[1]
					if h.Get(name) != "" {
						t.Errorf("%s: %s but the header is there", m.Name, d)
					}
				}
			case EightBitHeader:
				eightBit := func(line []byte) bool {
					return (bytes.HasPrefix(line, []byte("Subject: ")) || bytes.HasPrefix(line, []byte("From: "))) &&
						bytes.ContainsFunc(line, func(r rune) bool { return r == utf8.RuneError || r >= 0x80 })
				}
				if !slices.ContainsFunc(bytes.Split(hdr, []byte("\n")), eightBit) {
					t.Errorf("%s: no 8-bit bytes in Subject or From", m.Name)
				}
			case BadDate:
				if _, err := mail.ParseDate(h.Get("Date")); err == nil || tr.Date != h.Get("Date") {
					t.Errorf("%s: Date %q parses", m.Name, h.Get("Date"))
				}
			case Truncated:
				if !strings.Contains(tr.Defects[0], fmt.Sprintf("at byte %d of", len(m.Raw))) {
					t.Errorf("%s: %d bytes, %s", m.Name, len(m.Raw), tr.Defects[0])
				}
				fallthrough
			case BadBase64:
				if !slices.ContainsFunc(tr.Attachments, func(a Attachment) bool { return a.Damaged }) {
					t.Errorf("%s: no damaged attachment", m.Name)
				}
				fallthrough
			default:
				if parseErr == nil {
					t.Errorf("%s: %s, but it parses", m.Name, tr.Defects)
				}
			}
		}
		if broken < 3 {
			t.Errorf("%s: only %d messages broken", kind, broken)
		}
	}
}

func TestTruthJSONRoundTrip(t *testing.T) {
	_, msgs := sample(t)
	for _, m := range msgs[:200] {
		data, err := json.Marshal(m.Truth)
		if err != nil {
			t.Fatal(err)
		}
		var back Truth
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, m.Truth) {
			t.Fatalf("%s: truth changes through JSON:\n%s", m.Name, data)
		}
	}
}

func TestCharsets(t *testing.T) {
	// Golden bytes from Python's codecs.
	for _, tc := range []struct{ charset, text, hex string }{
		{"koi8-r", "Привет", "f0d2c9d7c5d4"},
		{"koi8-r", "Ёё", "b3a3"},
		{"windows-1251", "Привет", "cff0e8e2e5f2"},
		{"windows-1251", "«Ёё»", "aba8b8bb"},
		{"gb2312", "您好！", "c4fabac3a3a1"},
		{"shift_jis", "【重要】", "81798f649776817a"},
		{"iso-8859-1", "Grüße", "4772fcdf65"},
	} {
		b, err := encodeCharset(tc.charset, tc.text)
		if err != nil || hex.EncodeToString(b) != tc.hex {
			t.Errorf("%s %q: %x (%v), want %s", tc.charset, tc.text, b, err, tc.hex)
		}
		if s, _ := decodeCharset(tc.charset, b); s != tc.text {
			t.Errorf("%s: %x decodes to %q", tc.charset, b, s)
		}
	}
	// Every theme's copy fits every charset it is sent in.
	for _, th := range themes {
		all := slices.Concat(th.subjects, th.fromNames, th.greetings, th.paras, th.linkTexts, th.closings, th.fileBases)
		for _, cs := range th.charsets {
			for _, s := range all {
				b, err := encodeCharset(cs, s)
				if err != nil {
					t.Errorf("theme %s in %s: %v", th.name, cs, err)
					continue
				}
				if back, _ := decodeCharset(cs, b); back != s {
					t.Errorf("theme %s in %s: %q comes back as %q", th.name, cs, s, back)
				}
			}
		}
	}
	// Encoded words never split a character and stay within 75 characters.
	for _, cs := range []string{"shift_jis", "gb2312", "utf-8", "koi8-r"} {
		text := map[string]string{"shift_jis": "【重要】アカウント確認のお願い【緊急】ご本人様確認のお知らせ", "gb2312": "代开各地发票，税点优惠专业网站推广，快速提升排名",
			"utf-8": "🚀 Turn $250 into money — act today ✅ 📈 Limited places available", "koi8-r": "Выгодное предложение для вашего бизнеса"}[cs]
		for _, enc := range []byte{'B', 'Q'} {
			words := encodedWords(text, cs, cs, enc)
			for _, w := range words {
				if len(w) > 75 {
					t.Errorf("%s %c word of %d characters", cs, enc, len(w))
				}
				if _, err := wordDecoder.Decode(w); err != nil {
					t.Errorf("%s: %v", w, err)
				}
			}
			if got, _ := wordDecoder.DecodeHeader(strings.Join(words, "\n ")); got != text {
				t.Errorf("%s %c: %q decodes to %q", cs, enc, text, got)
			}
		}
	}
}

// The PDF attachments are well formed: every cross-reference entry points at its
// object, so readers that follow the xref find the link.
func TestPDFCrossReference(t *testing.T) {
	pdf := makePDF([]string{"INVOICE 42", "Pay (now)"}, "https://example.com/a?b=1")
	xref := bytes.LastIndex(pdf, []byte("\nxref\n")) + 1
	if !bytes.HasSuffix(pdf, []byte(fmt.Sprintf("startxref\n%d\n%%%%EOF\n", xref))) {
		t.Fatalf("startxref does not point at the xref table")
	}
	lines := strings.Split(string(pdf[xref:]), "\n")
	for i, line := range lines[3:9] {
		var off int
		fmt.Sscanf(line, "%010d", &off)
		if want := fmt.Sprintf("%d 0 obj", i+1); !bytes.HasPrefix(pdf[off:], []byte(want)) {
			t.Errorf("xref entry %d points at %q", i+1, pdf[off:off+10])
		}
	}
	if !bytes.Contains(pdf, []byte(`(Pay \(now\))`)) || !bytes.Contains(pdf, []byte("/URI (https://example.com/a?b=1)")) {
		t.Error("text or link missing")
	}
}

func TestConcurrentUse(t *testing.T) {
	w := world.NewWorld(2)
	g := NewGenerator(w, Options{})
	want := NewGenerator(w, Options{}).Between(w.Start.Add(70*time.Hour), w.Start.Add(76*time.Hour))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := g.Between(w.Start.Add(70*time.Hour), w.Start.Add(76*time.Hour)); !reflect.DeepEqual(got, want) {
				t.Error("concurrent generation differs")
			}
		}()
	}
	wg.Wait()
}

// A stream of its own (the agent's trap) gives other mail, to its own traps only,
// deterministically, from the same campaigns as the lab's main stream.
func TestStreamOfItsOwn(t *testing.T) {
	w := world.NewWorld(1)
	from, to := w.Start, w.Start.Add(24*time.Hour)
	opts := Options{PerDay: 300, Stream: "agent", Traps: []world.TrapMX{w.AgentTrapMX}}
	own := NewGenerator(w, opts).Between(from, to)
	if again := NewGenerator(world.NewWorld(1), opts).Between(from, to); len(own) == 0 || !reflect.DeepEqual(own, again) {
		t.Fatalf("the stream is not deterministic (%d vs %d messages)", len(own), len(again))
	}
	main := NewGenerator(w, Options{PerDay: 300}).Between(from, to)
	names, campaigns := map[string]bool{}, map[string]bool{}
	for _, m := range main {
		names[m.Name] = true
		campaigns[m.Truth.Campaign] = true
	}
	shared := 0
	for _, m := range own {
		if names[m.Name] {
			t.Errorf("%s is in both streams", m.Name)
		}
		if !strings.HasSuffix(m.Truth.Trap, "@"+w.AgentTrapMX.Trap) || m.Truth.TrapMX != w.AgentTrapMX.Name {
			t.Fatalf("%s went to %s via %s, not to the stream's trap %s", m.Name, m.Truth.Trap, m.Truth.TrapMX, w.AgentTrapMX.Trap)
		}
		if campaigns[m.Truth.Campaign] {
			shared++
		}
	}
	if shared == 0 {
		t.Error("no campaign reached both streams")
	}
	for _, mx := range w.TrapMX {
		if mx.Addr == w.AgentTrapMX.Addr || mx.Trap == w.AgentTrapMX.Trap {
			t.Errorf("the agent's trap %+v is also a lab trap", w.AgentTrapMX)
		}
	}
}
