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
	scanURLs(text, func(u string, _, _ int) bool {
		out = append(out, u)
		return len(out) < maxTextURLs
	})
	return out
}

// scanURLs calls fn with each URL of s and where it was written, until fn
// returns false. It costs one pass over s.
func scanURLs(s string, fn func(u string, start, end int) bool) {
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
			if !fn(scheme+"://"+rest, start, end) {
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
			if !fn("http://"+rest, i, end) {
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
func pathByte(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return strings.IndexByte("<>\"`{}|\\^", c) < 0
}

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
	scanURLs(s, func(u string, _, _ int) bool { return x.addURL(u, src) })
}

// addURL normalises a URL as feeds do and keeps it once; it returns false when
// MaxURLs is reached.
func (x *extractor) addURL(raw, src string) bool {
	if x.raws[raw] {
		return true
	}
	if len(x.raws) < 4*x.lim.MaxURLs {
		x.raws[raw] = true
	}
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

// urlAttrs are the HTML attributes whose value is a link.
var urlAttrs = map[string]bool{"href": true, "src": true, "action": true, "formaction": true, "background": true,
	"data": true, "poster": true, "cite": true, "longdesc": true, "lowsrc": true, "dynsrc": true, "codebase": true}

// blockTags separate words in the text of an HTML body.
var blockTags = map[string]bool{"p": true, "br": true, "div": true, "td": true, "th": true, "tr": true, "li": true,
	"table": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "title": true, "hr": true}

var voidTags = map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true, "img": true,
	"input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}

// html takes the URLs of an HTML document (link attributes, styles, meta
// refreshes and visible text) and, for a body, its visible text: what is
// hidden (display:none, visibility:hidden, the hidden attribute), scripts and
// styles are left out of the text, which spammers fill with random words.
func (x *extractor) html(s, src string, body bool) {
	z := html.NewTokenizer(strings.NewReader(s))
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
			if bytes.Contains(t, []byte("//")) || bytes.Contains(t, []byte("ww.")) || bytes.Contains(t, []byte("WW.")) {
				x.scanText(string(t), src)
			}
			if body && hidden == 0 && raw == "" && text.Len() < maxBodyText {
				text.Write(t)
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, more := z.TagName()
			tag := string(name)
			hide := false
			for more {
				var k, v []byte
				k, v, more = z.TagAttr()
				switch key := string(k); {
				case urlAttrs[key]:
					x.attrURL(string(v), src)
				case key == "style":
					st := strings.ToLower(string(v))
					st = strings.ReplaceAll(st, " ", "")
					hide = hide || strings.Contains(st, "display:none") || strings.Contains(st, "visibility:hidden")
					x.scanText(string(v), src)
				case key == "hidden":
					hide = true
				case key == "content":
					x.scanText(string(v), src)
				}
			}
			if blockTags[tag] && text.Len() < maxBodyText {
				text.WriteByte(' ')
			}
			if tt == html.SelfClosingTagToken || voidTags[tag] {
				continue
			}
			switch {
			case hidden > 0 && tag == hiddenTag:
				hidden++
			case hidden == 0 && hide:
				hiddenTag, hidden = tag, 1
			}
			if tag == "script" || tag == "style" {
				raw = tag
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if hidden > 0 && tag == hiddenTag {
				hidden--
			}
			if tag == raw {
				raw = ""
			}
			if blockTags[tag] && text.Len() < maxBodyText {
				text.WriteByte(' ')
			}
		}
	}
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
