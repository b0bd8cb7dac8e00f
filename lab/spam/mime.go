package spam

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"
)

// header is one header field; value may hold folds ("\n" followed by a space or tab).
type header struct{ name, value string }

// part is a MIME entity: a leaf with an encoded body, or a multipart with children.
type part struct {
	headers  []header
	body     []byte // leaf: the body as transferred (already encoded)
	children []*part
	// boundary is the delimiter written between children; a broken message declares
	// another in its Content-Type.
	boundary  string
	preamble  string
	noClosing bool // leave out the closing delimiter (a defect)
}

func (p *part) set(name, value string) {
	for i := range p.headers {
		if strings.EqualFold(p.headers[i].name, name) {
			p.headers[i].value = value
			return
		}
	}
	p.headers = append(p.headers, header{name, value})
}

func (p *part) get(name string) string {
	for _, h := range p.headers {
		if strings.EqualFold(h.name, name) {
			return h.value
		}
	}
	return ""
}

func (p *part) render(buf *bytes.Buffer) {
	for _, h := range p.headers {
		buf.WriteString(h.name)
		buf.WriteString(": ")
		buf.WriteString(h.value)
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
	if p.children == nil {
		buf.Write(p.body)
		return
	}
	if p.preamble != "" {
		buf.WriteString(p.preamble)
		buf.WriteByte('\n')
	}
	for _, c := range p.children {
		buf.WriteString("\n--" + p.boundary + "\n")
		c.render(buf)
	}
	if !p.noClosing {
		buf.WriteString("\n--" + p.boundary + "--\n")
	}
}

// base64Lines encodes data in lines of width characters, each ending in "\n".
func base64Lines(data []byte, width int) []byte {
	enc := base64.StdEncoding.EncodeToString(data)
	var out bytes.Buffer
	for len(enc) > width {
		out.WriteString(enc[:width])
		out.WriteByte('\n')
		enc = enc[width:]
	}
	if enc != "" {
		out.WriteString(enc)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// quotedPrintable encodes text lines; the writer's CRLFs become the message's "\n".
func quotedPrintable(data []byte) []byte {
	var out bytes.Buffer
	w := quotedprintable.NewWriter(&out)
	w.Write(data)
	w.Close()
	b := bytes.ReplaceAll(out.Bytes(), []byte("\r\n"), []byte("\n"))
	if !bytes.HasSuffix(b, []byte("\n")) {
		b = append(b, '\n')
	}
	return b
}

// encodeBody applies a Content-Transfer-Encoding to a text or binary body.
func encodeBody(data []byte, cte string, width int) []byte {
	switch cte {
	case "base64":
		return base64Lines(data, width)
	case "quoted-printable":
		return quotedPrintable(data)
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		data = append(bytes.Clone(data), '\n')
	}
	return data
}

// encodedWords writes text as RFC 2047 encoded-words in charset, each at most 75
// characters and none splitting a character.
func encodedWords(text, charset, label string, enc byte) []string {
	overhead := len(label) + 7 // =?label?B?...?=
	var words []string
	var chunk []byte
	encLen := func(b []byte) int {
		if enc == 'B' {
			return (len(b) + 2) / 3 * 4
		}
		n := 0
		for _, c := range b {
			if isQSafe(c) {
				n++
			} else {
				n += 3
			}
		}
		return n
	}
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		var data string
		if enc == 'B' {
			data = base64.StdEncoding.EncodeToString(chunk)
		} else {
			var sb strings.Builder
			for _, c := range chunk {
				switch {
				case c == ' ':
					sb.WriteByte('_')
				case isQSafe(c):
					sb.WriteByte(c)
				default:
					fmt.Fprintf(&sb, "=%02X", c)
				}
			}
			data = sb.String()
		}
		words = append(words, "=?"+label+"?"+string(enc)+"?"+data+"?=")
		chunk = nil
	}
	for _, r := range text {
		b := mustEncode(charset, string(r))
		if len(chunk) > 0 && overhead+encLen(append(bytes.Clone(chunk), b...)) > 75 {
			flush()
		}
		chunk = append(chunk, b...)
	}
	flush()
	return words
}

// isQSafe: characters written as themselves in a Q-encoded header word (a space
// becomes "_").
func isQSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ' || c == '!' || c == '*' || c == '+' || c == '-' || c == '/'
}

// fold breaks a header value at spaces so that lines stay near 78 characters; the
// first line already holds nameLen characters. A fold replaces the space by "\n ",
// so unfolding gives the value back.
func fold(nameLen int, value string) string {
	if nameLen+2+len(value) <= 78 {
		return value
	}
	var out strings.Builder
	lineLen := nameLen + 2
	for i, word := range strings.Split(value, " ") {
		if i > 0 {
			if lineLen+1+len(word) > 78 && lineLen > 1 {
				out.WriteString("\n ")
				lineLen = 1
			} else {
				out.WriteByte(' ')
				lineLen++
			}
		}
		out.WriteString(word)
		lineLen += len(word)
	}
	return out.String()
}

// wrapText wraps plain text at width on spaces, keeping long words (URLs) whole.
func wrapText(s string, width int) string {
	var out strings.Builder
	for li, line := range strings.Split(s, "\n") {
		if li > 0 {
			out.WriteByte('\n')
		}
		n := 0
		for wi, word := range strings.Split(line, " ") {
			wl := utf8.RuneCountInString(word)
			if wi > 0 {
				if n+1+wl > width {
					out.WriteByte('\n')
					n = 0
				} else {
					out.WriteByte(' ')
					n++
				}
			}
			out.WriteString(word)
			n += wl
		}
	}
	return out.String()
}

// isASCII reports whether s needs no charset.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
