package mail

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	gomail "github.com/emersion/go-message/mail"
)

// field is one header field: its name as written and its value unfolded.
type field struct{ name, value string }

// header is an entity's fields in order.
type header []field

func (h header) first(name string) (string, bool) {
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			return f.value, true
		}
	}
	return "", false
}

func (h header) get(name string) string { v, _ := h.first(name); return v }

func (h header) all(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

// readHeader reads the header fields at the top of msg and returns them with the
// body. It is lenient as mail readers are: a leading mbox "From " line is
// skipped, a line that is no header field ends the header (the body starts
// there), fields past MaxHeaders are dropped and values cut at MaxHeaderLen.
func (x *extractor) readHeader(msg []byte, top bool) (header, []byte) {
	h := make(header, 0, 32)
	i := 0
	if top && bytes.HasPrefix(msg, []byte("From ")) {
		i = lineEnd(msg, 0)
	}
	for i < len(msg) {
		end := lineEnd(msg, i)
		line := trimEOL(msg[i:end])
		switch {
		case len(line) == 0:
			return h, msg[end:]
		case line[0] == ' ' || line[0] == '\t':
			// Continuations are read with their field; this one has none.
			x.defectOnce("orphan-continuation", "header continuation line without a field")
			i = end
			continue
		}
		colon := fieldName(line)
		if colon < 0 {
			x.defectOnce("no-colon", "header line without a colon: the body is taken to start there")
			return h, msg[i:]
		}
		j := end
		for j < len(msg) && (msg[j] == ' ' || msg[j] == '\t') {
			j = lineEnd(msg, j)
		}
		if len(h) >= x.lim.MaxHeaders {
			x.defectOnce("max-headers", "more than %d header fields: the rest are ignored", x.lim.MaxHeaders)
			i = j
			continue
		}
		raw := msg[i:j]
		if len(raw) > x.lim.MaxHeaderLen {
			x.defectOnce("max-header-len", "header field %s longer than %d bytes: cut", string(line[:colon]), x.lim.MaxHeaderLen)
			raw = raw[:x.lim.MaxHeaderLen]
		}
		name := string(bytes.TrimRight(raw[:colon], " \t"))
		h = append(h, field{name, unfold(raw[colon+1:])})
		i = j
	}
	return h, nil
}

// lineEnd is the index just past the line starting at i (past its "\n").
func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// fieldName returns the index of the colon ending a valid field name in line,
// or -1: a name is printable ASCII without a colon, spaces before the colon
// allowed (they occur in the wild).
func fieldName(line []byte) int {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return -1
	}
	name := bytes.TrimRight(line[:colon], " \t")
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

// unfold joins a folded value's lines with single spaces, trimming each, as
// go-message and net/textproto do.
func unfold(v []byte) string {
	if bytes.IndexByte(v, '\n') < 0 {
		return string(bytes.Trim(bytes.TrimSuffix(v, []byte("\r")), " \t"))
	}
	var sb strings.Builder
	sb.Grow(len(v))
	for len(v) > 0 {
		line := v
		if i := bytes.IndexByte(v, '\n'); i >= 0 {
			line, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		line = bytes.Trim(bytes.TrimSuffix(line, []byte("\r")), " \t")
		if len(line) == 0 {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.Write(line)
	}
	return sb.String()
}

// wordDecoder decodes RFC 2047 encoded-words in every charset go-message knows.
// A word is decoded at once into a bytes.Reader: mime copies the reader it gets
// with io.Copy, which would take a 32 KiB buffer for each word otherwise.
var wordDecoder = &mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
	cr, err := charset.Reader(cs, r)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(cr)
	return bytes.NewReader(b), err
}}

// text decodes an unstructured header value: raw 8-bit bytes (read in the
// message's charset when they are not UTF-8) and RFC 2047 encoded-words.
func (x *extractor) text(v, name string) string {
	v = x.eightBit(v, name)
	if !strings.Contains(v, "=?") {
		return v
	}
	s, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		x.defect("%s: %v", name, err)
		return v
	}
	return s
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
			cs, s = x.charset, d
		}
	}
	if s == "" || mixedWords(s) {
		if d, err := decodeCharset([]byte(v), "windows-1252"); err == nil && (s == "" || !mixedWords(d)) {
			cs, s = "windows-1252", d
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

// address reads the first address of an address header: the address and the
// decoded display name. Broken values that net/mail refuses are read leniently.
func (x *extractor) address(v, name string) (addr, display string) {
	v = x.eightBit(v, name)
	if list, err := gomail.ParseAddressList(v); err == nil {
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

// decodeCharset converts data in charset cs to UTF-8 with go-message's charset
// tables.
func decodeCharset(data []byte, cs string) (string, error) {
	if isUTF8Label(cs) {
		return string(data), nil
	}
	r, err := charset.Reader(cs, bytes.NewReader(data))
	if err != nil {
		return string(data), err
	}
	out, err := io.ReadAll(r)
	return string(out), err
}
