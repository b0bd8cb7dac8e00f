package mail

import (
	"bytes"
	netmail "net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// field is one header field: its name as written and its value unfolded.
type field struct{ name, value string }

// header is an entity's fields in order.
type header []field

// first is the value of the first field called name (ASCII, as are field
// names: equal in any case only at equal lengths).
func (h header) first(name string) (string, bool) {
	for _, f := range h {
		if len(f.name) == len(name) && strings.EqualFold(f.name, name) {
			return f.value, true
		}
	}
	return "", false
}

func (h header) get(name string) string { v, _ := h.first(name); return v }

func (h header) all(name string) []string {
	var out []string
	for _, f := range h {
		if len(f.name) == len(name) && strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

// readHeader reads the header fields at the top of msg and returns them with the
// body. It is lenient as mail readers are: a leading mbox "From " line is
// skipped, a line that is no header field ends the header (the body starts
// there), fields past MaxHeaders are dropped and values cut at MaxHeaderLen.
// The header is copied into one string, and names and values are slices of it.
func (x *extractor) readHeader(msg []byte, top bool) (header, []byte) {
	spans := x.spans[:0]
	i := 0
	if top && bytes.HasPrefix(msg, []byte("From ")) {
		i = lineEnd(msg, 0)
	}
	end, body := len(msg), len(msg)
scan:
	for i < len(msg) {
		next := lineEnd(msg, i)
		line := trimEOL(msg[i:next])
		switch {
		case len(line) == 0:
			end, body = i, next
			break scan
		case line[0] == ' ' || line[0] == '\t':
			// Continuations are read with their field; this one has none.
			x.defectOnce("orphan-continuation", "header continuation line without a field")
			i = next
			continue
		}
		colon := fieldName(line)
		if colon < 0 {
			x.defectOnce("no-colon", "header line without a colon: the body is taken to start there")
			end, body = i, i
			break scan
		}
		j := next
		for j < len(msg) && (msg[j] == ' ' || msg[j] == '\t') {
			j = lineEnd(msg, j)
		}
		if len(spans) >= x.lim.MaxHeaders {
			x.defectOnce("max-headers", "more than %d header fields: the rest are ignored", x.lim.MaxHeaders)
			i = j
			continue
		}
		rawEnd := j
		if j-i > x.lim.MaxHeaderLen {
			x.defectOnce("max-header-len", "header field %s longer than %d bytes: cut", string(line[:colon]), x.lim.MaxHeaderLen)
			rawEnd = i + x.lim.MaxHeaderLen
		}
		spans = append(spans, fieldSpan{start: i, colon: i + colon, end: rawEnd})
		i = j
	}
	x.spans = spans
	h := make(header, len(spans))
	if len(spans) == 0 {
		return h, msg[body:]
	}
	// One string holds the header as written and, after it, the values of
	// more than one line unfolded.
	off := spans[0].start
	buf := append(x.header[:0], msg[off:end]...)
	for k := range spans {
		sp := &spans[k]
		sp.start, sp.colon, sp.end = sp.start-off, sp.colon-off, sp.end-off
		v := buf[sp.colon+1 : sp.end]
		if nl := bytes.IndexByte(v, '\n'); nl >= 0 && nl < len(v)-1 {
			vs := len(buf)
			buf = appendUnfolded(buf, v) // v stays as it is: the append writes past it
			sp.value, sp.valueEnd, sp.folded = vs, len(buf), true
		} else {
			sp.value, sp.valueEnd = sp.colon+1, sp.end
		}
	}
	x.header = buf
	str := string(buf)
	for k, sp := range spans {
		h[k].name = trimBlanks(str[sp.start:sp.colon])
		v := str[sp.value:sp.valueEnd]
		if !sp.folded {
			v = trimBlanks(strings.TrimSuffix(strings.TrimSuffix(v, "\n"), "\r"))
		}
		h[k].value = v
	}
	return h, msg[body:]
}

// fieldSpan is where a header field lies: its start, colon and end in the
// message, then its value in readHeader's buffer.
type fieldSpan struct {
	start, colon, end int
	value, valueEnd   int
	folded            bool
}

// lineEnd is the index just past the line starting at i (past its "\n").
func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}

// crToLF is msg with its bare CRs (those not before an LF) made LF. Python's
// email package ends a line at CRLF, CR or LF alike (email.feedparser's
// NLCRE), and mail saved by old Mac clients ends every line in a bare CR: read
// so, such mail gives the facts of its LF form. msg is returned itself, with no
// copy, when it has no bare CR; else a copy of the same length, so that sizes
// and offsets hold (the raw message's hashes are taken before, of msg as it
// came).
func crToLF(msg []byte) []byte {
	i := bareCR(msg)
	if i < 0 {
		return msg
	}
	out := bytes.Clone(msg)
	for ; i < len(out); i++ {
		if out[i] == '\r' && (i+1 == len(out) || out[i+1] != '\n') {
			out[i] = '\n'
		}
	}
	return out
}

// bareCR is the index of the first CR of b not followed by an LF, or -1.
func bareCR(b []byte) int {
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], '\r')
		if i < 0 {
			return -1
		}
		off += i
		if off+1 == len(b) || b[off+1] != '\n' {
			return off
		}
		off += 2
	}
}

