package feeds

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tip-project/tip/textcap"
)

// maxLine bounds a line; a longer one is counted bad and skipped.
const maxLine = 64 << 10

// badSamples bad lines are kept as samples, of at most maxSample bytes each.
const (
	badSamples = 5
	maxSample  = 200
)

// format is one feed layout: comment prefixes and a function per data line, or a
// whole-body parser for layouts that are not line-based.
type format struct {
	name, desc string
	typ        Type
	comments   []string
	line       func(p *parser, line string) error
	body       func(p *parser, r *bufio.Reader) error
}

// parser is the state of one Parse call.
type parser struct {
	opts   Options
	st     *Stats
	emit   func(Indicator) error
	lineNo int
	// cols maps a header's column names to their positions, so a feed whose
	// columns moved still parses.
	cols map[string]int
	// header is set once the generic parser skipped its header row.
	header bool
	fields []string
	// json reads the lines of a format with one JSON object a line.
	json     *jsonReader
	jsonSrc  *strings.Reader
	jsonVals []jsonValue
}

// errHeader marks a data line that is a header, metadata or footer: counted
// with the comments.
var errHeader = errors.New("header")

// emitError carries the callback's error out of a line function: fatal.
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }

// Parse reads one feed body in the named format and calls emit for every
// normalised indicator, in feed order. It streams: memory does not grow with the
// body (urlhaus-csv-zip spools the archive to a temporary file, since a ZIP is
// read from its end). Entries are not deduplicated. Parse fails with
// ErrMalformed for an HTML page, or when more than opts.MaxBadShare of the data
// lines are bad; an error from emit stops it and is returned as is. An
// ErrMalformed error after bad lines names their count and quotes
// Stats.BadSample, so a caller need not add them; its text stays within a couple
// of kilobytes.
func Parse(format string, r io.Reader, opts Options, emit func(Indicator) error) (Stats, error) {
	st := Stats{Dropped: map[string]int{}}
	f, err := lookup(format)
	if err != nil {
		return st, err
	}
	if opts.MaxBadShare <= 0 {
		opts.MaxBadShare = 0.05
	}
	if f.name == "generic" {
		if opts.Type == "" {
			return st, errors.New("generic format needs an indicator type")
		}
		switch opts.Type {
		case IPv4, IPv6, CIDR, "ip", ASN, Domain, URL, SHA1, SHA256, MD5:
		default:
			return st, fmt.Errorf("unknown indicator type %q", opts.Type)
		}
	}
	p := &parser{opts: opts, st: &st, emit: emit}
	br := bufio.NewReaderSize(r, maxLine)
	if isHTML(br) {
		return st, fmt.Errorf("%w: an HTML page, not a %s feed", ErrMalformed, format)
	}
	if f.body != nil {
		err = f.body(p, br)
	} else {
		err = p.lines(f, br)
	}
	if err != nil {
		var ee emitError
		if errors.As(err, &ee) {
			return st, ee.err
		}
		if errors.Is(err, ErrMalformed) && st.Bad > 0 {
			err = fmt.Errorf("%w; %d bad lines before: %s", err, st.Bad, strings.Join(st.BadSample, "; "))
		}
		return st, err
	}
	return st, p.verdict()
}

// verdict fails a parse with too many bad lines.
func (p *parser) verdict() error {
	st := p.st
	data := st.Lines - st.Comments - st.Blank
	if data > 0 && float64(st.Bad)/float64(data) > p.opts.MaxBadShare {
		return fmt.Errorf("%w: %d of %d data lines bad (%.1f%%, over %.1f%%): %s", ErrMalformed, st.Bad, data,
			100*float64(st.Bad)/float64(data), 100*p.opts.MaxBadShare, strings.Join(st.BadSample, "; "))
	}
	return nil
}

// isHTML peeks at the body's first non-blank bytes.
func isHTML(br *bufio.Reader) bool {
	b, _ := br.Peek(512)
	b = bytes.TrimPrefix(b, bom)
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) > 16 {
		b = b[:16]
	}
	b = bytes.ToLower(b)
	return bytes.HasPrefix(b, []byte("<!doctype html")) || bytes.HasPrefix(b, []byte("<html")) ||
		bytes.HasPrefix(b, []byte("<head")) || bytes.HasPrefix(b, []byte("<body"))
}

var bom = []byte("\ufeff")

