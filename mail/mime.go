package mail

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"
)

// entity walks one MIME entity: multiparts into their parts, attached messages
// into their own entities, leaves into body texts or attachments. within is ""
// for the message's own bodies and SourceAttachment inside an attachment.
func (x *extractor) entity(h header, body []byte, depth int, within string) {
	x.parts++
	if x.parts > x.lim.MaxParts {
		x.defectOnce("max-parts", "more than %d MIME parts: the rest are not read", x.lim.MaxParts)
		return
	}
	if depth > x.lim.MaxDepth {
		x.defectOnce("max-depth", "MIME nesting deeper than %d: deeper parts are not read", x.lim.MaxDepth)
		return
	}
	mt, params := x.mediaType(h)
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		x.skel("[" + strings.TrimPrefix(mt, "multipart/"))
		x.multipart(mt, params["boundary"], body, depth, within)
		x.skel("]")
	case mt == "message/rfc822" || mt == "message/global":
		data := x.decode(h, body, mt)
		_, name := x.disposition(h, params)
		x.attachment(name, mt, params, data, true)
		x.skel("m")
		// Its own line ends may be bare CRs where a transfer encoding hid them.
		nh, nbody := x.readHeader(crToLF(data), false)
		x.entity(nh, nbody, depth+1, SourceAttachment)
	default:
		x.leaf(h, mt, params, body, within)
	}
}

// mediaType parses Content-Type, falling back to a lenient reading of values
// mime refuses (duplicate or unquoted parameters are common in spam).
func (x *extractor) mediaType(h header) (string, map[string]string) {
	v, ok := h.first("Content-Type")
	if !ok || strings.TrimSpace(v) == "" {
		return "text/plain", nil
	}
	mt, params, err := parseMediaType(v)
	if err != nil {
		mt, params = lenientParams(v)
		x.defect("malformed Content-Type %q: read leniently", clip(v, 80))
	}
	mt = strings.ToLower(mt)
	if !strings.Contains(mt, "/") {
		x.defect("Content-Type %q has no subtype: read as text/plain", clip(v, 80))
		return "text/plain", params
	}
	return mt, params
}

// parseMediaType is mime.ParseMediaType, with the common plain forms ("type/sub;
// key=token; key="quoted"") read without its cost.
func parseMediaType(v string) (string, map[string]string, error) {
	if mt, params, ok := plainMediaType(v); ok {
		return mt, params, nil
	}
	return mime.ParseMediaType(v)
}

// plainMediaType reads v as mime.ParseMediaType does when v is printable ASCII,
// its type a token or token/token, and each parameter a token key (no RFC 2231
// "*") set once to a token or a quoted string without escapes or ";"; ok is
// false for anything else.
func plainMediaType(v string) (mt string, params map[string]string, ok bool) {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < '!' || c > '~') && c != ' ' && c != '\t' || c == '\\' || c == '*' {
			return "", nil, false
		}
	}
	base, rest, more := strings.Cut(v, ";")
	mt = strings.ToLower(trimBlanks(base))
	typ, sub, slash := strings.Cut(mt, "/")
	if !isToken(typ) || slash && !isToken(sub) {
		return "", nil, false
	}
	params = map[string]string{}
	for more {
		var p string
		p, rest, more = strings.Cut(rest, ";")
		k, val, eq := strings.Cut(p, "=")
		k, val = strings.ToLower(trimBlanks(k)), trimBlanks(val)
		if !eq || !isToken(k) {
			return "", nil, false
		}
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' && strings.IndexByte(val[1:len(val)-1], '"') < 0 {
			val = val[1 : len(val)-1]
		} else if !isToken(val) {
			return "", nil, false
		}
		if _, dup := params[k]; dup {
			return "", nil, false
		}
		params[k] = val
	}
	return mt, params, true
}

// isToken: RFC 2045 token characters, at least one.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// lenientParams splits "type; a=b; c="d"" without mime's strictness.
func lenientParams(v string) (string, map[string]string) {
	parts := strings.Split(v, ";")
	mt := strings.ToLower(strings.TrimSpace(parts[0]))
	params := map[string]string{}
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.Trim(strings.TrimSpace(val), `"'`)
		if _, dup := params[k]; !dup && k != "" {
			params[k] = val
		}
	}
	return mt, params
}