func trimEOL(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

// fieldName returns the index of the colon ending a valid field name in line,
// or -1: a name is printable ASCII without a colon, spaces before the colon
// allowed (they occur in the wild).
func fieldName(line []byte) int {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return -1
	}
	name := line[:colon]
	for len(name) > 0 && (name[len(name)-1] == ' ' || name[len(name)-1] == '\t') {
		name = name[:len(name)-1]
	}
	if len(name) == 0 {
		return -1
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return -1
		}
	}
	return colon
}

// trimBlanks trims spaces and tabs.
func trimBlanks(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}

// unfold joins a folded value's lines with single spaces, trimming each, as
// go-message and net/textproto do.
func unfold(v string) string {
	if strings.IndexByte(v, '\n') < 0 {
		return trimBlanks(strings.TrimSuffix(v, "\r"))
	}
	return string(appendUnfolded(nil, []byte(v)))
}

// appendUnfolded appends v unfolded to dst.
func appendUnfolded(dst, v []byte) []byte {
	start := len(dst)
	for len(v) > 0 {
		line := v
		if i := bytes.IndexByte(v, '\n'); i >= 0 {
			line, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		for len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			line = line[1:]
		}
		for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
			line = line[:len(line)-1]
		}
		if len(line) == 0 {
			continue
		}
		if len(dst) > start {
			dst = append(dst, ' ')
		}
		dst = append(dst, line...)
	}
	return dst
}

// text decodes an unstructured header value: raw 8-bit bytes (read in the
// message's charset when they are not UTF-8) and RFC 2047 encoded-words.
func (x *extractor) text(v, name string) string {
	v = x.eightBit(v, name)
	if !strings.Contains(v, "=?") {
		return v
	}
	v = x.lenientWords(v, name)
	s, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		x.defect("%s: %v", name, err)
		return v
	}
	return s
}

// lenientWords makes the badly padded base64 of v's encoded words decode, as
// Python's email package reads it, and reports it as Python does.
func (x *extractor) lenientWords(v, name string) string {
	v, repaired := lenientWords(v)
	if repaired {
		x.defect("%s: malformed base64 in an encoded word: read leniently", name)
	}
	return v
}

// eightBit turns a header value with raw 8-bit bytes into UTF-8 and reports it:
// the bytes are UTF-8 if they are valid UTF-8, else in the charset the message's
// text declares, else Windows-1252 — which also wins when the message's charset
// makes words of Latin letters with a foreign one inside ("JЭrgen" for a
// Latin-1 "Jürgen" in a KOI8-R mail).
func (x *extractor) eightBit(v, name string) string {
	if isASCII(v) {
		return v
	}
	if utf8.ValidString(v) {
		x.defect("unencoded 8-bit bytes in %s (utf-8)", name)
		return v
	}
	cs, s := "windows-1252", ""
	if x.charset != "" && !isUTF8Label(x.charset) {
		if d, err := decodeCharset([]byte(v), x.charset); err == nil {
			cs, s = x.charset, string(d)
		}
	}
	if s == "" || mixedWords(s) {
		if d, err := decodeCharset([]byte(v), "windows-1252"); err == nil && (s == "" || !mixedWords(string(d))) {
			cs, s = "windows-1252", string(d)
		}
	}
	x.defect("unencoded 8-bit bytes in %s (%s)", name, cs)
	return s
}

