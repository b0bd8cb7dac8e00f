package mail

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/tip-project/tip/feeds"
)

const (
	// maxURLLen is the longest URL taken from text; longer runs are skipped.
	maxURLLen = 4096
	// maxTextURLs bounds what ExtractURLs returns.
	maxTextURLs = 10000
)

// ExtractURLs returns the URLs written in plain text, in order, as spammers
// write them: http, https and ftp URLs, bare "www." hosts (given http://), and
// defanged forms ("hxxp://", "h**p://", "example[.]com", "[:]//") turned back
// into URLs, their scheme lower-cased. Trailing punctuation and unbalanced
// closing brackets are left out; a path ends at whitespace, at a character
// that cannot stand in a URL, or at a non-ASCII one.
// The URLs are not normalised (feeds.Normalize does that); at most 10,000 are
// returned and each is at most 4 KiB.
func ExtractURLs(text string) []string {
	var out []string
	scanURLs(text, func(scheme, rest string, _, _ int) bool {
		out = append(out, scheme+"://"+rest)
		return len(out) < maxTextURLs
	})
	return out
}

// scanURLs calls fn with each URL of s, as its scheme and what follows "://",
// and where it was written, until fn returns false. It costs one pass over s.
func scanURLs(s string, fn func(scheme, rest string, start, end int) bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/' && i+1 < len(s) && s[i+1] == '/':
			start, scheme, ok := schemeBefore(s, i)
			if !ok {
				i++
				continue
			}
			rest, end, ok := urlBody(s, i+2)
			if !ok {
				i = max(i+1, end-1)
				continue
			}
			if !fn(scheme, rest, start, end) {
				return
			}
			i = end - 1
		case (c == 'w' || c == 'W') && i+4 < len(s) && strings.EqualFold(s[i:i+4], "www.") &&
			(isAlnum(s[i+4]) || s[i+4] >= utf8.RuneSelf) &&
			(i == 0 || !hostByte(s[i-1]) && s[i-1] != '/' && s[i-1] != '@'):
			rest, end, ok := urlBody(s, i)
			if !ok || !strings.Contains(hostOf("http://"+rest), ".") {
				i = max(i, end-1)
				continue
			}
			if !fn("http", rest, i, end) {
				return
			}
			i = end - 1
		}
	}
}

// schemes maps the schemes (and their defanged spellings) taken from text.
var schemes = map[string]string{
	"http": "http", "https": "https", "ftp": "ftp",
	"hxxp": "http", "hxxps": "https", "hxxxp": "http", "hxxxps": "https", "h**p": "http", "h**ps": "https",
	"ttp": "http", "ttps": "https", "fxp": "ftp",
}

// schemeBefore reads the scheme ending just before the "//" at i ("http:" or
// "hxxp[:]"), and returns where the URL starts.
func schemeBefore(s string, i int) (int, string, bool) {
	j := i
	switch {
	case j >= 1 && s[j-1] == ':':
		j--
	case j >= 3 && s[j-3:j] == "[:]":
		j -= 3
	default:
		return 0, "", false
	}
	k := j
	for k > 0 && j-k < 8 && (s[k-1]|0x20 >= 'a' && s[k-1]|0x20 <= 'z' || s[k-1] == '*') {
		k--
	}
	if k == j || k > 0 && isAlnum(s[k-1]) {
		return 0, "", false
	}
	scheme, ok := schemes[strings.ToLower(s[k:j])]
	return k, scheme, ok
}

// defangs are written in place of a dot in host names.
var defangs = []string{"[.]", "(.)", "{.}", "[dot]", "(dot)", "{dot}"}

// urlBody reads the host and the rest of a URL starting at p. It returns the URL
// without its scheme (defanging undone), where it ends in s, and whether it is
// one.
func urlBody(s string, p int) (string, int, bool) {
	var sb *strings.Builder // only when the URL is rewritten
	q := p
	// The host: letters, digits, "-", "_", ".", a port, user info, an address
	// literal, and defanged dots.
	if q < len(s) && s[q] == '[' {
		if k := strings.IndexByte(s[q:], ']'); k > 2 && k < 48 && addrLiteral(s[q+1:q+k]) {
			q += k + 1
		}
	}
hostLoop:
	for q < len(s) {
		c := s[q]
		switch {
		case hostByte(c) || c == ':' || c == '@' || c == '%':
			q++
		case c == '[' || c == '(' || c == '{':
			for _, d := range defangs {
				if len(s)-q >= len(d) && strings.EqualFold(s[q:q+len(d)], d) {
					if sb == nil {
						sb = &strings.Builder{}
					}
					sb.WriteString(s[p:q])
					sb.WriteByte('.')
					q += len(d)
					p = q
					continue hostLoop
				}
			}
			break hostLoop
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[q:])
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				break hostLoop
			}
			q += n
		default:
			break hostLoop
		}
		if q-p > maxURLLen {
			break
		}
	}
	hostEnd := q
	// The rest: path, query and fragment, printable ASCII up to a delimiter.
	if q < len(s) && (s[q] == '/' || s[q] == '?' || s[q] == '#') {
		for q < len(s) && pathByte(s[q]) {
			q++
		}
	}
	end := q
	if end-p > maxURLLen {
		return "", max(q, p+1), false
	}
	// Trailing punctuation belongs to the sentence, and closing brackets to
	// the text unless the URL opened them.
	parens := strings.Count(s[p:end], "(") - strings.Count(s[p:end], ")")
	brackets := strings.Count(s[p:end], "[") - strings.Count(s[p:end], "]")
