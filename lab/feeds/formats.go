package feeds

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The renderers below write each feed as the real one looks, quirks included.
// They see only the active listings and the feed's Last-Modified, so the body is
// a function of what changed.

const (
	abuseTime   = "2006-01-02 15:04:05"
	ctimeUTC    = "Mon Jan _2 15:04:05 2006 UTC" // DShield
	dateUTC     = "Mon Jan _2 15:04:05 UTC 2006" // date -u (FireHOL)
	iso8601     = "2006-01-02T15:04:05-07:00"    // PhishTank
	spamhausDay = "2006/01/02"
)

// key orders addresses and prefixes numerically, IPv4 before IPv6.
func (l *listing) key() netip.Prefix {
	if l.prefix.IsValid() {
		return l.prefix
	}
	if l.addr.IsValid() {
		return netip.PrefixFrom(l.addr, l.addr.BitLen())
	}
	return netip.Prefix{}
}

func byAddr(rows []*listing) []*listing {
	out := slices.Clone(rows)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].key(), out[j].key()
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
	return out
}

// byListed orders rows by listing time, newest first when newest is set.
func byListed(rows []*listing, newest bool) []*listing {
	out := slices.Clone(rows)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.listed.Equal(b.listed) {
			return a.listed.After(b.listed) == newest
		}
		return a.value < b.value
	})
	return out
}

// abuseBanner is the boxed comment that heads every abuse.ch download.
func abuseBanner(b *bytes.Buffer, title, updated, terms, contact string) {
	rule := strings.Repeat("#", 64) + "\n"
	b.WriteString(rule)
	for _, line := range []string{title, updated, "", "Terms Of Use: " + terms, "For questions please contact " + contact} {
		fmt.Fprintf(b, "# %-61s#\n", line)
	}
	b.WriteString(rule)
	b.WriteString("#\n")
}

func quoteAll(fields ...string) string {
	q := make([]string, len(fields))
	for i, f := range fields {
		q[i] = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
	}
	return strings.Join(q, ",")
}

func status(l *listing, now time.Time) string {
	if l.online(now) {
		return "online"
	}
	return "offline"
}

// Spamhaus

func spamhausHeader(b *bytes.Buffer, title, file string, mod time.Time) {
	m := mod.UTC()
	fmt.Fprintf(b, "; Spamhaus %s %s - (c) %d The Spamhaus Project SLU\n", title, m.Format(spamhausDay), m.Year())
	fmt.Fprintf(b, "; https://www.spamhaus.org/drop/%s\n", file)
	fmt.Fprintf(b, "; Last-Modified: %s\n", m.Format(http.TimeFormat))
	fmt.Fprintf(b, "; Expires: %s\n", m.Add(day).Format(http.TimeFormat))
}

// dropText is a DROP text file: `CIDR ; SBLid` under the Spamhaus header.
func dropText(title, file string) func(*Server, view) []byte {
	return func(s *Server, v view) []byte {
		var b bytes.Buffer
		spamhausHeader(&b, title, file, v.mod)
		for _, l := range byAddr(v.rows) {
			fmt.Fprintf(&b, "%s ; %s\n", l.value, l.sbl)
		}
		return b.Bytes()
	}
}

type spamhausMeta struct {
	Type      string `json:"type"`
	Timestamp int64  `json:"timestamp"`
	Size      int    `json:"size"`
	Records   int    `json:"records"`
	Copyright string `json:"copyright"`
	Terms     string `json:"terms"`
}

// ndjson writes one JSON object a line and the closing metadata line, whose size
// counts the bytes of the record lines.
func ndjson[T any](records []T, mod time.Time) []byte {
	var b bytes.Buffer
	for _, r := range records {
		line, _ := json.Marshal(r)
		b.Write(line)
		b.WriteByte('\n')
	}
	meta, _ := json.Marshal(spamhausMeta{Type: "metadata", Timestamp: mod.Unix(), Size: b.Len(), Records: len(records),
		Copyright: fmt.Sprintf("(c) %d The Spamhaus Project SLU", mod.UTC().Year()), Terms: "https://www.spamhaus.org/drop/terms/"})
	b.Write(meta)
	b.WriteByte('\n')
	return b.Bytes()
}