// multipart reads the parts of a multipart body. A boundary that does not match
// the parts, or none at all, is recovered from the body's first delimiter line.
//
// Parts are split here on the bytes rather than by go-message's multipart
// reader, whose header reading has no bound (each header line of a part costs
// it a quarter of a kilobyte or more): each part's header goes through the same
// bounded reader as the message's.
func (x *extractor) multipart(mt, boundary string, body []byte, depth int, within string) {
	if boundary == "" {
		if b := sniffBoundary(body); b != "" {
			x.defect("%s without a boundary parameter: the parts use %q", mt, b)
			boundary = b
		} else {
			x.defect("%s without a boundary parameter or parts", mt)
			x.leaf(nil, "text/plain", nil, body, within)
			return
		}
	}
	parts, closed := splitParts(body, boundary)
	if len(parts) == 0 {
		b := sniffBoundary(body)
		if b == "" || b == boundary {
			x.defect("%s with boundary %q has no parts", mt, boundary)
			x.leaf(nil, "text/plain", nil, body, within)
			return
		}
		x.defect("broken MIME boundary: Content-Type declares %q but the parts use %q", boundary, b)
		boundary = b
		parts, closed = splitParts(body, boundary)
	}
	if !closed {
		x.defect("missing closing MIME boundary %q", boundary)
		x.unclosed = true
	}
	for _, p := range parts {
		ph, pbody := x.readHeader(p, false)
		x.entity(ph, pbody, depth+1, within)
		if x.parts > x.lim.MaxParts {
			return
		}
	}
}

// splitParts returns the parts of a multipart body (RFC 2046 5.1.1): what lies
// between delimiter lines "--boundary", the line break before a delimiter
// belonging to it, up to the closing "--boundary--". Without a closing
// delimiter the last part runs to the end of the body (closed is false).
func splitParts(body []byte, boundary string) (parts [][]byte, closed bool) {
	delim := []byte("--" + boundary)
	start := -1 // where the current part's content starts
	for i := 0; i < len(body); {
		k := bytes.Index(body[i:], delim)
		if k < 0 {
			break
		}
		at := i + k
		i = at + len(delim)
		if at > 0 && body[at-1] != '\n' {
			continue // not at the start of a line
		}
		rest := body[i:]
		final := bytes.HasPrefix(rest, []byte("--"))
		if final {
			rest = rest[2:]
		}
		j := 0
		for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
			j++
		}
		if j < len(rest) && rest[j] != '\r' && rest[j] != '\n' {
			continue // a longer boundary that starts with this one
		}
		if start >= 0 {
			end := at
			if end > start && body[end-1] == '\n' {
				end--
				if end > start && body[end-1] == '\r' {
					end--
				}
			}
			parts = append(parts, body[start:end])
		}
		if final {
			return parts, true
		}
		start = lineEnd(body, at)
		i = start
	}
	if start >= 0 {
		parts = append(parts, body[start:])
	}
	return parts, false
}

// sniffBoundary finds the boundary a multipart body really uses: the first
// "--x" line followed by a header field or an empty line.
func sniffBoundary(body []byte) string {
	for i := 0; i < len(body); {
		end := lineEnd(body, i)
		line := trimEOL(body[i:end])
		if len(line) > 2 && len(line) <= 200 && line[0] == '-' && line[1] == '-' {
			next := trimEOL(body[end:lineEnd(body, end)])
			if len(next) == 0 || fieldName(next) > 0 {
				b := bytes.TrimRight(line[2:], " \t")
				b = bytes.TrimSuffix(b, []byte("--"))
				if len(bytes.TrimSpace(b)) > 0 {
					return string(b)
				}
			}
		}
		i = end
	}
	return ""
}

// leaf handles a part that is not a container.
func (x *extractor) leaf(h header, mt string, params map[string]string, body []byte, within string) {
	disp, name := x.disposition(h, params)
	_, hasCID := h.first("Content-ID")
	isText := mt == "text/plain" || mt == "text/html" || (strings.HasPrefix(mt, "text/") && name == "")
	if name != "" || disp == "attachment" || hasCID || !isText {
		data := x.decode(h, body, mt)
		x.attachment(name, mt, params, data, false)
		x.skel("a")
		return
	}
	data := x.decode(h, body, mt)
	cs := strings.ToLower(strings.Trim(params["charset"], `" `))
	if cs != "" && x.charset == "" && !strings.EqualFold(cs, "us-ascii") {
		x.charset = cs
	}
	text := x.toUTF8(data, cs, mt)
	src := within
	if mt == "text/html" {
		x.skel("h")
		if src == "" {
			src = SourceHTML
		}
		x.html(text, src, within == "")
		return
	}
	x.skel("t")
	if src == "" {
		src = SourceText
	}
	t := string(text)
	x.scanText(t, src)
	if within == "" {
		x.addBodyText(t)
	}
}