// lines runs a line-based format over a body.
func (p *parser) lines(f *format, br *bufio.Reader) error {
	comments := f.comments
	if f.name == "generic" {
		comments = []string{"#"}
		if p.opts.CommentPrefix != "" {
			comments = []string{p.opts.CommentPrefix}
		}
	}
	for {
		b, err := br.ReadSlice('\n')
		tooLong := false
		for err == bufio.ErrBufferFull {
			tooLong = true
			_, err = br.ReadSlice('\n')
		}
		if len(b) == 0 && !tooLong && err == io.EOF {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read line %d: %w", p.lineNo+1, err)
		}
		p.lineNo++
		p.st.Lines++
		switch {
		case tooLong:
			p.bad(fmt.Sprintf("line longer than %d bytes", maxLine), "")
		case err == io.EOF && !p.opts.AllowUnterminated && p.isData(comments, b):
			// A body that stops mid-line was most likely cut: "2a06:ad7d::148a:3d9b"
			// cut to "2a06:ad7d::148a" is still an address, but not the one listed.
			p.bad("the body ends in the middle of this line (truncated?)", string(bytes.TrimSpace(b)))
		default:
			if lerr := p.one(f, comments, b); lerr != nil {
				return lerr
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// isData says whether a line is neither blank nor a comment.
func (p *parser) isData(comments []string, b []byte) bool {
	if p.lineNo == 1 {
		b = bytes.TrimPrefix(b, bom)
	}
	line := string(bytes.TrimSpace(b))
	if line == "" {
		return false
	}
	for _, c := range comments {
		if strings.HasPrefix(line, c) {
			return false
		}
	}
	return true
}

// one handles one line: blank, comment, or data.
func (p *parser) one(f *format, comments []string, b []byte) error {
	if p.lineNo == 1 {
		b = bytes.TrimPrefix(b, bom)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		p.st.Blank++
		return nil
	}
	line := string(b)
	for _, c := range comments {
		if strings.HasPrefix(line, c) {
			p.st.Comments++
			p.comment(strings.TrimSpace(line[len(c):]))
			return nil
		}
	}
	err := f.line(p, line)
	switch {
	case err == nil:
	case errors.Is(err, errHeader):
		p.st.Comments++
	case errors.As(err, new(emitError)):
		return err
	default:
		p.bad(err.Error(), line)
	}
	return nil
}

// comment learns columns from a header written as a comment
// ("# id,dateadded,url,...").
func (p *parser) comment(c string) {
	if strings.Count(c, ",") >= 2 && !strings.ContainsAny(c, " :") {
		p.learn(splitCSV(c, nil))
	}
}

// learn records a header row's column names, lower-case.
func (p *parser) learn(fields []string) {
	p.cols = make(map[string]int, len(fields))
	for i, f := range fields {
		p.cols[strings.ToLower(strings.TrimSpace(f))] = i
	}
}

// col is the position of a named column, or def before any header was seen.
func (p *parser) col(name string, def int) int {
	if i, ok := p.cols[name]; ok {
		return i
	}
	return def
}

// bad counts a bad line and keeps the first few as samples, each cut to
// maxSample bytes: a sample quotes hostile input, and it ends up in errors,
// database rows and workflow payloads.
func (p *parser) bad(why, line string) {
	p.st.Bad++
	if len(p.st.BadSample) >= badSamples {
		return
	}
	s := fmt.Sprintf("line %d: %s", p.lineNo, textcap.Cap(why, maxSample/2))
	if line != "" && !strings.Contains(why, line) {
		s += fmt.Sprintf(" (%q)", textcap.Cap(line, maxSample/4))
	}
	p.st.BadSample = append(p.st.BadSample, textcap.Cap(s, maxSample))
}

// add normalises a value and emits it with the context in extra, or counts why
// it was dropped; an invalid value is the line's error.
func (p *parser) add(t Type, raw string, extra Indicator) error {
	ind, drop, err := Normalize(t, raw)
	if err != nil {
		return err
	}
	if drop != "" && !(drop == "public-suffix" && p.opts.KeepPublicSuffix) {
		p.st.Dropped[drop]++
		return nil
	}
	ind.Port, ind.Malware, ind.Ref = textcap.Cap(extra.Port, maxContext), textcap.Cap(extra.Malware, maxContext), textcap.Cap(extra.Ref, maxContext)
	ind.Category, ind.Listed = textcap.Cap(extra.Category, maxContext), extra.Listed
	if err := p.emit(ind); err != nil {
		return emitError{err}
	}
	p.st.Indicators++
	return nil
}

// splitCSV splits one CSV line into dst, honouring double quotes and "" escapes.
// An unterminated quote keeps the rest of the line as the last field.
func splitCSV(line string, dst []string) []string {
	dst = dst[:0]
	for {
		if strings.HasPrefix(line, `"`) {
			var b strings.Builder
			i := 1
			for i < len(line) {
				c := line[i]
				if c == '"' {
					if i+1 < len(line) && line[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			dst = append(dst, b.String())
			line = line[i:]
			j := strings.IndexByte(line, ',')
			if j < 0 {
				return dst
			}
			line = line[j+1:]
			continue
		}
		j := strings.IndexByte(line, ',')
		if j < 0 {
			return append(dst, strings.TrimSpace(line))
		}
		dst = append(dst, strings.TrimSpace(line[:j]))
		line = strings.TrimLeft(line[j+1:], " ")
	}
}

// field is fields[i] trimmed, or "" when the row is shorter.
func field(fields []string, i int) string {
	if i < 0 || i >= len(fields) {
		return ""
	}
	return strings.TrimSpace(fields[i])
}

// maxContext bounds each context field an entry carries (malware, port,
// reference, category): a feed's field is hostile input, and it is stored
// with every listing.
const maxContext = 256

// feedTime reads the time a feed says an entry was listed: abuse.ch's
// "2006-01-02 15:04:05" (UTC) or RFC 3339 (PhishTank). Anything else, or a
// time before 1990 or more than a day ahead, is no time: the context is
// optional, the entry is not bad for it.
func feedTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	var t time.Time
	var err error
	for _, layout := range []string{"2006-01-02 15:04:05", time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05Z07:00", "2006-01-02"} {
		if t, err = time.Parse(layout, s); err == nil {
			break
		}
	}
	if err != nil || t.Year() < 1990 || t.After(time.Now().Add(24*time.Hour)) {
		return time.Time{}
	}
	return t.UTC()
}

// category reads a feed's per-entry category as TIP writes categories:
// lower case, words joined by "-" (URLhaus's malware_download: malware-download).
func category(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
}
