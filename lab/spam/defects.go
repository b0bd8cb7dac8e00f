package spam

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Defect kinds.
const (
	MissingHeaders = "missing-headers" // no From, no Date, or neither
	EightBitHeader = "8bit-header"     // raw 8-bit bytes in Subject or From
	BadDate        = "bad-date"        // a Date that does not parse
	BadBoundary    = "boundary"        // a boundary that does not match, or no closing one
	BadBase64      = "bad-base64"      // an attachment whose base64 is damaged
	BadBase64Text  = "bad-base64-text" // stray characters in a base64 text body
	Truncated      = "truncated"       // the message ends inside its last attachment
)

// defectKind decides whether this message is broken, and how: a few percent are.
func (b *builder) defectKind() string {
	r := b.r
	broken := r.Float64() < 0.035
	kinds := []string{MissingHeaders, EightBitHeader, BadDate}
	if b.root.children != nil {
		kinds = append(kinds, BadBoundary, BadBoundary)
	}
	if len(b.attParts) > 0 {
		kinds = append(kinds, BadBase64, Truncated)
	}
	if len(b.b64Text) > 0 {
		kinds = append(kinds, BadBase64Text)
	}
	if f := b.g.forceDefect; f != "" {
		if slices.Contains(kinds, f) {
			return f
		}
		return ""
	}
	if !broken {
		return ""
	}
	if len(b.attParts) > 0 && r.IntN(2) == 0 {
		return pickOne(r, []string{BadBase64, Truncated})
	}
	return pickOne(r, kinds)
}

// malform breaks the message the way real spam is broken and records how. It
// reports whether the rendered bytes must be cut short too.
func (b *builder) malform(kind string) (truncate bool) {
	r, c := b.r, b.c
	b.t.Malformed, b.t.DefectKind = true, kind
	switch kind {
	case MissingHeaders:
		drop := pickOne(r, [][]string{{"From"}, {"Date"}, {"From", "Date"}, {"From", "Date", "Message-ID"}})
		for _, name := range drop {
			b.removeHeader(name)
			b.t.Defects = append(b.t.Defects, "missing "+name+" header")
			switch name {
			case "From":
				b.t.From, b.t.FromName = "", ""
			case "Date":
				b.t.Date, b.t.DateSkewSeconds = "", 0
			case "Message-ID":
				b.t.MessageID = ""
			}
		}
	case EightBitHeader:
		if !isASCII(b.subject) && c.charset != "us-ascii" {
			b.setHeader("Subject", string(mustEncode(c.charset, b.subject)))
			b.t.Defects = append(b.t.Defects, fmt.Sprintf("unencoded 8-bit bytes in Subject (%s)", c.charset))
		} else {
			name := pickOne(r, []string{"Jürgen Müller", "José Peña", "Søren Ødegård"})
			b.setHeader("From", string(mustEncode("iso-8859-1", name))+" <"+b.fromAddr+">")
			b.t.From, b.t.FromName = b.fromAddr, name
			b.t.Defects = append(b.t.Defects, "unencoded 8-bit bytes in From (iso-8859-1)")
		}
	case BadDate:
		v := fmt.Sprintf("%s, %d %s %d %02d:%02d:%02d +%04d", b.at.Format("Mon"), 30+r.IntN(10), b.at.Format("Jan"), b.at.Year(),
			24+r.IntN(6), 60+r.IntN(40), r.IntN(60), 2500+r.IntN(7000))
		b.setHeader("Date", v)
		b.t.Date, b.t.DateSkewSeconds = v, 0
		b.t.Defects = append(b.t.Defects, "unparseable Date header")
	case BadBoundary:
		p := b.root
		if len(p.children[0].children) > 0 && r.IntN(2) == 0 {
			p = p.children[0] // a nested multipart
		}
		if r.IntN(2) == 0 {
			declared := p.boundary[:len(p.boundary)-1] + string("XYZ"[r.IntN(3)])
			ct := strings.Replace(p.get("Content-Type"), p.boundary, declared, 1)
			p.set("Content-Type", ct)
			b.t.Defects = append(b.t.Defects, fmt.Sprintf("broken MIME boundary: Content-Type declares %q but the parts use %q", declared, p.boundary))
		} else {
			p.noClosing = true
			b.t.Defects = append(b.t.Defects, fmt.Sprintf("missing closing MIME boundary %q", p.boundary))
		}
	case BadBase64:
		i := r.IntN(len(b.attParts))
		p := b.attParts[i]
		lines := bytes.Split(p.body, []byte("\n"))
		k := len(lines) / 2
		if len(lines[k]) > 4 {
			cut := r.IntN(len(lines[k]) - 2)
			lines[k] = append(append(bytes.Clone(lines[k][:cut]), "!*"[r.IntN(2)]), lines[k][cut+2:]...)
		} else {
			lines[k] = []byte("%%%")
		}
		p.body = bytes.Join(lines, []byte("\n"))
		b.t.Attachments[i].Damaged = true
		b.t.Defects = append(b.t.Defects, fmt.Sprintf("invalid base64 in attachment %q", b.t.Attachments[i].Name))
	case BadBase64Text:
		// Stray characters in the base64: strict decoders fail, lenient ones that
		// skip them recover the text.
		p := pickOne(r, b.b64Text)
		lines := bytes.Split(p.body, []byte("\n"))
		k := len(lines) / 2
		at := r.IntN(len(lines[k]) + 1)
		lines[k] = append(append(bytes.Clone(lines[k][:at]), pickOne(r, []string{"!", "*", "%", "$$"})...), lines[k][at:]...)
		p.body = bytes.Join(lines, []byte("\n"))
		mt, _, _ := strings.Cut(p.get("Content-Type"), ";")
		b.t.Defects = append(b.t.Defects, fmt.Sprintf("invalid base64 in the %s body (stray characters)", mt))
	case Truncated:
		return true
	}
	return false
}

// truncate cuts the rendered message inside its last attachment, as a transfer
// that broke off would.
func (b *builder) truncate(raw []byte) []byte {
	i := len(b.attParts) - 1
	body := b.attParts[i].body
	if b.c.crlf {
		body = bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))
	}
	at := bytes.LastIndex(raw, body)
	if at < 0 {
		panic("spam: attachment body not found in rendered message")
	}
	cut := at + int(float64(len(body))*(0.2+0.6*b.r.Float64()))
	b.t.Attachments[i].Damaged = true
	b.t.Defects = append(b.t.Defects, fmt.Sprintf("truncated: message ends at byte %d of %d, inside attachment %q", cut, len(raw), b.t.Attachments[i].Name))
	return raw[:cut]
}

func (b *builder) removeHeader(name string) {
	out := b.root.headers[:0]
	for _, h := range b.root.headers {
		if !strings.EqualFold(h.name, name) {
			out = append(out, h)
		}
	}
	b.root.headers = out
}

// setHeader replaces the spammer's header (never a trace header of the same name).
func (b *builder) setHeader(name, value string) {
	for i := len(b.root.headers) - 1; i >= 0; i-- {
		if strings.EqualFold(b.root.headers[i].name, name) {
			b.root.headers[i].value = value
			return
		}
	}
}