trim:
	for end > p {
		c := s[end-1]
		switch {
		case end <= hostEnd: // a host ends in a letter or digit
			if c != '.' && c != ':' && c != '-' && c != '@' {
				break trim
			}
		case strings.IndexByte(".,;:!?*'", c) >= 0:
		case c == ')' && parens < 0:
			parens++
		case c == ']' && brackets < 0:
			brackets++
		default:
			break trim
		}
		end--
	}
	if end <= p && sb == nil {
		return "", max(q, p+1), false
	}
	if sb != nil {
		sb.WriteString(s[p:end])
		return sb.String(), max(end, p), sb.Len() > 0
	}
	return s[p:end], end, true
}

// addrLiteral: what may stand between the brackets of an IPv6 host.
func addrLiteral(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f' || c == ':' || c == '.') {
			return false
		}
	}
	return strings.IndexByte(s, ':') >= 0
}

func hostByte(c byte) bool {
	return c|0x20 >= 'a' && c|0x20 <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_'
}

func isAlnum(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' || c >= '0' && c <= '9' }

// pathByte: printable ASCII that may stand in a URL written in text.
func pathByte(c byte) bool { return pathBytes[c] }

var pathBytes = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = strings.IndexByte("<>\"`{}|\\^", byte(c)) < 0
	}
	return t
}()