// disposition reads Content-Disposition and the part's file name (RFC 2231 and
// RFC 2047 forms decoded), falling back to Content-Type's name.
func (x *extractor) disposition(h header, ctParams map[string]string) (string, string) {
	var disp string
	var params map[string]string
	if v, ok := h.first("Content-Disposition"); ok && strings.TrimSpace(v) != "" {
		var err error
		if disp, params, err = parseMediaType(v); err != nil {
			disp, params = lenientParams(v)
		}
		disp = strings.ToLower(disp)
	}
	name := params["filename"]
	if name == "" {
		name = ctParams["name"]
	}
	if strings.Contains(name, "=?") {
		if d, err := wordDecoder.DecodeHeader(x.lenientWords(name, "file name")); err == nil {
			name = d
		}
	}
	return disp, strings.TrimSpace(name)
}

// decode undoes a part's Content-Transfer-Encoding within the decoded-bytes
// budget, leniently: stray characters in base64 are skipped and reported.
func (x *extractor) decode(h header, body []byte, mt string) []byte {
	cte := strings.ToLower(strings.TrimSpace(h.get("Content-Transfer-Encoding")))
	var out []byte
	switch cte {
	case "base64":
		var stray, short bool
		out, stray, short = decodeBase64(body)
		if stray {
			x.defect("invalid base64 in %s (stray characters)", x.partName(h, mt))
		}
		if short {
			x.defect("base64 in %s ends inside a group: cut short", x.partName(h, mt))
		}
	case "quoted-printable":
		out = decodeQP(body)
	case "", "7bit", "8bit", "binary":
		out = body
	default:
		x.defect("unknown Content-Transfer-Encoding %q in %s: read as is", clip(cte, 40), x.partName(h, mt))
		out = body
	}
	return x.spend(out)
}

// partName names a part in a defect: its file name, or its media type.
func (x *extractor) partName(h header, mt string) string {
	_, params := lenientParams(h.get("Content-Type"))
	if _, name := x.disposition(h, params); name != "" {
		return fmt.Sprintf("attachment %q", name)
	}
	return "the " + mt + " body"
}

// spend takes decoded bytes from the budget; what is over it is dropped.
func (x *extractor) spend(b []byte) []byte {
	left := x.lim.MaxDecoded - x.decoded
	if left <= 0 {
		x.defectOnce("max-decoded", "more than %d decoded bytes: the rest is not read", x.lim.MaxDecoded)
		return nil
	}
	if int64(len(b)) > left {
		x.defectOnce("max-decoded", "more than %d decoded bytes: the rest is not read", x.lim.MaxDecoded)
		b = b[:left]
	}
	x.decoded += int64(len(b))
	return b
}

// toUTF8 converts a text body from its declared charset.
func (x *extractor) toUTF8(data []byte, cs, mt string) []byte {
	if cs == "" || isUTF8Label(cs) {
		return data
	}
	s, err := decodeCharset(data, cs)
	if err != nil {
		x.defect("%s body: %v (read as UTF-8)", mt, err)
		return data
	}
	if grown := int64(len(s) - len(data)); grown > 0 {
		x.decoded += grown // UTF-8 is at most 3 bytes a character: bounded
	}
	return s
}

