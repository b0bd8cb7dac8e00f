package feeds

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Limits of the JSON formats. Their records are flat objects of short strings and
// numbers (an address, a port, a malware family, an AS name); the limits leave
// room for fields a publisher adds, while no record makes Parse hold more than a
// few kilobytes whatever the body. encoding/json cannot give this: its Decoder
// reads a whole value, and a whole string, before looking at it.
const (
	// maxJSONRecord bounds one record, as maxLine bounds one line.
	maxJSONRecord = maxLine
	// maxJSONToken bounds a string (escapes counted as written), a number or a
	// literal; a longer one is read through without being kept.
	maxJSONToken = 8 << 10
	// maxJSONDepth bounds the nesting of objects and arrays; the record itself is
	// at depth 1.
	maxJSONDepth = 16
)

// errJSONSyntax is a body that is not JSON: no record boundary can be found
// after it.
var errJSONSyntax = errors.New("bad JSON")

// recordError is a record that breaks a limit or holds a value of the wrong kind.
// The reader stops between two tokens, so the rest of the record can be skipped
// and the next one read.
type recordError string

func (e recordError) Error() string { return string(e) }

// Kinds of jsonValue.
const (
	jsonNull   = 0 // null, or the member is absent
	jsonString = 's'
	jsonNumber = 'n'
	jsonBool   = 'b'
	jsonNested = 'o' // an object or array, never kept
)

// jsonValue is a member of a record: its kind, and the text of a string (decoded)
// or a number (as written).
type jsonValue struct {
	kind byte
	text string
}

func (v jsonValue) describe() string {
	switch v.kind {
	case jsonString:
		return "a string"
	case jsonNumber:
		return "a number"
	case jsonBool:
		return "a boolean"
	case jsonNested:
		return "an object or array"
	}
	return "null"
}

// str is a string member; null or absent is "".
func (v jsonValue) str(name string) (string, error) {
	if v.kind != jsonString && v.kind != jsonNull {
		return "", recordError(fmt.Sprintf("%s is %s, want a string", name, v.describe()))
	}
	return v.text, nil
}

// num is a number member, also when written as a string ("443"); null or absent
// is "".
func (v jsonValue) num(name string) (string, error) {
	switch v.kind {
	case jsonNull:
		return "", nil
	case jsonNumber:
		return v.text, nil
	case jsonString:
		if isJSONNumber([]byte(v.text)) {
			return v.text, nil
		}
	}
	return "", recordError(fmt.Sprintf("%s is %s, want a number", name, v.describe()))
}

// jsonReader reads JSON records token by token. It keeps at most maxJSONToken
// bytes of a token and a few counters, so its memory does not grow with what it
// reads: an over-long string is read through and reported, never held.
type jsonReader struct {
	r     *bufio.Reader
	off   int64  // bytes read
	start int64  // offset of the current record
	depth int    // objects and arrays open
	base  int    // depth outside the current record
	tok   []byte // the last string or literal as written, when it fit
}

// syntax is an errJSONSyntax at the current offset.
func (j *jsonReader) syntax(format string, args ...any) error {
	return fmt.Errorf("%w: %s at byte %d", errJSONSyntax, fmt.Sprintf(format, args...), j.off)
}

// eof turns the end of the body inside JSON into a syntax error; other read
// errors stay as they are.
func (j *jsonReader) eof(err error) error {
	if err == io.EOF {
		return j.syntax("unexpected end")
	}
	return err
}

// skip1 consumes one byte already peeked.
func (j *jsonReader) skip1() {
	j.r.Discard(1) //nolint:errcheck // the byte is buffered
	j.off++
}

// space skips white space and returns the next byte without consuming it; at the
// end of the body it returns io.EOF.
func (j *jsonReader) space() (byte, error) {
	for {
		if _, err := j.r.Peek(1); err != nil {
			return 0, err
		}
		buf, _ := j.r.Peek(j.r.Buffered())
		n := 0
		for n < len(buf) && (buf[n] == ' ' || buf[n] == '\t' || buf[n] == '\r' || buf[n] == '\n') {
			n++
		}
		var next byte
		if n < len(buf) {
			next = buf[n]
		}
		j.r.Discard(n) //nolint:errcheck // the bytes are buffered
		j.off += int64(n)
		if n < len(buf) {
			return next, nil
		}
	}
}

// open consumes the '{' or '[' peeked and checks the record's depth.
func (j *jsonReader) open() error {
	j.skip1()
	j.depth++
	if j.depth-j.base > maxJSONDepth {
		return recordError(fmt.Sprintf("nested deeper than %d levels", maxJSONDepth))
	}
	return nil
}

// close consumes the '}' or ']' peeked.
func (j *jsonReader) close() {
	j.skip1()
	j.depth--
}