// hostOf is the host of a normalised URL, without user info, port or brackets.
func hostOf(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if strings.HasPrefix(rest, "[") {
		if i := strings.IndexByte(rest, ']'); i > 0 {
			return rest[1:i]
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// scanText takes the URLs of a text.
func (x *extractor) scanText(s, src string) {
	if !strings.Contains(s, "//") && !strings.Contains(s, "ww.") && !strings.Contains(s, "WW.") {
		return
	}
	scanURLs(s, func(scheme, rest string, _, _ int) bool { return x.addURL(scheme, rest, src) })
}

// rawURL is a URL as written, before it is normalised: its scheme and the rest.
type rawURL struct{ scheme, rest string }

// addURL normalises a URL as feeds do and keeps it once; it returns false when
// MaxURLs is reached.
func (x *extractor) addURL(scheme, rest, src string) bool {
	key := rawURL{scheme, rest}
	if x.raws[key] {
		return true
	}
	if len(x.raws) < 4*x.lim.MaxURLs {
		x.raws[key] = true
	}
	raw := scheme + "://" + rest
	if x.candidates++; x.candidates > 20*x.lim.MaxURLs {
		x.defectOnce("max-candidates", "more than %d URL-like strings: the rest are not read", 20*x.lim.MaxURLs)
		return false
	}
	ind, drop, err := feeds.Normalize(feeds.URL, raw)
	if err != nil || drop != "" || x.urls[ind.Value] {
		return true
	}
	if len(x.f.URLs) >= x.lim.MaxURLs {
		x.defectOnce("max-urls", "more than %d distinct URLs: the rest are not kept", x.lim.MaxURLs)
		return false
	}
	x.urls[ind.Value] = true
	x.f.URLs = append(x.f.URLs, URL{URL: ind.Value, Host: hostOf(ind.Value), Registrable: ind.Registrable, Source: src})
	return true
}

// urlAttr: the HTML attributes whose value is a link.
func urlAttr(k []byte) bool {
	switch string(k) {
	case "href", "src", "action", "formaction", "background", "data", "poster", "cite", "longdesc", "lowsrc",
		"dynsrc", "codebase":
		return true
	}
	return false
}

// blockTag: the tags that separate words in the text of an HTML body.
func blockTag(t []byte) bool {
	switch string(t) {
	case "p", "br", "div", "td", "th", "tr", "li", "table", "h1", "h2", "h3", "h4", "h5", "h6", "title", "hr":
		return true
	}
	return false
}

func voidTag(t []byte) bool {
	switch string(t) {
	case "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr":
		return true
	}
	return false
}

// html takes the URLs of an HTML document (link attributes, styles, meta
// refreshes and visible text) and, for a body, its visible text: what is
// hidden (display:none, visibility:hidden, the hidden attribute), scripts and
// styles are left out of the text, which spammers fill with random words.
func (x *extractor) html(doc []byte, src string, body bool) {
	z := html.NewTokenizer(bytes.NewReader(doc))
	var text strings.Builder
	hiddenTag, hidden, raw := "", 0, ""
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if body {
				x.addHTMLText(text.String())
			}
			return
		case html.TextToken:
			t := z.Text()
			if mayHoldURL(t) {
				x.scanText(string(t), src)
			}
			if body && hidden == 0 && raw == "" && text.Len() < maxBodyText {
				text.Write(t)
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			tag := x.tagName(z, 1)
			hide := false
			for attrs := !plainAttrs(z.Raw()); attrs; {
				k, v, more := z.TagAttr()
				switch {
				case urlAttr(k):
					if mayHoldURL(v) || bytes.ContainsAny(v, "\t\r\n") {
						x.attrURL(string(v), src)
					}
				case string(k) == "style":
					hide = hide || hiddenStyle(v, &x.style)
					if mayHoldURL(v) {
						x.scanText(string(v), src)
					}
				case string(k) == "hidden":
					hide = true
				case string(k) == "content":
					if mayHoldURL(v) {
						x.scanText(string(v), src)
					}
				}
				if !more {
					break
				}
			}
			if blockTag(tag) && text.Len() < maxBodyText {
				text.WriteByte(' ')
			}
			if tt == html.SelfClosingTagToken || voidTag(tag) {
				continue
			}
			switch {
			case hidden > 0 && string(tag) == hiddenTag:
				hidden++
			case hidden == 0 && hide:
				hiddenTag, hidden = string(tag), 1
			}
			if string(tag) == "script" || string(tag) == "style" {
				raw = string(tag)
			}
		case html.EndTagToken:
			tag := x.tagName(z, 2)
			if hidden > 0 && string(tag) == hiddenTag {
				hidden--
			}
			if string(tag) == raw {
				raw = ""
			}
			if blockTag(tag) && text.Len() < maxBodyText {
				text.WriteByte(' ')
			}
		}
	}
}

// tagName is the lower-cased name of the current tag token, read from its
// raw text ("<name" for skip 1, "</name" for skip 2) into a buffer the next
// call reuses: the tokenizer's TagName copies it.
func (x *extractor) tagName(z *html.Tokenizer, skip int) []byte {
	r := z.Raw()
	if len(r) <= skip || r[0] != '<' || bytes.IndexByte(r, 0) >= 0 {
		name, _ := z.TagName()
		return name
	}
	r = r[skip:]
	n := 0
	for n < len(r) && !tagNameEnd(r[n]) {
		n++
	}
	b := x.tag[:0]
	for _, c := range r[:n] {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	x.tag = b
	return b
}

// tagNameEnd: what ends a tag name in the tokenizer.
func tagNameEnd(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '/' || c == '>'
}

// plainAttrs reports a tag whose attributes cannot matter, read from its raw
// text: no URL, no style or hidden attribute, and nothing (entities, tabs and
// line breaks, NULs) that could make one of its values read otherwise.
func plainAttrs(raw []byte) bool {
	for i, c := range raw {
		switch c {
		case '&', '\t', '\r', '\n', 0:
			return false
		case '/':
			if i+1 < len(raw) && raw[i+1] == '/' {
				return false
			}
		case 'w', 'W':
			if i+2 < len(raw) && raw[i+1] == c && raw[i+2] == '.' {
				return false
			}
		case 's', 'S':
			if i+5 <= len(raw) && bytes.EqualFold(raw[i:i+5], []byte("style")) {
				return false
			}
		case 'h', 'H':
			if i+6 <= len(raw) && bytes.EqualFold(raw[i:i+6], []byte("hidden")) {
				return false
			}
		}
	}
	return true
}

// mayHoldURL: what scanText looks at.
func mayHoldURL(b []byte) bool {
	return bytes.Contains(b, []byte("//")) || bytes.Contains(b, []byte("ww.")) || bytes.Contains(b, []byte("WW."))
}

// hiddenStyle reports a style that hides its element: display:none or
// visibility:hidden in any case, spaces ignored. buf is scratch space.
func hiddenStyle(v []byte, buf *[]byte) bool {
	if bytes.IndexFunc(v, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0 {
		// unicode.ToLower makes ASCII of some letters ("İ")
		st := strings.ReplaceAll(strings.ToLower(string(v)), " ", "")
		return strings.Contains(st, "display:none") || strings.Contains(st, "visibility:hidden")
	}
	b := (*buf)[:0]
	for _, c := range v {
		switch {
		case c == ' ':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	*buf = b
	return bytes.Contains(b, []byte("display:none")) || bytes.Contains(b, []byte("visibility:hidden"))
}

// attrURL takes a link attribute's value: browsers drop tabs and newlines in
// it, and resolve "//host/path" to the page's scheme.
func (x *extractor) attrURL(v, src string) {
	v = strings.TrimSpace(v)
	if strings.ContainsAny(v, "\t\r\n") {
		v = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(v)
	}
	if strings.HasPrefix(v, "//") {
		v = "http:" + v
	}
	x.scanText(v, src)
}
