package mail

import (
	"errors"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tip-project/tip/feeds"
)

// ParseReceived reads one Received header value, folded or not. The connecting
// address comes from the from-clause only: an address in the clause's comment
// (Postfix and Sendmail "(rdns [ip])", Exim "([ip] helo=...)", Microsoft and
// qmail "(ip)"), else the clause's own address literal (Exim "from [ip]"); never
// from the id, with or by clauses, whose build numbers and queue ids may look
// like addresses, and never from a HELO argument, which the client chose. A
// header with neither a from nor a by clause (qmail's "(qmail 1 invoked by uid
// 0)") gives its date and an error.
func ParseReceived(value string) (Hop, error) {
	var p receivedParser
	return p.parse(value, new(time.Time))
}

// receivedParser parses Received headers, reusing its buffers from one header
// to the next.
type receivedParser struct {
	toks []rtoken
	cl   [numKeywords]clause
}

// parse reads one header; the hop's date is stored in *date.
func (p *receivedParser) parse(value string, date *time.Time) (Hop, error) {
	v := strings.TrimSpace(value)
	if strings.IndexByte(v, '\n') >= 0 || strings.IndexByte(v, '\r') >= 0 {
		v = unfold(value)
	}
	h := Hop{Raw: v}
	if v == "" {
		return h, errors.New("empty Received header value")
	}
	var when string
	p.toks, when = tokenizeReceived(v, p.toks[:0])
	if when != "" {
		if t, ok := parseDate(when); ok {
			*date = t
			h.Date = date
		}
	}
	cl := &p.cl
	for i := range cl {
		cl[i] = clause{comments: cl[i].comments[:0], words: cl[i].words[:0]}
	}
	clauses(p.toks, cl)
	if from := &cl[kwFrom]; from.ok {
		readFrom(&h, from, strings.Contains(v, "Exim"))
	}
	if by := &cl[kwBy]; by.ok {
		h.By = by.value
		if a, text, ok := literalIP(by.value); ok {
			h.ByIP = addrText(a, text)
		} else if a, text, ok := commentIP(by.comments, false); ok {
			h.ByIP = addrText(a, text)
		}
	}
	if w := &cl[kwWith]; w.ok {
		h.With = w.value
		if len(w.words) > 0 {
			h.With += " " + strings.Join(w.words, " ")
		}
	}
	if id := &cl[kwID]; id.ok {
		h.ID = id.value
	}
	if f := &cl[kwFor]; f.ok {
		h.For = strings.TrimSuffix(strings.TrimPrefix(f.value, "<"), ">")
	}
	if !cl[kwFrom].ok && h.By == "" {
		return h, errors.New("no from or by clause in the Received header")
	}
	return h, nil
}

// rtoken is one item of a Received header: a word, or a comment's content.
type rtoken struct {
	text    string
	comment bool
}

// tokenizeReceived splits a header value into words and comments up to its last
// top-level ";", and returns what follows that as the date.
func tokenizeReceived(v string, toks []rtoken) ([]rtoken, string) {
	semi, semiAt := -1, -1
	unclosed := false
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == ';':
			semi, semiAt = len(toks), i
			toks = append(toks, rtoken{text: ";"})
			i++
		case c == '(':
			depth, j := 0, i
			for ; j < len(v); j++ {
				if v[j] == '(' {
					depth++
				} else if v[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			end := min(j, len(v))
			toks = append(toks, rtoken{text: v[i+1 : end], comment: true})
			i = min(j+1, len(v))
		case c == ')':
			i++ // a stray closing parenthesis
		default:
			j := i
			for j < len(v) && !wordEnd(v[j]) {
				if v[j] == '[' && !unclosed { // a literal may hold what would end a word
					if k := strings.IndexByte(v[j:], ']'); k > 0 {
						j += k
					} else {
						unclosed = true // no "]" further on: do not look again
					}
				}
				j++
			}
			toks = append(toks, rtoken{text: v[i:j]})
			i = j
		}
	}
	if semi < 0 {
		return toks, ""
	}
	// The date is the text after the last top-level semicolon, comment and all.
	return toks[:semi], strings.TrimSpace(v[semiAt+1:])
}

func wordEnd(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '(' || c == ')' || c == ';'
}

// clause is one "keyword value (comments) words" group.
type clause struct {
	ok       bool
	value    string
	comments []string
	words    []string // words after the value up to the next keyword or comment (with)
}

// The clauses of a Received header.
const (
	kwFrom = iota
	kwBy
	kwVia
	kwWith
	kwID
	kwFor
	numKeywords
)

func keyword(w string) int {
	if len(w) < 2 || len(w) > 4 {
		return -1
	}
	// Only ASCII letters fold to these keywords' first letters.
	if c := w[0] | 0x20; c != 'f' && c != 'b' && c != 'v' && c != 'w' && c != 'i' && w[0] < utf8.RuneSelf {
		return -1
	}
	for i, k := range [numKeywords]string{"from", "by", "via", "with", "id", "for"} {
		if strings.EqualFold(w, k) {
			return i
		}
	}
	return -1
}