// record reads one record, which must be an object, and keeps in vals[i] the
// member named names[i] (compared without case, as encoding/json does; at most
// 64 names). A value other than an object is a recordError.
func (j *jsonReader) record(names []string, vals []jsonValue) error {
	clear(vals)
	j.base, j.start = j.depth, j.off
	c, err := j.space()
	if err != nil {
		return j.eof(err)
	}
	if c != '{' {
		v, err := j.value(false)
		if err != nil {
			return err
		}
		return recordError(fmt.Sprintf("%s, not an object", v.describe()))
	}
	if err := j.open(); err != nil {
		return err
	}
	return j.members(names, vals)
}

// members reads an object's members after its '{', through its '}'. A member
// named twice is a recordError: JSON readers disagree on which one counts.
func (j *jsonReader) members(names []string, vals []jsonValue) error {
	var seen uint64 // bit i: names[i] was read
	c, err := j.space()
	if err != nil {
		return j.eof(err)
	}
	if c == '}' {
		j.close()
		return nil
	}
	for {
		if c != '"' {
			return j.syntax("want a member name, found %q", c)
		}
		i, err := j.name(names)
		if err != nil {
			return err
		}
		if c, err = j.space(); err != nil {
			return j.eof(err)
		}
		if c != ':' {
			return j.syntax("want ':' after a member name, found %q", c)
		}
		j.skip1()
		v, err := j.value(i >= 0)
		if err != nil {
			return err
		}
		if i >= 0 {
			if seen&(1<<i) != 0 {
				return recordError(fmt.Sprintf("%s given twice", names[i]))
			}
			seen |= 1 << i
			vals[i] = v
		}
		if c, err = j.space(); err != nil {
			return j.eof(err)
		}
		switch c {
		case ',':
			j.skip1()
			if c, err = j.space(); err != nil {
				return j.eof(err)
			}
		case '}':
			j.close()
			return nil
		default:
			return j.syntax("want ',' or '}' after a member, found %q", c)
		}
	}
}

// name reads a member name and returns its index in names, or -1.
func (j *jsonReader) name(names []string) (int, error) {
	if j.off-j.start > maxJSONRecord {
		return -1, recordError(fmt.Sprintf("record longer than %d bytes", maxJSONRecord))
	}
	long, err := j.token(true)
	if err != nil {
		return -1, err
	}
	if long {
		return -1, recordError(fmt.Sprintf("a member name longer than %d bytes", maxJSONToken))
	}
	name, plain := j.plain()
	if !plain {
		s, ok := unquote(j.tok)
		if !ok {
			return -1, recordError("a member name with a bad escape or a control character")
		}
		name = []byte(s)
	}
	for i, n := range names {
		if bytes.EqualFold([]byte(n), name) {
			return i, nil
		}
	}
	return -1, nil
}

// plain returns the string in j.tok without its quotes, and says whether it
// reads as it is written: valid UTF-8, no escape, no control character.
func (j *jsonReader) plain() ([]byte, bool) {
	raw := j.tok[1 : len(j.tok)-1]
	for _, c := range raw {
		if c < 0x20 || c == '\\' {
			return raw, false
		}
	}
	return raw, utf8.Valid(raw)
}

// unquote decodes a JSON string with escapes, replacing invalid UTF-8 as
// encoding/json does.
func unquote(tok []byte) (string, bool) {
	var s string
	err := json.Unmarshal(tok, &s)
	return s, err == nil
}

// elements reads an array's elements after its '[', through its ']'.
func (j *jsonReader) elements() error {
	c, err := j.space()
	if err != nil {
		return j.eof(err)
	}
	if c == ']' {
		j.close()
		return nil
	}
	for {
		if _, err := j.value(false); err != nil {
			return err
		}
		if c, err = j.space(); err != nil {
			return j.eof(err)
		}
		switch c {
		case ',':
			j.skip1()
		case ']':
			j.close()
			return nil
		default:
			return j.syntax("want ',' or ']' after an element, found %q", c)
		}
	}
}