func (s *Server) dropJSON(v view) []byte {
	type rec struct {
		CIDR  string `json:"cidr"`
		SBLID string `json:"sblid"`
		RIR   string `json:"rir"`
	}
	var recs []rec
	for _, l := range byAddr(v.rows) {
		recs = append(recs, rec{l.value, l.sbl, rir(l.asn.Country)})
	}
	return ndjson(recs, v.mod)
}

// asName is how ASN-DROP names a network: "HANDLE - Organisation, CC".
func asName(l *listing) string {
	handle, org, _ := strings.Cut(l.asn.Name, " ")
	if l.country == "" {
		return handle + " - " + org
	}
	return fmt.Sprintf("%s - %s, %s", handle, org, l.country)
}

func byASN(rows []*listing) []*listing {
	out := slices.Clone(rows)
	sort.SliceStable(out, func(i, j int) bool { return out[i].asn.Number < out[j].asn.Number })
	return out
}

func (s *Server) asndropText(v view) []byte {
	var b bytes.Buffer
	spamhausHeader(&b, "ASN-DROP List", "asndrop.txt", v.mod)
	for _, l := range byASN(v.rows) {
		if l.country == "" {
			fmt.Fprintf(&b, "%s ; | %s\n", l.value, asName(l))
		} else {
			fmt.Fprintf(&b, "%s ; %s | %s\n", l.value, l.country, asName(l))
		}
	}
	return b.Bytes()
}

func (s *Server) asndropJSON(v view) []byte {
	type rec struct {
		ASN    int    `json:"asn"`
		RIR    string `json:"rir"`
		Domain string `json:"domain"`
		CC     string `json:"cc,omitempty"`
		ASName string `json:"asname"`
	}
	var recs []rec
	for _, l := range byASN(v.rows) {
		recs = append(recs, rec{l.asn.Number, rir(l.asn.Country), slug(l.asn.Name) + ".net", l.country, asName(l)})
	}
	return ndjson(recs, v.mod)
}

// abuse.ch

const (
	feodoTerms   = "https://feodotracker.abuse.ch/blocklist/"
	feodoContact = "feodotracker [at] abuse.ch"
)

func feodoOrder(rows []*listing) []*listing {
	out := slices.Clone(rows)
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].at.Equal(out[j].at) {
			return out[i].at.Before(out[j].at)
		}
		return out[i].value < out[j].value
	})
	return out
}

func lastOnlineDay(l *listing, now time.Time) string {
	if seen, ok := l.lastSeen(now); ok {
		return seen.UTC().Format("2006-01-02")
	}
	return ""
}

func (s *Server) feodoText(v view) []byte {
	var b bytes.Buffer
	abuseBanner(&b, "abuse.ch Feodo Tracker Botnet C2 IP Blocklist (IPs only)",
		"Last updated: "+v.mod.UTC().Format(abuseTime)+" UTC", feodoTerms, feodoContact)
	b.WriteString("# DstIP\n")
	for _, l := range feodoOrder(v.rows) {
		b.WriteString(l.value + "\n")
	}
	fmt.Fprintf(&b, "# END %d entries\n", len(v.rows))
	return b.Bytes()
}

func (s *Server) feodoCSV(v view) []byte {
	var b bytes.Buffer
	abuseBanner(&b, "abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)",
		"Last updated: "+v.mod.UTC().Format(abuseTime)+" UTC", feodoTerms, feodoContact)
	b.WriteString(quoteAll("first_seen_utc", "dst_ip", "dst_port", "c2_status", "last_online", "malware") + "\n")
	for _, l := range feodoOrder(v.rows) {
		b.WriteString(quoteAll(l.at.UTC().Format(abuseTime), l.value, strconv.Itoa(l.port), status(l, v.now),
			lastOnlineDay(l, v.now), l.malware) + "\n")
	}
	return b.Bytes()
}