// clauses groups tokens by keyword; the first occurrence of a keyword wins.
func clauses(toks []rtoken, out *[numKeywords]clause) {
	var cur, ignored *clause
	ignored = &clause{}
	words := false // still collecting words after the value
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.comment {
			if cur != nil {
				cur.comments = append(cur.comments, t.text)
			}
			words = false
			continue
		}
		if kw := keyword(t.text); kw >= 0 && i+1 < len(toks) && !toks[i+1].comment {
			i++
			if out[kw].ok { // a repeated clause: ignored
				*ignored = clause{}
				cur, words = ignored, false
				continue
			}
			cur = &out[kw]
			cur.ok, cur.value = true, toks[i].text
			words = kw == kwWith
			continue
		}
		if cur != nil {
			if words {
				cur.words = append(cur.words, t.text)
			} else if strings.HasPrefix(t.text, "[") {
				cur.comments = append(cur.comments, t.text) // "from host (helo) [ip]"
			}
		}
	}
}

// readFrom reads the from-clause: connecting address, its name, and the HELO.
func readFrom(h *Hop, from *clause, exim bool) {
	word := from.value
	helo, heloFound := commentHELO(from.comments)
	a, text, ok := commentIP(from.comments, true)
	if !ok {
		a, text, ok = literalIP(word)
	}
	if ok {
		h.FromIP = addrText(a, text)
	}
	_, _, wordIsIP := literalIP(word)
	switch {
	case heloFound:
		h.HELO = helo
		if !wordIsIP && !strings.EqualFold(word, "unknown") {
			h.From = strings.TrimSuffix(word, ".")
		}
	default:
		if !strings.EqualFold(word, "unknown") {
			h.HELO = word
		}
		if name := commentName(from.comments); name != "" {
			h.From = name
		} else if exim && !wordIsIP && !strings.EqualFold(word, "unknown") {
			// Exim writes the verified name alone when the HELO matched it.
			h.From = strings.TrimSuffix(word, ".")
		}
	}
}

// commentHELO finds Exim's "helo=x" or qmail's "HELO x" in the comments.
func commentHELO(comments []string) (string, bool) {
	for _, c := range comments {
		prev := ""
		for w, rest := nextWord(c); w != ""; w, rest = nextWord(rest) {
			if len(w) > 5 && strings.EqualFold(w[:5], "helo=") {
				return strings.TrimRight(w[5:], ","), true
			}
			if isHELO(prev) {
				return strings.TrimRight(w, ","), true
			}
			prev = w
		}
	}
	return "", false
}

// nextWord is the first word of s and what follows it, split at white space as
// strings.Fields splits.
func nextWord(s string) (w, rest string) {
	i := 0
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if !asciiSpace(c) {
				break
			}
			i++
		} else if r, n := utf8.DecodeRuneInString(s[i:]); unicode.IsSpace(r) {
			i += n
		} else {
			break
		}
	}
	j := i
	for j < len(s) {
		if c := s[j]; c < utf8.RuneSelf {
			if asciiSpace(c) {
				break
			}
			j++
		} else if r, n := utf8.DecodeRuneInString(s[j:]); !unicode.IsSpace(r) {
			j += n
		} else {
			break
		}
	}
	return s[i:j], s[j:]
}

func isHELO(w string) bool { return strings.EqualFold(w, "helo") || strings.EqualFold(w, "ehlo") }

// commentIP finds the first address in the comments: a bracketed literal that is
// not a HELO argument, or a comment that is an address alone (after qmail's
// "user@"), with its text as literalIP returns it. skipHELO says a HELO
// argument is the client's word, not the connection's.
func commentIP(comments []string, skipHELO bool) (netip.Addr, string, bool) {
	for _, c := range comments {
		prev, n := "", 0
		for w, rest := nextWord(c); w != ""; w, rest = nextWord(rest) {
			n++
			if strings.HasPrefix(w, "[") && !(skipHELO && isHELO(prev)) {
				if a, text, ok := literalIP(w); ok {
					return a, text, true
				}
			}
			prev = w
		}
		if n == 1 { // "(1.2.3.4)", qmail's "(user@1.2.3.4)"
			w := strings.TrimSpace(c)
			if at := strings.LastIndexByte(w, '@'); at >= 0 {
				w = w[at+1:]
			}
			if a, text, ok := literalIP(w); ok {
				return a, text, true
			}
		}
	}
	return netip.Addr{}, "", false
}

// commentName is the host name written before the bracketed address in a
// comment ("(rdns [ip])", "(ident@rdns [ip])"); "" for "unknown".
func commentName(comments []string) string {
	for _, c := range comments {
		prev := ""
		for w, rest := nextWord(c); w != ""; w, rest = nextWord(rest) {
			if prev == "" || !strings.HasPrefix(w, "[") {
				prev = w
				continue
			}
			if _, _, ok := literalIP(w); !ok {
				prev = w
				continue
			}
			name := prev
			if at := strings.LastIndexByte(name, '@'); at >= 0 {
				name = name[at+1:]
			}
			name = strings.TrimSuffix(name, ".")
			if strings.EqualFold(name, "unknown") || strings.ContainsAny(name, "=[]()") {
				return ""
			}
			return name
		}
	}
	return ""
}

