package feeds

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// MISP warninglists (github.com/MISP/misp-warninglists, lists/*/list.json) are
// one JSON object: name, version, description, type, matching_attributes and
// list, the entries. The type says how MISP matches an entry, and so what TIP
// can take from it, since TIP matches allowlists by domain and address range:
//
//   - cidr: addresses and blocks.
//   - hostname: domain names (MISP matches the name and its subdomains).
//   - string: exact values of any kind; addresses, blocks and domain names are
//     kept, the rest (hashes, e-mail addresses, user agents) dropped as "other".
//   - substring: an entry that is a domain name once its leading "*" and "." are
//     cut (".amazonaws.com") is kept as that domain; the others are dropped as
//     "substring": matching any part of any indicator is not what an allowlist of
//     TIP does.
//   - regex: refused as a whole. A pattern cannot be stored as a domain or a
//     range, and applying it to every listed indicator would make each export
//     scan every pattern.
//
// The members come in any order (MISP writes them sorted, list before type), so
// the body is spooled to a temporary file and read twice: once for the type,
// once for the entries. Memory stays bounded as for the other JSON formats.

// mispMembers are the members of a warninglist TIP reads.
var mispMembers = []string{"type", "list"}

func mispWarninglist(p *parser, br *bufio.Reader) error {
	tmp, err := os.CreateTemp("", "tip-warninglist-*.json")
	if err != nil {
		return fmt.Errorf("spool warninglist: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, br); err != nil {
		return fmt.Errorf("spool warninglist: %w", err)
	}
	read := func(entry func(string) error) (string, bool, error) {
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return "", false, fmt.Errorf("read warninglist: %w", err)
		}
		return p.mispWalk(bufio.NewReaderSize(tmp, maxLine), entry)
	}
	typ, hasList, err := read(nil)
	if err != nil {
		return err
	}
	var entry func(string) error
	switch typ {
	case "cidr":
		entry = func(s string) error { return p.mispAdd(CIDR, s) }
	case "hostname":
		entry = func(s string) error { return p.mispAdd(Domain, s) }
	case "string":
		entry = func(s string) error {
			if isAddressOrBlock(s) {
				return p.mispAdd(CIDR, s)
			}
			if _, _, err := Normalize(Domain, s); err == nil && strings.Contains(s, ".") {
				return p.mispAdd(Domain, s)
			}
			p.st.Dropped["other"]++
			return nil
		}
	case "substring":
		entry = func(s string) error {
			name := strings.TrimLeft(s, "*.")
			if _, _, err := Normalize(Domain, name); err == nil && strings.Contains(name, ".") && !isAddressOrBlock(name) {
				return p.mispAdd(Domain, name)
			}
			p.st.Dropped["substring"]++
			return nil
		}
	case "regex":
		return errors.New("a regex warninglist: TIP matches allowlists by domain and address range, not by pattern; use a hostname, string or cidr list")
	case "":
		return fmt.Errorf("%w: a MISP warninglist without a type", ErrMalformed)
	default:
		return fmt.Errorf("%w: warninglist type %q (want string, substring, hostname, cidr or regex)", ErrMalformed, textcapShort(typ))
	}
	if !hasList {
		return fmt.Errorf("%w: a MISP warninglist without a list", ErrMalformed)
	}
	_, _, err = read(entry)
	return err
}