// attachment records a part that is not a body text, and scans what it holds.
func (x *extractor) attachment(name, mt string, params map[string]string, data []byte, nested bool) {
	sum := sha256.Sum256(data)
	a := Attachment{Name: name, Type: mt, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	if isZip(data) {
		a.Entries = x.zip(name, data)
	}
	x.f.Attachments = append(x.f.Attachments, a)
	if nested {
		return // its own entities are walked as such
	}
	switch kind := scanKind(mt, name); kind {
	case "html":
		cs := strings.ToLower(strings.Trim(params["charset"], `" `))
		x.html(x.toUTF8(data, cs, mt), SourceAttachment, false)
	case "text":
		x.scanText(string(data), SourceAttachment)
	}
}

// scanKind says how to look for URLs in an attachment: as HTML, as text, or not
// at all (images, executables, archives).
func scanKind(mt, name string) string {
	ext := strings.ToLower(path.Ext(name))
	switch ext {
	case ".htm", ".html", ".shtml", ".xhtml", ".hta", ".svg":
		return "html"
	case ".txt", ".pdf", ".rtf", ".doc", ".js", ".jse", ".vbs", ".vbe", ".wsf", ".ps1", ".bat", ".cmd",
		".xml", ".url", ".csv", ".json", ".eml", ".ics":
		return "text"
	}
	switch {
	case mt == "text/html" || mt == "application/xhtml+xml" || mt == "image/svg+xml":
		return "html"
	case strings.HasPrefix(mt, "text/"), mt == "application/pdf", mt == "application/rtf", mt == "application/msword",
		mt == "application/javascript", mt == "application/x-javascript", mt == "application/xml":
		return "text"
	}
	return ""
}

func isZip(b []byte) bool {
	return bytes.HasPrefix(b, []byte("PK\x03\x04")) || bytes.HasPrefix(b, []byte("PK\x05\x06"))
}

// zip lists a zip attachment's entries and scans the ones that can hold a link,
// within the decoded-bytes budget.
func (x *extractor) zip(name string, data []byte) []string {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		x.defect("attachment %q: unreadable zip: %v", name, err)
		return nil
	}
	var entries []string
	for i, zf := range zr.File {
		if i >= x.lim.MaxArchiveEntries {
			x.defect("attachment %q: more than %d zip entries: the rest are not listed", name, x.lim.MaxArchiveEntries)
			break
		}
		entries = append(entries, zf.Name)
		kind := scanKind("", zf.Name)
		if kind == "" || zf.FileInfo().IsDir() {
			continue
		}
		left := x.lim.MaxDecoded - x.decoded
		if left <= 0 {
			x.defectOnce("max-decoded", "more than %d decoded bytes: the rest is not read", x.lim.MaxDecoded)
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			x.defect("attachment %q: zip entry %q: %v", name, zf.Name, err)
			continue
		}
		member, err := io.ReadAll(io.LimitReader(rc, left+1))
		rc.Close()
		if err != nil {
			x.defect("attachment %q: zip entry %q: %v", name, zf.Name, err)
		}
		member = x.spend(member)
		if kind == "html" {
			x.html(member, SourceAttachment, false)
		} else {
			x.scanText(string(member), SourceAttachment)
		}
	}
	return entries
}

// decodeBase64 decodes base64 and reports stray characters, which it skips as
// lenient readers do, and a body cut short inside a 4-character group, which
// it decodes as far as it goes.
func decodeBase64(b []byte) (out []byte, stray, short bool) {
	out = make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	if n, err := base64.StdEncoding.Decode(out, b); err == nil {
		return out[:n], false, false
	}
	clean := make([]byte, 0, len(b))
	out = out[:0]
	flush := func(padded bool) {
		if len(clean)%4 != 0 && !padded {
			short = true
		}
		if len(clean)%4 == 1 {
			clean = clean[:len(clean)-1]
		}
		dst := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
		n, _ := base64.RawStdEncoding.Decode(dst, clean)
		out = append(out, dst[:n]...)
		clean = clean[:0]
	}
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '=':
			if len(clean)%4 != 0 {
				flush(true)
			}
		case c == '\r' || c == '\n' || c == ' ' || c == '\t':
		default:
			stray = true
		}
	}
	flush(false)
	return out, stray, short
}

// decodeQP decodes quoted-printable leniently: a "=" not followed by two hex
// digits or a line end stays as it is.
func decodeQP(b []byte) []byte {
	if bytes.IndexByte(b, '=') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			// Copy up to the next "=" at once.
			j := bytes.IndexByte(b[i:], '=')
			if j < 0 {
				return append(out, b[i:]...)
			}
			out = append(out, b[i:i+j]...)
			i += j - 1
			continue
		}
		rest := b[i+1:]
		switch {
		case len(rest) >= 2 && unhex(rest[0]) >= 0 && unhex(rest[1]) >= 0:
			out = append(out, byte(unhex(rest[0])<<4|unhex(rest[1])))
			i += 2
		case len(rest) >= 1 && rest[0] == '\n':
			i++
		case len(rest) >= 2 && rest[0] == '\r' && rest[1] == '\n':
			i += 2
		default:
			// Soft breaks with trailing spaces: "=  \n".
			j := 0
			for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
				j++
			}
			if j > 0 && j < len(rest) && (rest[j] == '\n' || rest[j] == '\r') {
				i += j
				if rest[j] == '\r' && j+1 < len(rest) && rest[j+1] == '\n' {
					i++
				}
				i++
				continue
			}
			out = append(out, c)
		}
	}
	return out
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// clip shortens s for a defect text.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
