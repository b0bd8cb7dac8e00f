package feeds

import (
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

var hash = []string{"#"}

// The CSVs inside ZIPs.
var (
	urlhausInner = format{name: "urlhaus-csv", comments: hash, line: urlhausCSV}
	trancoInner  = format{name: "tranco-csv", line: tranco}
)

// formats are the layouts Parse knows, named as in the source catalog.
var formats = []format{
	{name: "spamhaus-drop", typ: CIDR, comments: []string{";", "#"}, line: spamhausDrop,
		desc: "Spamhaus DROP text: `CIDR ; SBLid` under `;` comments"},
	{name: "spamhaus-drop-json", typ: CIDR, line: spamhausDropJSON,
		desc: "Spamhaus DROP as one JSON object a line; the metadata line is skipped"},
	{name: "spamhaus-asndrop", typ: ASN, comments: []string{";", "#"}, line: spamhausASNDrop,
		desc: "Spamhaus ASN-DROP text: `ASn ; CC | AS name`"},
	{name: "spamhaus-asndrop-json", typ: ASN, line: spamhausASNDropJSON,
		desc: "Spamhaus ASN-DROP as one JSON object a line; the metadata line is skipped"},
	{name: "feodo-txt", typ: IPv4, comments: hash, line: plain(IPv4),
		desc: "abuse.ch Feodo Tracker IP blocklist: one IP a line under a `#` banner"},
	{name: "feodo-csv", typ: IPv4, comments: hash, line: feodoCSV,
		desc: "abuse.ch Feodo Tracker CSV: first_seen_utc, dst_ip, dst_port, c2_status, last_online, malware"},
	{name: "feodo-json", typ: IPv4, body: feodoJSON,
		desc: "abuse.ch Feodo Tracker JSON array of C2 objects (ip_address, port, malware, ...)"},
	{name: "urlhaus-csv", typ: URL, comments: hash, line: urlhausCSV,
		desc: "abuse.ch URLhaus CSV: header in a comment, fully quoted rows"},
	{name: "urlhaus-text", typ: URL, comments: hash, line: plain(URL),
		desc: "abuse.ch URLhaus text: one URL a line under a `#` banner"},
	{name: "urlhaus-csv-zip", typ: URL, body: zipped(&urlhausInner, "csv.txt"),
		desc: "abuse.ch URLhaus full dump: a ZIP holding the CSV (spooled to a temporary file)"},
	{name: "sslbl-csv", typ: SHA1, comments: hash, line: sslblCSV,
		desc: "abuse.ch SSLBL: Listingdate,SHA1,Listingreason (TLS certificate SHA-1)"},
	{name: "ip-list", typ: IPv4, comments: hash, line: plain("ip"),
		desc: "one IP address a line, IPv4 and IPv6 mixed (blocklist.de, CINS, ET)"},
	{name: "dshield-block", typ: CIDR, comments: hash, line: dshield,
		desc: "DShield block list: tab-separated Start, End, Netblock, Attacks, Name, Country, email"},
	{name: "url-list", typ: URL, comments: hash, line: plain(URL),
		desc: "one URL a line (OpenPhish)"},
	{name: "phishtank-csv", typ: URL, line: phishtank,
		desc: "PhishTank CSV: phish_id,url,phish_detail_url,...,target with a header row"},
	{name: "netset", typ: CIDR, comments: hash, line: plain(CIDR),
		desc: "FireHOL netset: CIDRs and bare IPs under a `#` header"},
	{name: "hosts", typ: Domain, comments: hash, line: hosts,
		desc: "hosts file: `0.0.0.0 name [name...]`, localhost preamble and inline comments skipped"},
	{name: "tranco-csv", typ: Domain, line: tranco,
		desc: "Tranco top-sites list: `rank,domain` lines (an allowlist; Ref is the rank)"},
	{name: "tranco-csv-zip", typ: Domain, body: zipped(&trancoInner, "top-1m.csv"),
		desc: "Tranco top-sites list as tranco-list.eu serves it: a ZIP holding top-1m.csv"},
	{name: "misp-warninglist", body: mispWarninglist,
		desc: "MISP warninglist list.json (an allowlist): cidr, hostname and string lists; substring entries that are domains; regex lists refused"},
	{name: "generic", line: generic,
		desc: "configured: comment prefix, separator, column, header, indicator type"},
}

// plain is one value a line, the first word of it.
func plain(t Type) func(p *parser, line string) error {
	return func(p *parser, line string) error {
		v, _, _ := strings.Cut(line, " ")
		v, _, _ = strings.Cut(v, "\t")
		return p.add(t, v, Indicator{})
	}
}

func spamhausDrop(p *parser, line string) error {
	v, ref, _ := strings.Cut(line, ";")
	return p.add(CIDR, strings.TrimSpace(v), Indicator{Ref: strings.TrimSpace(ref)})
}

func spamhausASNDrop(p *parser, line string) error {
	v, rest, _ := strings.Cut(line, ";")
	_, name, _ := strings.Cut(rest, "|")
	return p.add(ASN, strings.TrimSpace(v), Indicator{Ref: strings.TrimSpace(name)})
}

// The members the JSON formats read.
var (
	dropJSONFields    = []string{"type", "cidr", "sblid"}
	asnDropJSONFields = []string{"type", "asn", "asname"}
	feodoJSONFields   = []string{"ip_address", "port", "malware", "first_seen"}
)

func spamhausDropJSON(p *parser, line string) error {
	v, err := p.jsonLine(line, dropJSONFields)
	if err != nil {
		return err
	}
	typ, err1 := v[0].str("type")
	cidr, err2 := v[1].str("cidr")
	sbl, err3 := v[2].str("sblid")
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	if typ == "metadata" {
		return errHeader
	}
	return p.add(CIDR, cidr, Indicator{Ref: sbl})
}

func spamhausASNDropJSON(p *parser, line string) error {
	v, err := p.jsonLine(line, asnDropJSONFields)
	if err != nil {
		return err
	}
	typ, err1 := v[0].str("type")
	asn, err2 := v[1].num("asn")
	name, err3 := v[2].str("asname")
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	if typ == "metadata" {
		return errHeader
	}
	return p.add(ASN, asn, Indicator{Ref: name})
}

// csvRow splits a CSV line; a row holding the header column key is learned as
// the header.
func (p *parser) csvRow(line, key string) ([]string, error) {
	p.fields = splitCSV(line, p.fields)
	for _, f := range p.fields {
		if strings.EqualFold(strings.TrimSpace(f), key) {
			p.learn(p.fields)
			return nil, errHeader
		}
	}
	return p.fields, nil
}

func feodoCSV(p *parser, line string) error {
	f, err := p.csvRow(line, "dst_ip")
	if err != nil {
		return err
	}
	return p.add("ip", field(f, p.col("dst_ip", 1)),
		Indicator{Port: field(f, p.col("dst_port", 2)), Malware: field(f, p.col("malware", 5)),
			Listed: feedTime(field(f, p.col("first_seen_utc", 0)))})
}

func urlhausCSV(p *parser, line string) error {
	f, err := p.csvRow(line, "urlhaus_link")
	if err != nil {
		return err
	}
	return p.add(URL, field(f, p.col("url", 2)),
		Indicator{Malware: field(f, p.col("tags", 6)), Ref: field(f, p.col("urlhaus_link", 7)),
			Category: category(field(f, p.col("threat", 5))), Listed: feedTime(field(f, p.col("dateadded", 1)))})
}

func sslblCSV(p *parser, line string) error {
	f, err := p.csvRow(line, "sha1")
	if err != nil {
		return err
	}
	return p.add(SHA1, field(f, p.col("sha1", 1)), Indicator{Malware: field(f, p.col("listingreason", 2)),
		Listed: feedTime(field(f, p.col("listingdate", 0)))})
}

func phishtank(p *parser, line string) error {
	f, err := p.csvRow(line, "phish_id")
	if err != nil {
		return err
	}
	return p.add(URL, field(f, p.col("url", 1)),
		Indicator{Malware: field(f, p.col("target", 7)), Ref: field(f, p.col("phish_id", 0)),
			Listed: feedTime(field(f, p.col("submission_time", 3)))})
}

func dshield(p *parser, line string) error {
	f := strings.Split(line, "\t")
	if len(f) < 3 {
		f = strings.Fields(line)
	}
	if strings.EqualFold(field(f, 0), "start") {
		return errHeader
	}
	if len(f) < 3 {
		return errors.New("want start, end and netblock")
	}
	bits, err := strconv.Atoi(field(f, 2))
	if err != nil {
		return fmt.Errorf("bad netblock %q", field(f, 2))
	}
	return p.add(CIDR, field(f, 0)+"/"+strconv.Itoa(bits), Indicator{})
}

// hostsSkip are the names of a hosts file's preamble, never blocked domains.
var hostsSkip = map[string]bool{"localhost": true, "localhost.localdomain": true, "local": true,
	"broadcasthost": true, "ip6-localhost": true, "ip6-loopback": true, "0.0.0.0": true,
	"ip6-localnet": true, "ip6-mcastprefix": true, "ip6-allnodes": true, "ip6-allrouters": true, "ip6-allhosts": true}

func hosts(p *parser, line string) error {
	line, _, _ = strings.Cut(line, "#")
	f := strings.Fields(line)
	if len(f) < 2 {
		return errors.New("hosts line without a name")
	}
	addr, _, _ := strings.Cut(f[0], "%") // fe80::1%lo0
	if _, err := netip.ParseAddr(addr); err != nil {
		return fmt.Errorf("hosts line without an address: %v", err)
	}
	for _, name := range f[1:] {
		if hostsSkip[strings.ToLower(name)] {
			p.st.Dropped["local"]++
			continue
		}
		if err := p.add(Domain, name, Indicator{}); err != nil {
			return err
		}
	}
	return nil
}

func generic(p *parser, line string) error {
	var f []string
	switch sep := p.opts.Separator; sep {
	case "":
		f = strings.Fields(line)
	case ",":
		p.fields = splitCSV(line, p.fields)
		f = p.fields
	default:
		f = strings.Split(line, sep)
	}
	v := field(f, p.opts.Column)
	if i := strings.IndexAny(v, " \t"); i >= 0 && p.opts.Separator != "" {
		v = v[:i]
	}
	err := p.add(p.opts.Type, v, Indicator{})
	if err != nil && p.opts.Header && !p.header && !errors.As(err, new(emitError)) {
		p.header = true
		return errHeader
	}
	return err
}

// feodoJSON streams the Feodo Tracker JSON array one object at a time; each
// object counts as a line. A record that breaks a limit of jsonReader or holds a
// member of the wrong kind is bad and skipped; broken JSON syntax, after which no
// record can be found, makes the body malformed.
func feodoJSON(p *parser, br *bufio.Reader) error {
	j := &jsonReader{r: br}
	if b, _ := br.Peek(len(bom)); bytes.Equal(b, bom) {
		br.Discard(len(bom)) //nolint:errcheck // the bytes are buffered
	}
	if c, err := j.space(); err != nil || c != '[' {
		return fmt.Errorf("%w: not a JSON array", ErrMalformed)
	}
	j.skip1() // the '[': records start at depth 1
	j.depth = 1
	c, err := j.space()
	vals := make([]jsonValue, len(feodoJSONFields))
	for err == nil && c != ']' {
		p.lineNo++
		p.st.Lines++
		err = j.record(feodoJSONFields, vals)
		if re, ok := err.(recordError); ok {
			p.bad(re.Error(), "")
			err = j.skipRecord()
		} else if err == nil {
			err = feodoRecord(p, vals)
		}
		if err != nil {
			break
		}
		if c, err = j.space(); err == nil {
			switch c {
			case ',':
				j.skip1()
				c, err = j.space()
			case ']':
			default:
				err = j.syntax("want ',' or ']' after a record, found %q", c)
			}
		}
	}
	var ee emitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return err
	case err == io.EOF || errors.Is(err, errJSONSyntax):
		return fmt.Errorf("%w: JSON record %d: %v", ErrMalformed, p.lineNo, j.eof(err))
	}
	return fmt.Errorf("read JSON record %d: %w", p.lineNo, err)
}