// textcapShort quotes at most a few dozen bytes of an unexpected value.
func textcapShort(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func isAddressOrBlock(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// mispAdd emits one entry; an entry that does not read as its type is a bad
// line. Only the emit callback's error comes back.
func (p *parser) mispAdd(t Type, s string) error {
	err := p.add(t, s, Indicator{})
	if err != nil && !errors.As(err, new(emitError)) {
		p.bad(err.Error(), s)
		return nil
	}
	return err
}

// mispWalk reads a warninglist object: it returns its type and whether it has a
// list, and calls entry (when not nil) for every string of the list, each entry
// counted as a line. A list element that is not a string, or breaks a limit of
// jsonReader, is a bad line; broken JSON is a malformed body.
func (p *parser) mispWalk(br *bufio.Reader, entry func(string) error) (typ string, hasList bool, err error) {
	j := &jsonReader{r: br}
	if b, _ := br.Peek(len(bom)); bytes.Equal(b, bom) {
		br.Discard(len(bom)) //nolint:errcheck // the bytes are buffered
	}
	malformed := func(err error) error {
		var re recordError
		if errors.As(err, new(emitError)) {
			return err
		}
		if errors.As(err, &re) || errors.Is(err, errJSONSyntax) || err == io.EOF {
			return fmt.Errorf("%w: MISP warninglist: %v", ErrMalformed, j.eof(err))
		}
		return fmt.Errorf("read warninglist: %w", err)
	}
	c, err := j.space()
	if err != nil || c != '{' {
		return "", false, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	j.skip1()
	j.depth = 1
	if c, err = j.space(); err != nil {
		return "", false, malformed(err)
	}
	for c != '}' {
		if c != '"' {
			return "", false, malformed(j.syntax("want a member name, found %q", c))
		}
		j.base, j.start = j.depth, j.off
		i, err := j.name(mispMembers)
		if err != nil {
			return "", false, malformed(err)
		}
		if c, err = j.space(); err != nil || c != ':' {
			return "", false, malformed(j.syntax("want ':' after a member name"))
		}
		j.skip1()
		switch i {
		case 0:
			v, err := j.value(true)
			if err != nil {
				return "", false, malformed(err)
			}
			if typ, err = v.str("type"); err != nil {
				return "", false, malformed(err)
			}
		case 1:
			hasList = true
			if err := p.mispList(j, entry); err != nil {
				return "", false, malformed(err)
			}
		default:
			if _, err := j.value(false); err != nil {
				return "", false, malformed(err)
			}
		}
		if c, err = j.space(); err != nil {
			return "", false, malformed(err)
		}
		switch c {
		case ',':
			j.skip1()
			if c, err = j.space(); err != nil {
				return "", false, malformed(err)
			}
			if c == '}' {
				return "", false, malformed(j.syntax("a ',' before '}'"))
			}
		case '}':
		default:
			return "", false, malformed(j.syntax("want ',' or '}' after a member, found %q", c))
		}
	}
	j.close()
	if _, err := j.space(); err != io.EOF {
		return "", false, malformed(j.syntax("data after the object"))
	}
	return typ, hasList, nil
}

// mispList reads the list array, each element bounded on its own.
func (p *parser) mispList(j *jsonReader, entry func(string) error) error {
	c, err := j.space()
	if err != nil {
		return err
	}
	if c != '[' {
		return recordError("list is not an array")
	}
	j.skip1()
	j.depth++
	if c, err = j.space(); err != nil {
		return err
	}
	for c != ']' {
		j.base, j.start = j.depth, j.off
		v, err := j.value(entry != nil)
		if entry != nil {
			p.lineNo++
			p.st.Lines++
		}
		var re recordError
		switch {
		case errors.As(err, &re):
			if entry != nil {
				p.bad(re.Error(), "")
			}
			if err := j.skipRecord(); err != nil {
				return err
			}
		case err != nil:
			return err
		case entry == nil:
		case v.kind != jsonString:
			p.bad(fmt.Sprintf("an entry that is %s, want a string", v.describe()), "")
		case strings.TrimSpace(v.text) == "":
			p.st.Blank++
		default:
			if err := entry(strings.TrimSpace(v.text)); err != nil {
				return err
			}
		}
		if c, err = j.space(); err != nil {
			return err
		}
		switch c {
		case ',':
			j.skip1()
			if c, err = j.space(); err != nil {
				return err
			}
			if c == ']' {
				return j.syntax("a ',' before ']'")
			}
		case ']':
		default:
			return j.syntax("want ',' or ']' after an entry, found %q", c)
		}
	}
	j.close()
	return nil
}