func (s *Server) feodoJSON(v view) []byte {
	type rec struct {
		IPAddress  string  `json:"ip_address"`
		Port       int     `json:"port"`
		Status     string  `json:"status"`
		Hostname   *string `json:"hostname"`
		ASNumber   int     `json:"as_number"`
		ASName     string  `json:"as_name"`
		Country    string  `json:"country"`
		FirstSeen  string  `json:"first_seen"`
		LastOnline string  `json:"last_online"`
		Malware    string  `json:"malware"`
	}
	recs := []rec{}
	for _, l := range feodoOrder(v.rows) {
		r := rec{IPAddress: l.value, Port: l.port, Status: status(l, v.now), ASNumber: l.asn.Number,
			ASName: l.asn.Name, Country: l.asn.Country, FirstSeen: l.at.UTC().Format(abuseTime),
			LastOnline: lastOnlineDay(l, v.now), Malware: l.malware}
		if l.hostname != "" {
			r.Hostname = &l.hostname
		}
		recs = append(recs, r)
	}
	out, _ := json.MarshalIndent(recs, "", "    ")
	return append(out, '\n')
}

const (
	urlhausTerms   = "https://urlhaus.abuse.ch/api/"
	urlhausContact = "urlhaus [at] abuse.ch"
)

func (s *Server) urlhausCSV(title string, v view) []byte {
	var b bytes.Buffer
	abuseBanner(&b, title, "Last updated: "+v.mod.UTC().Format(abuseTime)+" (UTC)", urlhausTerms, urlhausContact)
	b.WriteString("# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n")
	rows := slices.Clone(v.rows)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].id > rows[j].id })
	for _, l := range rows {
		last := ""
		if seen, ok := l.lastSeen(v.now); ok {
			last = seen.UTC().Format(abuseTime)
		}
		id := strconv.Itoa(l.id)
		b.WriteString(quoteAll(id, l.listed.UTC().Format(abuseTime), l.value, status(l, v.now), last,
			"malware_download", l.tags, "https://urlhaus.abuse.ch/url/"+id+"/", l.reporter) + "\n")
	}
	return b.Bytes()
}

func (s *Server) urlhausRecent(v view) []byte {
	return s.urlhausCSV("abuse.ch URLhaus Database Dump (CSV - recent URLs only)", v)
}

func (s *Server) urlhausText(v view) []byte {
	var b bytes.Buffer
	abuseBanner(&b, "abuse.ch URLhaus Database Dump (online URLs only)",
		"Last updated: "+v.mod.UTC().Format(abuseTime)+" (UTC)", urlhausTerms, urlhausContact)
	for _, l := range byListed(v.rows, true) {
		b.WriteString(l.value + "\n")
	}
	return b.Bytes()
}

// urlhausDump is the full dump: a ZIP holding csv.txt. The ZIP's timestamp is
// the feed's Last-Modified, so equal content gives equal bytes.
func (s *Server) urlhausDump(v view) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	f, _ := zw.CreateHeader(&zip.FileHeader{Name: "csv.txt", Method: zip.Deflate, Modified: v.mod.UTC()})
	_, _ = f.Write(s.urlhausCSV("abuse.ch URLhaus Database Dump (CSV)", v))
	_ = zw.Close()
	return b.Bytes()
}

