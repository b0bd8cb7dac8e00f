// Package export renders listed indicators for the tools that enforce blacklists:
// plain lists, CSV, JSON lines, an RPZ zone for DNS firewalls (BIND, Unbound,
// Knot, PowerDNS), an nftables ruleset with address sets, a Zeek intel file and
// a Suricata IP reputation list. Pure formatting: the rows come from storage.
package export

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Row is one listed indicator with its score and the sources listing it.
type Row struct {
	Type    string   `json:"type"`
	Value   string   `json:"value"`
	Score   float64  `json:"score"`
	Sources []string `json:"sources"`
	// FirstSeen is when each source (Sources[i]) first listed it.
	FirstSeen []time.Time `json:"-"`
	// Context is what each source (Sources[i]) says of it; nil when unknown.
	Context []Context `json:"context,omitempty"`
}

// Context is what one source says of a listed indicator, and the terms the
// source shares it under.
type Context struct {
	Source string `json:"source"`
	// Category is what the source says the indicator is (botnet-c2, malware,
	// phishing, spam, scanner, ...): the listing's own where the feed gives one,
	// else the source's.
	Category string `json:"category,omitempty"`
	Malware  string `json:"malware,omitempty"` // the malware family, threat tags or phishing target
	Port     string `json:"port,omitempty"`    // the C2 port
	Ref      string `json:"ref,omitempty"`     // the source's own reference (SBL id, URLhaus link)
	// Listed is when the source says it first listed the indicator, where it
	// says so (zero otherwise); TIP's own first sight is Row.FirstSeen.
	Listed time.Time `json:"listed,omitzero"`
	// TLP is the source's sharing terms as a Traffic Light Protocol 2.0 label:
	// clear, green, amber, amber+strict or red.
	TLP string `json:"tlp,omitempty"`
}

// ContextOf is what source i of r says, with its name; the zero Context
// (but the name) when the row has none.
func (r Row) ContextOf(i int) Context {
	if i < len(r.Context) {
		return r.Context[i]
	}
	c := Context{}
	if i < len(r.Sources) {
		c.Source = r.Sources[i]
	}
	return c
}

// Formats lists the export formats.
var Formats = []string{"plain", "csv", "json", "rpz", "nft", "zeek", "suricata", "suricata-categories", "stix"}

// Writer renders rows in one format; call Close after the last row.
type Writer interface {
	Write(Row) error
	Close() error
}