// mixedWords reports a word that mixes ASCII letters with letters of another
// script: the sign of text read in the wrong single-byte charset.
func mixedWords(s string) bool {
	ascii, foreign := false, false
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf && unicode.IsLetter(r):
			ascii = true
		case r >= utf8.RuneSelf && unicode.IsLetter(r) && !unicode.Is(unicode.Latin, r):
			foreign = true
		case !unicode.IsLetter(r):
			ascii, foreign = false, false
		}
		if ascii && foreign {
			return true
		}
	}
	return false
}

// addressParser is go-message's address parser (net/mail's with every charset
// go-message knows) with the word decoder that needs no copy buffer.
var addressParser = &netmail.AddressParser{WordDecoder: wordDecoder}

// address reads the first address of an address header: the address and the
// decoded display name. Broken values that net/mail refuses are read leniently.
func (x *extractor) address(v, name string) (addr, display string) {
	v = x.eightBit(v, name)
	if strings.Contains(v, "=?") {
		v = x.lenientWords(v, name)
	}
	if addr, display, ok := simpleAddress(v); ok {
		return addr, display
	}
	if list, err := addressParser.ParseList(v); err == nil {
		if len(list) > 0 {
			return list[0].Address, list[0].Name
		}
		return "", ""
	}
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		rest := v[i+1:]
		if j := strings.IndexByte(rest, '>'); j >= 0 {
			rest = rest[:j]
		}
		addr = strings.TrimSpace(rest)
		display = strings.Trim(strings.TrimSpace(v[:i]), `"`)
		if d, err := wordDecoder.DecodeHeader(display); err == nil {
			display = d
		}
		return addr, strings.TrimSpace(display)
	}
	for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == ';' || r == '\t' }) {
		if strings.Contains(w, "@") {
			return strings.Trim(w, `"()`), ""
		}
	}
	return "", ""
}

// simpleAddress reads the common forms "local@domain" and "Display Name
// <local@domain>" (ASCII atoms and encoded words, no comments or quotes) as
// net/mail reads them, at a fraction of the cost; ok is false for any other
// form, and for an encoded word that does not decode.
func simpleAddress(v string) (addr, display string, ok bool) {
	v = trimBlanks(v)
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < '!' || c > '~') && c != ' ' && c != '\t' || c == '"' || c == '(' || c == ',' || c == '\\' {
			return "", "", false
		}
	}
	lt := strings.IndexByte(v, '<')
	if lt < 0 {
		return v, "", addrSpec(v)
	}
	if !strings.HasSuffix(v, ">") || !addrSpec(v[lt+1:len(v)-1]) {
		return "", "", false
	}
	phrase := trimBlanks(v[:lt])
	for w, rest := nextWord(phrase); w != ""; w, rest = nextWord(rest) {
		for i := 0; i < len(w); i++ {
			if !atext(w[i]) && w[i] != '.' {
				return "", "", false
			}
		}
	}
	if strings.Contains(phrase, "=?") {
		// Encoded words are decoded, and adjacent ones joined without a space.
		var sb strings.Builder
		prevEncoded := false
		for w, rest := nextWord(phrase); w != ""; w, rest = nextWord(rest) {
			encoded := strings.Contains(w, "=?")
			if encoded {
				d, err := wordDecoder.Decode(w)
				if err != nil || d == "" { // net/mail reads an empty one otherwise
					return "", "", false
				}
				w = d
			}
			if sb.Len() > 0 && !(prevEncoded && encoded) {
				sb.WriteByte(' ')
			}
			sb.WriteString(w)
			prevEncoded = encoded
		}
		phrase = sb.String()
	} else if strings.Contains(phrase, "  ") || strings.IndexByte(phrase, '\t') >= 0 {
		phrase = strings.Join(strings.Fields(phrase), " ")
	}
	return v[lt+1 : len(v)-1], phrase, true
}

// addrSpec reports a plain "local@domain" of dot-atoms.
func addrSpec(s string) bool {
	at := strings.IndexByte(s, '@')
	return at >= 0 && dotAtom(s[:at]) && dotAtom(s[at+1:])
}

// dotAtom reports atoms joined by single dots (RFC 5322 3.2.3).
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !atext(s[i]) && s[i] != '.' {
			return false
		}
	}
	return true
}

// atext: printable ASCII but the specials of RFC 5322 3.2.3.
func atext(c byte) bool {
	return c >= '!' && c <= '~' && strings.IndexByte("()<>[]:;@\\,\".", c) < 0
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isUTF8Label(cs string) bool {
	switch strings.ToLower(cs) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return true
	}
	return false
}