func (s *Server) sslbl(v view) []byte {
	var b bytes.Buffer
	abuseBanner(&b, "abuse.ch SSLBL SSL Certificate Blacklist (SHA1 Fingerprints)",
		"Last updated: "+v.mod.UTC().Format(abuseTime)+" UTC", "https://sslbl.abuse.ch/blacklist/", "sslbl [at] abuse.ch")
	b.WriteString("# Listingdate,SHA1,Listingreason\n")
	for _, l := range byListed(v.rows, true) {
		fmt.Fprintf(&b, "%s,%s,%s\n", l.listed.UTC().Format(abuseTime), l.value, l.malware)
	}
	return b.Bytes()
}

// Plain lists

// ipList is blocklist.de's layout: one address a line, IPv4 and IPv6 mixed.
func (s *Server) ipList(v view) []byte {
	var b bytes.Buffer
	for _, l := range byAddr(v.rows) {
		b.WriteString(l.value + "\n")
	}
	return b.Bytes()
}

// cins is one IPv4 a line; some lines carry a trailing space.
func (s *Server) cins(v view) []byte {
	var b bytes.Buffer
	for _, l := range byAddr(v.rows) {
		b.WriteString(l.value)
		if l.addr.As4()[3]%4 == 0 {
			b.WriteString(" ")
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

func (s *Server) dshield(v view) []byte {
	var b bytes.Buffer
	m := v.mod.UTC()
	for _, line := range []string{
		"#   DShield.org Recommended Block List ",
		"#   (lab copy)",
		"#   primary URL: https://www.dshield.org/block.txt",
		"#",
		"#    updated: " + m.Format(ctimeUTC),
		"#   ",
		"#    This list summarizes the most attacking class C (/24) subnets",
		"#   over the last days. 'Attacks' counts the targets reporting",
		"#   scans from the subnet.",
		"#",
		"#    Columns (tab delimited):",
		"#",
		"#    (1) start of netblock  ",
		"#    (2) end of netblock",
		"#    (3) subnet (/24 for class C)",
		"#    (4) number of targets scanned",
		"#    (5) name of Network ",
		"#    (6) Country",
		"#    (7) contact email address",
		"#",
		"Start\tEnd\tNetblock\tAttacks\tName\tCountry\temail",
	} {
		b.WriteString(line + "\n")
	}
	rows := slices.Clone(v.rows)
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].attacks != rows[j].attacks {
			return rows[i].attacks > rows[j].attacks
		}
		return rows[i].value < rows[j].value
	})
	for _, l := range rows {
		first := l.prefix.Addr().As4()
		last := first
		last[3] = 255
		fmt.Fprintf(&b, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", l.prefix.Addr(), netip.AddrFrom4(last), l.prefix.Bits(),
			l.attacks, l.netName, l.country, l.email)
	}
	b.WriteString("# END\n#\n")
	fmt.Fprintf(&b, "#  finished list generation: %s\n", m.Add(time.Second).Format(ctimeUTC))
	return b.Bytes()
}

// openphish is one URL a line, newest first, with a blank line at the end.
func (s *Server) openphish(v view) []byte {
	var b bytes.Buffer
	for _, l := range byListed(v.rows, true) {
		b.WriteString(l.value + "\n")
	}
	b.WriteString("\n")
	return b.Bytes()
}

// phishtank is a CSV that opens with a UTF-8 byte order mark; only fields that
// need it (URLs with commas) are quoted.
func (s *Server) phishtank(v view) []byte {
	var b bytes.Buffer
	b.WriteString("\ufeff")
	cw := csv.NewWriter(&b)
	_ = cw.Write([]string{"phish_id", "url", "phish_detail_url", "submission_time", "verified", "verification_time", "online", "target"})
	rows := slices.Clone(v.rows)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].id > rows[j].id })
	for _, l := range rows {
		id := strconv.Itoa(l.id)
		_ = cw.Write([]string{id, l.value, "http://www.phishtank.com/phish_detail.php?phish_id=" + id,
			l.at.Add(45 * time.Minute).UTC().Format(iso8601), "yes", l.listed.UTC().Format(iso8601), "yes", l.target})
	}
	cw.Flush()
	return b.Bytes()
}