// value reads one value; keep says to keep the text of a string or number.
// Nesting is bounded by maxJSONDepth, and so is the recursion.
func (j *jsonReader) value(keep bool) (jsonValue, error) {
	if j.off-j.start > maxJSONRecord {
		return jsonValue{}, recordError(fmt.Sprintf("record longer than %d bytes", maxJSONRecord))
	}
	c, err := j.space()
	if err != nil {
		return jsonValue{}, j.eof(err)
	}
	switch c {
	case '"':
		long, err := j.token(true)
		if err != nil {
			return jsonValue{}, err
		}
		if long {
			return jsonValue{}, recordError(fmt.Sprintf("a string longer than %d bytes", maxJSONToken))
		}
		v := jsonValue{kind: jsonString}
		raw, plain := j.plain()
		switch {
		case plain && keep:
			v.text = string(raw)
		case plain:
		case keep:
			var ok bool
			if v.text, ok = unquote(j.tok); !ok {
				return jsonValue{}, recordError("a string with a bad escape or a control character")
			}
		case !json.Valid(j.tok):
			return jsonValue{}, recordError("a string with a bad escape or a control character")
		}
		return v, nil
	case '{', '[':
		if err := j.open(); err != nil {
			return jsonValue{}, err
		}
		if c == '{' {
			err = j.members(nil, nil)
		} else {
			err = j.elements()
		}
		return jsonValue{kind: jsonNested}, err
	}
	long, err := j.token(false)
	if err != nil {
		return jsonValue{}, err
	}
	if long {
		return jsonValue{}, recordError(fmt.Sprintf("a number or literal longer than %d bytes", maxJSONToken))
	}
	switch string(j.tok) {
	case "null":
		return jsonValue{}, nil
	case "true", "false":
		return jsonValue{kind: jsonBool}, nil
	}
	if !isJSONNumber(j.tok) {
		return jsonValue{}, j.syntax("want a value, found %q", c)
	}
	v := jsonValue{kind: jsonNumber}
	if keep {
		v.text = string(j.tok)
	}
	return v, nil
}

// isJSONNumber says whether b is a JSON number.
func isJSONNumber(b []byte) bool {
	return len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9') && json.Valid(b)
}

// token reads the string (quoted) or the literal (a number, true, false, null)
// that comes next into j.tok, as written, unless it is longer than maxJSONToken:
// then it reads it through, keeping nothing more, and says so. It scans the
// reader's buffer a chunk at a time.
func (j *jsonReader) token(quoted bool) (long bool, err error) {
	j.tok = j.tok[:0]
	size, escaped := 0, false
	if quoted {
		j.tok = append(j.tok, '"')
		j.skip1()
		size = 1
	}
	for {
		if _, err := j.r.Peek(1); err != nil {
			if err == io.EOF && !quoted && size > 0 {
				break // a literal that ends the body
			}
			return false, j.eof(err)
		}
		buf, _ := j.r.Peek(j.r.Buffered())
		n, done := 0, false
		for ; n < len(buf) && !done; n++ {
			c := buf[n]
			switch {
			case !quoted:
				if !isLiteral(c) {
					done = true
					n-- // not part of the token
				}
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				done = true
			}
		}
		if size+n <= maxJSONToken+2 { // with the quotes
			j.tok = append(j.tok, buf[:n]...)
		}
		size += n
		j.r.Discard(n) //nolint:errcheck // the bytes are buffered
		j.off += int64(n)
		if done {
			break
		}
	}
	if quoted {
		return size > maxJSONToken+2, nil
	}
	if size == 0 {
		c, _ := j.r.Peek(1)
		return false, j.syntax("want a value, found %q", c)
	}
	return size > maxJSONToken, nil
}

// isLiteral says whether c can be part of a number, true, false or null. A run of
// them is read as one token and checked whole.
func isLiteral(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '+' || c == '.'
}

// skipRecord reads through the rest of a record that broke a limit, keeping
// nothing: only strings and brackets matter, and a depth counter is all it holds
// however deep the record nests.
func (j *jsonReader) skipRecord() error {
	for j.depth > j.base {
		if _, err := j.r.Peek(1); err != nil {
			return j.eof(err)
		}
		buf, _ := j.r.Peek(j.r.Buffered())
		n, quote := 0, false
	scan:
		for ; n < len(buf) && j.depth > j.base; n++ {
			switch buf[n] {
			case '"':
				quote = true
				break scan
			case '{', '[':
				j.depth++
			case '}', ']':
				j.depth--
			}
		}
		j.r.Discard(n) //nolint:errcheck // the bytes are buffered
		j.off += int64(n)
		if quote {
			if _, err := j.token(true); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonLine reads a line of a format with one JSON object a line into p.jsonVals,
// keeping the members named in names; anything after the object is an error.
func (p *parser) jsonLine(line string, names []string) ([]jsonValue, error) {
	if p.json == nil {
		p.jsonSrc = new(strings.Reader)
		p.json = &jsonReader{r: bufio.NewReader(p.jsonSrc)}
	}
	p.jsonSrc.Reset(line)
	p.json.r.Reset(p.jsonSrc)
	p.json.off, p.json.depth = 0, 0
	if cap(p.jsonVals) < len(names) {
		p.jsonVals = make([]jsonValue, len(names))
	}
	vals := p.jsonVals[:len(names)]
	if err := p.json.record(names, vals); err != nil {
		return nil, err
	}
	if _, end := p.json.space(); end != io.EOF {
		return nil, p.json.syntax("data after the object")
	}
	return vals, nil
}