// New returns a writer for a format. now stamps the RPZ serial and headers.
func New(format string, w io.Writer, now time.Time) (Writer, error) {
	bw := bufio.NewWriter(w)
	switch format {
	case "plain":
		return &plainWriter{w: bw}, nil
	case "csv":
		cw := csv.NewWriter(bw)
		if err := cw.Write([]string{"type", "value", "score", "sources", "categories", "malware", "refs"}); err != nil {
			return nil, err
		}
		return &csvWriter{w: cw, bw: bw}, nil
	case "json":
		return &jsonWriter{enc: json.NewEncoder(bw), bw: bw}, nil
	case "rpz":
		fmt.Fprintf(bw, "; TIP blacklist as a DNS Response Policy Zone, %s\n", now.UTC().Format(time.RFC3339))
		fmt.Fprintf(bw, "$TTL 300\n@ SOA localhost. hostmaster.localhost. %d 3600 600 86400 300\n  NS localhost.\n", now.Unix())
		return &rpzWriter{w: bw}, nil
	case "nft":
		return &nftWriter{w: bw, now: now}, nil
	case "stix":
		return newSTIXWriter(bw, now), nil
	case "zeek":
		fmt.Fprintf(bw, "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n")
		return &zeekWriter{w: bw}, nil
	case "suricata":
		return &suricataWriter{w: bw}, nil
	case "suricata-categories":
		fmt.Fprintf(bw, "%d,%s,%s\n", SuricataCategory, "TIP", "listed by TIP's blacklists (tip blacklists export --format suricata)")
		for _, c := range SuricataCategories {
			fmt.Fprintf(bw, "%d,%s,%s\n", c.ID, c.Short, "TIP: "+c.Description)
		}
		return &plainWriter{w: bw, skip: true}, nil
	}
	return nil, fmt.Errorf("export: unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

type plainWriter struct {
	w    *bufio.Writer
	skip bool // writes no rows (a file of its own header only)
}

func (p *plainWriter) Write(r Row) error {
	if p.skip {
		return nil
	}
	_, err := fmt.Fprintln(p.w, r.Value)
	return err
}
func (p *plainWriter) Close() error { return p.w.Flush() }

type csvWriter struct {
	w  *csv.Writer
	bw *bufio.Writer
}

func (c *csvWriter) Write(r Row) error {
	var cats, malware, refs []string
	for i := range r.Sources {
		ctx := r.ContextOf(i)
		cats = appendNew(cats, ctx.Category)
		malware = appendNew(malware, ctx.Malware)
		refs = appendNew(refs, ctx.Ref)
	}
	return c.w.Write([]string{r.Type, r.Value, strconv.FormatFloat(r.Score, 'f', 4, 64), strings.Join(r.Sources, ";"),
		strings.Join(cats, ";"), strings.Join(malware, ";"), strings.Join(refs, ";")})
}

func (c *csvWriter) Close() error {
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return err
	}
	return c.bw.Flush()
}

type jsonWriter struct {
	enc *json.Encoder
	bw  *bufio.Writer
}

func (j *jsonWriter) Write(r Row) error { return j.enc.Encode(r) }
func (j *jsonWriter) Close() error      { return j.bw.Flush() }

// rpzWriter blocks domains (and everything under them) with NXDOMAIN and answers
// that resolve into listed addresses with rpz-ip triggers. URLs block their host;
// other types (ASNs, hashes) have no DNS form and are skipped.
type rpzWriter struct{ w *bufio.Writer }

func (z *rpzWriter) Write(r Row) error {
	owners, err := RPZOwners(r.Type, r.Value)
	if err != nil {
		return fmt.Errorf("rpz: %w", err)
	}
	for _, o := range owners {
		if _, err := fmt.Fprintf(z.w, "%s CNAME . ; score %.2f %s\n", o, r.Score, strings.Join(r.Sources, ",")); err != nil {
			return err
		}
	}
	return nil
}

// RPZOwners are the owner names (relative to the zone) an indicator takes in a
// Response Policy Zone: a domain and everything under it, a URL's host, an
// address or block as an rpz-ip trigger. Other types (ASNs, hashes) have none.
func RPZOwners(typ, value string) ([]string, error) {
	switch typ {
	case "domain":
		return []string{value, "*." + value}, nil
	case "url":
		if h := urlHost(value); h != "" {
			if ip, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
				return []string{RPZIP(netip.PrefixFrom(ip, ip.BitLen()))}, nil
			}
			return []string{h}, nil
		}
	case "ipv4", "ipv6":
		ip, err := netip.ParseAddr(value)
		if err != nil {
			return nil, err
		}
		return []string{RPZIP(netip.PrefixFrom(ip, ip.BitLen()))}, nil
	case "cidr":
		p, err := netip.ParsePrefix(value)
		if err != nil {
			return nil, err
		}
		return []string{RPZIP(p)}, nil
	}
	return nil, nil
}

func (z *rpzWriter) Close() error { return z.w.Flush() }