// firehol is a netset: the FireHOL header block, then CIDRs and bare IPs in
// address order.
func (s *Server) firehol(v view) []byte {
	rows := byAddr(v.rows)
	var b bytes.Buffer
	m := v.mod.UTC()
	for _, line := range []string{
		"#",
		"# firehol_level1",
		"#",
		"# ipv4 hash:net ipset",
		"#",
		"# A firewall blacklist composed from IP lists, providing",
		"# maximum protection with minimum false positives. Suitable",
		"# for basic protection on all internet facing servers,",
		"# routers and firewalls. (includes: dshield feodo fullbogons",
		"# spamhaus_drop)",
		"#",
		"# Maintainer      : FireHOL",
		"# Maintainer URL  : http://iplists.firehol.org/",
		"# List source URL : ",
		"# Source File Date: " + m.Format(dateUTC),
		"#",
		"# Category        : attacks",
		"# Version         : " + strconv.FormatInt(int64(v.mod.Sub(s.birth)/time.Minute), 10),
		"#",
		"# This File Date  : " + m.Format(dateUTC),
		"# Update Frequency: 1 min ",
		"# Aggregation     : none",
		fmt.Sprintf("# Entries         : %d subnets, %s unique IPs", len(rows), uniqueIPs(rows)),
		"#",
		"# Generated by FireHOL's update-ipsets.sh",
		"# Processed with FireHOL's iprange",
		"#",
	} {
		b.WriteString(line + "\n")
	}
	for _, l := range rows {
		b.WriteString(l.value + "\n")
	}
	return b.Bytes()
}

// uniqueIPs counts the addresses the rows cover, overlaps counted once.
func uniqueIPs(rows []*listing) string {
	total := new(big.Int)
	var end *big.Int // one past the last address counted, rows in address order
	for _, l := range rows {
		p := l.key()
		first := new(big.Int).SetBytes(p.Addr().AsSlice())
		size := new(big.Int).Lsh(big.NewInt(1), uint(p.Addr().BitLen()-p.Bits()))
		last := new(big.Int).Add(first, size)
		if end != nil && first.Cmp(end) < 0 {
			first = end
		}
		if last.Cmp(first) > 0 {
			total.Add(total, new(big.Int).Sub(last, first))
			end = last
		}
	}
	return total.String()
}

// hosts is a hosts file with CRLF line ends: a localhost preamble parsers must
// skip, then one blocked name a line — or a name and its www. host on one line —
// some with an inline comment.
func (s *Server) hosts(v view) []byte {
	names := map[string]*listing{}
	for _, l := range v.rows {
		names[l.value] = l
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var lines []string
	lines = append(lines,
		"# Title: TIP lab hosts blocklist",
		"#",
		"# Malware, phishing and fast-flux domains.",
		"# Date: "+v.mod.UTC().Format("02 January 2006 15:04:05")+" (UTC)",
		fmt.Sprintf("# Number of unique domains: %d", len(keys)),
		"#",
		"# ===============================================================",
		"",
		"127.0.0.1 localhost",
		"127.0.0.1 localhost.localdomain",
		"127.0.0.1 local",
		"255.255.255.255 broadcasthost",
		"::1 localhost",
		"::1 ip6-localhost ip6-loopback",
		"fe80::1%lo0 localhost",
		"0.0.0.0 0.0.0.0",
		"",
		"# Start of blocked domains",
		"",
	)
	for _, k := range keys {
		if strings.HasPrefix(k, "www.") && names[strings.TrimPrefix(k, "www.")] != nil {
			continue // written with its domain
		}
		line := "0.0.0.0 " + k
		if names["www."+k] != nil {
			line += " www." + k
		}
		if d, ok := s.w.Domain(k); ok && d.Class.IsFlux() {
			line += " # " + string(d.Class)
		}
		lines = append(lines, line)
	}
	lines = append(lines, "", "# End of blocked domains")
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}
