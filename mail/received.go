package mail

import (
	"errors"
	"net/netip"
	"strings"

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
	h, _, err := parseReceived(value, nil)
	return h, err
}

// parseReceived is ParseReceived with a token buffer to reuse; it returns the
// buffer for the next header.
func parseReceived(value string, toks []rtoken) (Hop, []rtoken, error) {
	v := strings.TrimSpace(value)
	if strings.ContainsAny(v, "\r\n") {
		v = unfold([]byte(value))
	}
	h := Hop{Raw: v}
	if v == "" {
		return h, toks, errors.New("empty Received header value")
	}
	toks, date := tokenizeReceived(v, toks[:0])
	if date != "" {
		if t, ok := parseDate(date); ok {
			h.Date = &t
		}
	}
	var cl [numKeywords]clause
	clauses(toks, &cl)
	if from := &cl[kwFrom]; from.ok {
		readFrom(&h, from, strings.Contains(v, "Exim"))
	}
	if by := &cl[kwBy]; by.ok {
		h.By = by.value
		if a, ok := literalIP(by.value); ok {
			h.ByIP = a.String()
		} else if a, ok := commentIP(by.comments, false); ok {
			h.ByIP = a.String()
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
		return h, toks, errors.New("no from or by clause in the Received header")
	}
	return h, toks, nil
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
	if len(w) > 4 {
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
	ip, ok := commentIP(from.comments, true)
	if !ok {
		ip, ok = literalIP(word)
	}
	if ok {
		h.FromIP = ip.String()
	}
	_, wordIsIP := literalIP(word)
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
		for w := range strings.FieldsSeq(c) {
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

func isHELO(w string) bool { return strings.EqualFold(w, "helo") || strings.EqualFold(w, "ehlo") }

// commentIP finds the first address in the comments: a bracketed literal that is
// not a HELO argument, or a comment that is an address alone (after qmail's
// "user@"). skipHELO says a
// HELO argument is the client's word, not the connection's.
func commentIP(comments []string, skipHELO bool) (netip.Addr, bool) {
	for _, c := range comments {
		prev, n := "", 0
		for w := range strings.FieldsSeq(c) {
			n++
			if strings.HasPrefix(w, "[") && !(skipHELO && isHELO(prev)) {
				if a, ok := literalIP(w); ok {
					return a, true
				}
			}
			prev = w
		}
		if n == 1 { // "(1.2.3.4)", qmail's "(user@1.2.3.4)"
			w := strings.TrimSpace(c)
			if at := strings.LastIndexByte(w, '@'); at >= 0 {
				w = w[at+1:]
			}
			if a, ok := literalIP(w); ok {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// commentName is the host name written before the bracketed address in a
// comment ("(rdns [ip])", "(ident@rdns [ip])"); "" for "unknown".
func commentName(comments []string) string {
	for _, c := range comments {
		prev := ""
		for w := range strings.FieldsSeq(c) {
			if prev == "" || !strings.HasPrefix(w, "[") {
				prev = w
				continue
			}
			if _, ok := literalIP(w); !ok {
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
// bare address; an IPv4-mapped address becomes IPv4.
func literalIP(w string) (netip.Addr, bool) {
	if strings.HasPrefix(w, "[") {
		end := strings.IndexByte(w, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		w = w[1:end]
	}
	if len(w) > 5 && strings.EqualFold(w[:5], "ipv6:") {
		w = w[5:]
	}
	if w == "" || !(w[0] >= '0' && w[0] <= '9' || w[0] >= 'a' && w[0] <= 'f' || w[0] >= 'A' && w[0] <= 'F' || w[0] == ':') {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(w)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// trace reads the Received chain and picks the true sender by the trust rules:
// from the header the trap's MX wrote, step down while the connecting address
// is a trusted relay or private or reserved; the first other address is the
// sender, and everything below it may be forged.
func (x *extractor) trace(h header) {
	f := x.f
	var toks []rtoken
	for _, fl := range h {
		if strings.EqualFold(fl.name, "Received") {
			var hop Hop
			hop, toks, _ = parseReceived(fl.value, toks)
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
		if err != nil {
			x.defect("Received header %d (by %s) names no connecting address: no sender", j, hop.By)
			return
		}
		if x.internal(a) {
			continue
		}
		f.SenderIP, f.SenderHop = a.WithZone("").String(), j
		f.SenderHost, f.HELO = hop.From, hop.HELO
		return
	}
	x.defect("every hop from the trap's MX down is trusted or private: no sender")
}

// trapMX reports whether one of the trap's own MX hosts wrote hop.
func (x *extractor) trapMX(hop Hop) bool {
	by := strings.ToLower(strings.TrimSuffix(hop.By, "."))
	for _, mx := range x.cfg.TrapMX {
		mx = strings.ToLower(strings.TrimSuffix(mx, "."))
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
// over: a trusted relay, or private or reserved space (feeds' definition).
func (x *extractor) internal(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	for _, p := range x.cfg.TrustedRelays {
		if p.Contains(a) {
			return true
		}
	}
	typ := feeds.IPv4
	if a.Is6() {
		typ = feeds.IPv6
	}
	_, drop, err := feeds.Normalize(typ, a.String())
	return err != nil || drop != ""
}