func urlHost(u string) string {
	rest := u
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	if strings.HasPrefix(rest, "[") {
		if i := strings.Index(rest, "]"); i >= 0 {
			return rest[:i+1]
		}
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// RPZIP is the rpz-ip owner name of a prefix: the prefix length, then the address
// reversed (bytes for IPv4; 16-bit groups for IPv6, with "zz" for the longest run
// of zero groups), then "rpz-ip".
func RPZIP(p netip.Prefix) string {
	p = p.Masked()
	a := p.Addr()
	var labels []string
	if a.Is4() {
		b := a.As4()
		labels = []string{strconv.Itoa(p.Bits()), strconv.Itoa(int(b[3])), strconv.Itoa(int(b[2])), strconv.Itoa(int(b[1])), strconv.Itoa(int(b[0]))}
	} else {
		b := a.As16()
		groups := make([]string, 8)
		for i := range groups {
			groups[i] = strconv.FormatUint(uint64(b[2*i])<<8|uint64(b[2*i+1]), 16)
		}
		// the longest run (of at least two) of zero groups becomes "zz"
		bestStart, bestLen := -1, 1
		for i := 0; i < 8; {
			if groups[i] != "0" {
				i++
				continue
			}
			j := i
			for j < 8 && groups[j] == "0" {
				j++
			}
			if j-i > bestLen {
				bestStart, bestLen = i, j-i
			}
			i = j
		}
		if bestStart >= 0 {
			groups = append(append(groups[:bestStart:bestStart], "zz"), groups[bestStart+bestLen:]...)
		}
		labels = []string{strconv.Itoa(p.Bits())}
		for i := len(groups) - 1; i >= 0; i-- {
			labels = append(labels, groups[i])
		}
	}
	return strings.Join(labels, ".") + ".rpz-ip"
}

// nftWriter collects addresses and blocks into two interval sets of an inet table;
// auto-merge lets overlapping blocks from different sources coexist.
type nftWriter struct {
	w      *bufio.Writer
	now    time.Time
	v4, v6 []string
}

func (n *nftWriter) Write(r Row) error {
	switch r.Type {
	case "ipv4", "ipv6", "cidr":
		v := r.Value
		if strings.Contains(v, ":") {
			n.v6 = append(n.v6, v)
		} else {
			n.v4 = append(n.v4, v)
		}
	}
	return nil
}

func (n *nftWriter) Close() error {
	fmt.Fprintf(n.w, "# TIP blacklist for nftables, %s: nft -f this-file\n", n.now.UTC().Format(time.RFC3339))
	fmt.Fprintln(n.w, "table inet tip {")
	for _, s := range []struct {
		name, typ string
		elems     []string
	}{{"blacklist_v4", "ipv4_addr", n.v4}, {"blacklist_v6", "ipv6_addr", n.v6}} {
		fmt.Fprintf(n.w, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n\t\tauto-merge\n", s.name, s.typ)
		if len(s.elems) > 0 {
			fmt.Fprintf(n.w, "\t\telements = {\n")
			for i, e := range s.elems {
				sep := ","
				if i == len(s.elems)-1 {
					sep = ""
				}
				fmt.Fprintf(n.w, "\t\t\t%s%s\n", e, sep)
			}
			fmt.Fprintf(n.w, "\t\t}\n")
		}
		fmt.Fprintf(n.w, "\t}\n")
	}
	fmt.Fprintln(n.w, "\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tip saddr @blacklist_v4 drop\n\t\tip6 saddr @blacklist_v6 drop\n\t}")
	fmt.Fprintln(n.w, "}")
	return n.w.Flush()
}

// zeekWriter writes a Zeek intel file (the Intel framework's input, loaded by
// redef Intel::read_files): one indicator a line, tab-separated, with its Zeek
// type; a URL without its scheme, as Zeek's HTTP analyser sees it. Types Zeek
// has no intel type for (ASNs) are skipped.
type zeekWriter struct{ w *bufio.Writer }

func (z *zeekWriter) Write(r Row) error {
	var typ string
	v := r.Value
	switch r.Type {
	case "ipv4", "ipv6":
		typ = "Intel::ADDR"
	case "cidr":
		typ = "Intel::SUBNET"
	case "domain":
		typ = "Intel::DOMAIN"
	case "url":
		typ = "Intel::URL"
		if i := strings.Index(v, "://"); i >= 0 {
			v = v[i+3:]
		}
	case "sha1", "sha256", "md5":
		typ = "Intel::FILE_HASH"
	default:
		return nil
	}
	if strings.ContainsAny(v, "\t\n") {
		return nil // a field Zeek cannot read; TIP's normalised values hold none
	}
	desc := fmt.Sprintf("score %.2f; listed by %s", r.Score, strings.Join(r.Sources, ", "))
	if says := r.says(); says != "" {
		desc += "; " + says
	}
	_, err := fmt.Fprintf(z.w, "%s\t%s\ttip\t%s\n", v, typ, zeekField(desc))
	return err
}

func (z *zeekWriter) Close() error { return z.w.Flush() }

// SuricataCategory is the category of every TIP listing in Suricata's IP
// reputation (--format suricata-categories writes its categories file).
const SuricataCategory = 1

// SuricataCategories are the further categories of Suricata's IP reputation,
// one per category TIP's sources give, by a number that never changes (a
// rule names the short name: iprep:src,BotnetC2,>,60). A listing whose
// category is not here is in category 1 (TIP) only.
var SuricataCategories = []struct {
	ID              int
	Category, Short string
	Description     string
}{
	{2, "botnet-c2", "BotnetC2", "botnet command and control servers"},
	{3, "malware", "Malware", "malware hosts"},
	{4, "malware-download", "MalwareDownload", "malware distribution"},
	{5, "phishing", "Phishing", "phishing"},
	{6, "spam", "Spam", "spam senders"},
	{7, "scanner", "Scanner", "scanners"},
	{8, "attacker", "Attacker", "attack sources"},
	{9, "bruteforce", "Bruteforce", "brute-force attackers"},
	{10, "hijacked", "Hijacked", "hijacked or criminal networks"},
	{11, "compromised", "Compromised", "compromised hosts"},
	{12, "fast-flux", "FastFlux", "fast-flux agents"},
	{13, "reputation", "Reputation", "listed by a reputation aggregate"},
}

// suricataCategory is the Suricata category number of a TIP category, 0 when none.
func suricataCategory(cat string) int {
	for _, c := range SuricataCategories {
		if c.Category == cat {
			return c.ID
		}
	}
	return 0
}

// suricataWriter writes a Suricata IP reputation list ("ip,category,score"),
// the score mapped from 0..1 to Suricata's 1..127; addresses and blocks only.
// Each is in category 1 (TIP) and in the category of each of its sources'
// categories, with the indicator's score.
type suricataWriter struct{ w *bufio.Writer }

func (s *suricataWriter) Write(r Row) error {
	switch r.Type {
	case "ipv4", "ipv6", "cidr":
	default:
		return nil
	}
	score := SuricataScore(r.Score)
	if _, err := fmt.Fprintf(s.w, "%s,%d,%d\n", r.Value, SuricataCategory, score); err != nil {
		return err
	}
	var done []int
	for i := range r.Sources {
		id := suricataCategory(r.ContextOf(i).Category)
		if id == 0 || slices.Contains(done, id) {
			continue
		}
		done = append(done, id)
		if _, err := fmt.Fprintf(s.w, "%s,%d,%d\n", r.Value, id, score); err != nil {
			return err
		}
	}
	return nil
}

func (s *suricataWriter) Close() error { return s.w.Flush() }

// SuricataScore maps a score (0..1) to Suricata's reputation (1..127).
func SuricataScore(score float64) int {
	return max(1, min(127, int(math.Round(score*127))))
}

// appendNew appends v to vs unless it is empty or already there.
func appendNew(vs []string, v string) []string {
	if v == "" || slices.Contains(vs, v) {
		return vs
	}
	return append(vs, v)
}

// says is what the row's sources say of it, on one line: each category, with
// its malware families and ports ("botnet-c2 (Emotet, port 443); phishing").
func (r Row) says() string {
	var cats []string
	details := map[string][]string{}
	for i := range r.Sources {
		c := r.ContextOf(i)
		cat := c.Category
		if cat == "" {
			cat = "listed"
		}
		if !slices.Contains(cats, cat) {
			cats = append(cats, cat)
		}
		details[cat] = appendNew(details[cat], c.Malware)
		if c.Port != "" {
			details[cat] = appendNew(details[cat], "port "+c.Port)
		}
	}
	if len(cats) == 1 && cats[0] == "listed" && len(details["listed"]) == 0 {
		return ""
	}
	parts := make([]string, len(cats))
	for i, cat := range cats {
		parts[i] = cat
		if d := details[cat]; len(d) > 0 {
			parts[i] += " (" + strings.Join(d, ", ") + ")"
		}
	}
	return strings.Join(parts, "; ")
}

// zeekField makes s one field of a Zeek intel file: no tab or newline (a
// feed's context is its own text), and never empty.
func zeekField(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "-"
	}
	return s
}

// NewWith is New with what STIX's valid_until needs beyond the rows: the
// export's threshold and the scores' half-life (storage.ScoreHalfLife). The
// other formats need neither.
func NewWith(format string, w io.Writer, now time.Time, o STIXOptions) (Writer, error) {
	if format == "stix" {
		return NewSTIX(w, now, o), nil
	}
	return New(format, w, now)
}