// feodoRecord emits one Feodo Tracker C2 or counts it bad.
func feodoRecord(p *parser, v []jsonValue) error {
	ip, err1 := v[0].str("ip_address")
	port, err2 := v[1].num("port")
	malware, err3 := v[2].str("malware")
	firstSeen, _ := v[3].str("first_seen") // context: a bad one is left out, not the entry
	if err := errors.Join(err1, err2, err3); err != nil {
		p.bad(err.Error(), "")
		return nil
	}
	err := p.add("ip", ip, Indicator{Port: port, Malware: malware, Listed: feedTime(firstSeen)})
	if err != nil && !errors.As(err, new(emitError)) {
		p.bad(err.Error(), ip)
		return nil
	}
	return err
}

// tranco is one `rank,domain` line; a first line whose rank is not a number is a
// header (some mirrors add one).
func tranco(p *parser, line string) error {
	rank, name, ok := strings.Cut(line, ",")
	rank = strings.TrimSpace(rank)
	if _, err := strconv.ParseUint(rank, 10, 32); err != nil || !ok {
		if p.lineNo == 1 && ok {
			return errHeader
		}
		return fmt.Errorf("want rank,domain")
	}
	return p.add(Domain, strings.TrimSpace(name), Indicator{Ref: rank})
}

// zipped spools a ZIP to a temporary file — a ZIP's directory is at its end — and
// parses one member with the inner format: the member named prefer, or else the
// last file in the archive.
func zipped(inner *format, prefer string) func(p *parser, br *bufio.Reader) error {
	return func(p *parser, br *bufio.Reader) error { return parseZip(p, br, inner, prefer) }
}

func parseZip(p *parser, br *bufio.Reader, inner *format, prefer string) error {
	tmp, err := os.CreateTemp("", "tip-feed-*.zip")
	if err != nil {
		return fmt.Errorf("spool zip: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, br)
	if err != nil {
		return fmt.Errorf("spool zip: %w", err)
	}
	zr, err := zip.NewReader(tmp, size)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var entry *zip.File
	for _, f := range zr.File {
		if !f.FileInfo().IsDir() && (entry == nil || f.Name == prefer) {
			entry = f
		}
	}
	if entry == nil {
		return fmt.Errorf("%w: empty zip", ErrMalformed)
	}
	rc, err := entry.Open()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	defer rc.Close()
	in := bufio.NewReaderSize(rc, maxLine)
	if isHTML(in) {
		return fmt.Errorf("%w: an HTML page inside the zip", ErrMalformed)
	}
	if err := p.lines(inner, in); err != nil {
		if errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return err
	}
	return nil
}