// literalIP reads "[1.2.3.4]", "[IPv6:::ffff:1.2.3.4]", "[1.2.3.4]:port", or a
// bare address; an IPv4-mapped address becomes IPv4. It returns the address
// and, when w writes it canonically, w.
func literalIP(w string) (netip.Addr, string, bool) {
	if strings.HasPrefix(w, "[") {
		end := strings.IndexByte(w, ']')
		if end < 0 {
			return netip.Addr{}, "", false
		}
		w = w[1:end]
	}
	if len(w) > 5 && strings.EqualFold(w[:5], "ipv6:") {
		w = w[5:]
	}
	// What cannot be an address is told apart without the cost of a parse
	// error: before a zone, an address is hex digits, colons and dots.
	v4 := true
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c == '%' {
			break
		}
		if c == ':' {
			v4 = false
		} else if !(c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f' || c == '.') {
			return netip.Addr{}, "", false
		}
	}
	if w == "" {
		return netip.Addr{}, "", false
	}
	a, err := netip.ParseAddr(w)
	if err != nil {
		return netip.Addr{}, "", false
	}
	if v4 && a.Is4() {
		return a, w, true // dotted decimal parses only as written canonically
	}
	return a.Unmap(), "", true
}

// addrText is an address's canonical text: lit when literalIP found it
// written so.
func addrText(a netip.Addr, lit string) string {
	if lit != "" {
		return lit
	}
	return a.String()
}

// trace reads the Received chain and picks the true sender by the trust rules:
// from the header the trap's MX wrote, step down while the connecting address
// is a trusted relay or private or reserved; the first other address is the
// sender, and everything below it may be forged.
func (x *extractor) trace(h header) {
	f := x.f
	p := &x.received
	n := 0
	for _, fl := range h {
		if len(fl.name) == len("Received") && strings.EqualFold(fl.name, "Received") {
			n++
		}
	}
	f.Hops = make([]Hop, 0, n)
	dates := make([]time.Time, n) // the hops' dates point into one allocation
	for _, fl := range h {
		if len(fl.name) == len("Received") && strings.EqualFold(fl.name, "Received") {
			hop, _ := p.parse(fl.value, &dates[len(f.Hops)])
			f.Hops = append(f.Hops, hop)
		}
	}
	if len(f.Hops) == 0 {
		x.defect("no Received header: no sender")
		return
	}
	start := -1
	for i, hop := range f.Hops {
		if x.trapMX(hop) {
			start = i
			break
		}
	}
	if start < 0 {
		if len(x.cfg.TrapMX) > 0 || len(x.cfg.TrapMXAddrs) > 0 {
			x.defect("no Received header written by the trap's MX: the sender is taken from the newest header")
		}
		start = 0
	}
	x.trapHop = start
	f.Received = f.Hops[start].Date
	for j := start; j < len(f.Hops); j++ {
		hop := f.Hops[j]
		a, err := netip.ParseAddr(hop.FromIP)
		if hop.FromIP == "" || err != nil {
			x.defect("Received header %d (by %s) names no connecting address: no sender", j, hop.By)
			return
		}
		text := hop.FromIP // canonical: literalIP wrote it
		if a.Zone() != "" {
			a = a.WithZone("")
			text = a.String()
		}
		if x.internal(a, text) {
			continue
		}
		f.SenderIP, f.SenderHop = text, j
		f.SenderHost, f.HELO = hop.From, hop.HELO
		return
	}
	x.defect("every hop from the trap's MX down is trusted or private: no sender")
}

// trapMX reports whether one of the trap's own MX hosts wrote hop.
func (x *extractor) trapMX(hop Hop) bool {
	by := strings.ToLower(strings.TrimSuffix(hop.By, "."))
	if x.trapMXNames == nil {
		x.trapMXNames = make([]string, len(x.cfg.TrapMX))
		for i, mx := range x.cfg.TrapMX {
			x.trapMXNames[i] = strings.ToLower(strings.TrimSuffix(mx, "."))
		}
	}
	for _, mx := range x.trapMXNames {
		// ".example.org" names every host under example.org
		if by == mx || (strings.HasPrefix(mx, ".") && by != "" && strings.HasSuffix(by, mx)) {
			return true
		}
	}
	if a, err := netip.ParseAddr(hop.ByIP); err == nil {
		a = a.WithZone("")
		for _, p := range x.cfg.TrapMXAddrs {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

// internal reports whether a hop's connecting address is one the trap steps
// over: a trusted relay, or private or reserved space (feeds' definition). text
// is a's canonical text.
func (x *extractor) internal(a netip.Addr, text string) bool {
	if a.Is4In6() {
		a = a.Unmap()
		text = a.String()
	}
	for _, p := range x.cfg.TrustedRelays {
		if p.Contains(a) {
			return true
		}
	}
	typ := feeds.IPv4
	if a.Is6() {
		typ = feeds.IPv6
	}
	_, drop, err := feeds.Normalize(typ, text)
	return err != nil || drop != ""
}
