package feeds_test

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Strict parsers of the real formats, one per catalog format name. Each returns
// the values in the form the truth uses and fails on anything the format does
// not allow, so a test that parses a body proves the format is genuinely right.
var parsers = map[string]func([]byte) ([]string, error){
	"spamhaus-drop":         parseDropText,
	"spamhaus-drop-json":    parseDropJSON,
	"spamhaus-asndrop":      parseASNDropText,
	"spamhaus-asndrop-json": parseASNDropJSON,
	"feodo-txt":             parseFeodoText,
	"feodo-csv":             parseFeodoCSV,
	"feodo-json":            parseFeodoJSON,
	"urlhaus-csv":           parseURLhausCSV,
	"urlhaus-text":          parseURLhausText,
	"urlhaus-csv-zip":       parseURLhausZip,
	"sslbl-csv":             parseSSLBL,
	"ip-list":               parseIPList,
	"dshield-block":         parseDShield,
	"url-list":              parseURLList,
	"phishtank-csv":         parsePhishTank,
	"netset":                parseNetset,
	"hosts":                 parseHosts,
}

// lines splits a LF-terminated body; a body that does not end in LF is an error.
func lines(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[len(b)-1] != '\n' {
		return nil, errors.New("body does not end with a newline")
	}
	return strings.Split(string(b[:len(b)-1]), "\n"), nil
}

// boxed reads "# Last updated: 2026-09-01 00:00:00 UTC    #" style banner lines.
func bannerTime(ls []string, layout string) error {
	for _, l := range ls {
		if v, ok := strings.CutPrefix(l, "# Last updated: "); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "#"))
			_, err := time.Parse(layout, v)
			return err
		}
	}
	return errors.New("no Last updated line")
}

var sblRE = regexp.MustCompile(`^SBL\d+$`)

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err == nil && p != p.Masked() {
		err = fmt.Errorf("%s: host bits set", s)
	}
	return p, err
}

func parseDropText(b []byte) ([]string, error) {
	ls, err := lines(b)
	if err != nil {
		return nil, err
	}
	var out []string
	var lastMod bool
	for _, l := range ls {
		if strings.HasPrefix(l, ";") {
			if v, ok := strings.CutPrefix(l, "; Last-Modified: "); ok {
				if _, err := http.ParseTime(v); err != nil {
					return nil, err
				}
				lastMod = true
			}
			continue
		}
		cidr, sbl, ok := strings.Cut(l, " ; ")
		if !ok || !sblRE.MatchString(sbl) {
			return nil, fmt.Errorf("bad DROP line %q", l)
		}
		if _, err := parsePrefix(cidr); err != nil {
			return nil, err
		}
		out = append(out, cidr)
	}
	if !lastMod {
		return nil, errors.New("no ; Last-Modified: line")
	}
	return out, nil
}

type spamhausMeta struct {
	Type      string `json:"type"`
	Timestamp int64  `json:"timestamp"`
	Size      int    `json:"size"`
	Records   int    `json:"records"`
	Copyright string `json:"copyright"`
	Terms     string `json:"terms"`
}

// ndjson checks the one-object-a-line layout and its metadata line, and decodes
// each record strictly into a new T.
func ndjson[T any](b []byte, each func(T) (string, error)) ([]string, error) {
	ls, err := lines(b)
	if err != nil || len(ls) == 0 {
		return nil, fmt.Errorf("ndjson: %v (%d lines)", err, len(ls))
	}
	var meta spamhausMeta
	dec := json.NewDecoder(strings.NewReader(ls[len(ls)-1]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&meta); err != nil || meta.Type != "metadata" {
		return nil, fmt.Errorf("last line is not metadata: %q (%v)", ls[len(ls)-1], err)
	}
	recs := ls[:len(ls)-1]
	size := 0
	var out []string
	for _, l := range recs {
		size += len(l) + 1
		var r T
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("%q: %w", l, err)
		}
		v, err := each(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if meta.Records != len(recs) || meta.Size != size || meta.Timestamp == 0 || meta.Copyright == "" {
		return nil, fmt.Errorf("metadata %+v does not match %d records of %d bytes", meta, len(recs), size)
	}
	return out, nil
}

var rirs = []string{"afrinic", "apnic", "arin", "lacnic", "ripencc"}

func parseDropJSON(b []byte) ([]string, error) {
	type rec struct {
		CIDR  string `json:"cidr"`
		SBLID string `json:"sblid"`
		RIR   string `json:"rir"`
	}
	return ndjson(b, func(r rec) (string, error) {
		if _, err := parsePrefix(r.CIDR); err != nil || !sblRE.MatchString(r.SBLID) || !slices.Contains(rirs, r.RIR) {
			return "", fmt.Errorf("bad DROP record %+v", r)
		}
		return r.CIDR, nil
	})
}

var asnDropRE = regexp.MustCompile(`^(AS\d+) ; ([A-Z]{2} )?\| (\S.*)$`)

func parseASNDropText(b []byte) ([]string, error) {
	ls, err := lines(b)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ls {
		if strings.HasPrefix(l, ";") {
			continue
		}
		m := asnDropRE.FindStringSubmatch(l)
		if m == nil {
			return nil, fmt.Errorf("bad ASN-DROP line %q", l)
		}
		out = append(out, m[1])
	}
	return out, nil
}

func parseASNDropJSON(b []byte) ([]string, error) {
	type rec struct {
		ASN    int    `json:"asn"`
		RIR    string `json:"rir"`
		Domain string `json:"domain"`
		CC     string `json:"cc"`
		ASName string `json:"asname"`
	}
	return ndjson(b, func(r rec) (string, error) {
		if r.ASN <= 0 || !slices.Contains(rirs, r.RIR) || r.ASName == "" || r.Domain == "" {
			return "", fmt.Errorf("bad ASN-DROP record %+v", r)
		}
		return fmt.Sprintf("AS%d", r.ASN), nil
	})
}

func parseIPv4(s string) error {
	a, err := netip.ParseAddr(s)
	if err == nil && !a.Is4() {
		err = fmt.Errorf("%s is not IPv4", s)
	}
	return err
}

func parseFeodoText(b []byte) ([]string, error) {
	ls, err := lines(b)
	if err != nil {
		return nil, err
	}
	if err := bannerTime(ls, "2006-01-02 15:04:05 UTC"); err != nil {
		return nil, err
	}
	var out []string
	end := -1
	for _, l := range ls {
		if strings.HasPrefix(l, "#") {
			if v, ok := strings.CutPrefix(l, "# END "); ok {
				if _, err := fmt.Sscanf(v, "%d entries", &end); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := parseIPv4(l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if end != len(out) {
		return nil, fmt.Errorf("footer says %d entries, body has %d", end, len(out))
	}
	return out, nil
}

// dataCSV reads the non-comment lines as CSV with a fixed field count.
func dataCSV(ls []string, fields int) ([][]string, error) {
	var data []string
	for _, l := range ls {
		if !strings.HasPrefix(l, "#") {
			data = append(data, l)
		}
	}
	r := csv.NewReader(strings.NewReader(strings.Join(data, "\n")))
	r.FieldsPerRecord = fields
	return r.ReadAll()
}

func fullyQuoted(l string, fields int) bool {
	return regexp.MustCompile(`^"[^"]*"(,"[^"]*"){` + strconv.Itoa(fields-1) + `}$`).MatchString(l)
}

func parseFeodoCSV(b []byte) ([]string, error) {
	ls, err := lines(b)
	if err != nil {
		return nil, err
	}
	if err := bannerTime(ls, "2006-01-02 15:04:05 UTC"); err != nil {
		return nil, err
	}
	for _, l := range ls {
		if !strings.HasPrefix(l, "#") && !fullyQuoted(l, 6) {
			return nil, fmt.Errorf("not fully quoted: %q", l)
		}
	}
	rows, err := dataCSV(ls, 6)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || !slices.Equal(rows[0], []string{"first_seen_utc", "dst_ip", "dst_port", "c2_status", "last_online", "malware"}) {
		return nil, fmt.Errorf("bad header %v", rows)
	}
	var out []string
	for _, r := range rows[1:] {
		if _, err := time.Parse("2006-01-02 15:04:05", r[0]); err != nil {
			return nil, err
		}
		if _, err := strconv.Atoi(r[2]); err != nil {
			return nil, err
		}
		if r[3] != "online" && r[3] != "offline" {
			return nil, fmt.Errorf("status %q", r[3])
		}
		if r[4] != "" {
			if _, err := time.Parse("2006-01-02", r[4]); err != nil {
				return nil, err
			}
		}
		if err := parseIPv4(r[1]); err != nil {
			return nil, err
		}
		out = append(out, r[1])
	}
	return out, nil
}

func parseFeodoJSON(b []byte) ([]string, error) {
	var recs []struct {
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
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&recs); err != nil {
		return nil, err
	}
	if recs == nil {
		return nil, errors.New("not a JSON array")
	}
	var out []string
	for _, r := range recs {
		if err := parseIPv4(r.IPAddress); err != nil {
			return nil, err
		}
		if _, err := time.Parse("2006-01-02 15:04:05", r.FirstSeen); err != nil || r.Port == 0 || r.Malware == "" ||
			(r.Status != "online" && r.Status != "offline") || (r.Hostname != nil && *r.Hostname == "") {
			return nil, fmt.Errorf("bad Feodo record %+v (%v)", r, err)
		}
		out = append(out, r.IPAddress)
	}
	return out, nil
}

const urlhausHeader = "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter"

func parseURL(s string) error {
	u, err := url.Parse(s)
	if err == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		err = fmt.Errorf("%q is not an absolute http URL", s)
	}
	return err
}

func parseURLhausCSV(b []byte) ([]string, error) {
	ls, err := lines(b)
	if err != nil {
		return nil, err
	}
	if err := bannerTime(ls, "2006-01-02 15:04:05 (UTC)"); err != nil {
		return nil, err
	}
	if !slices.Contains(ls, urlhausHeader) {
		return nil, errors.New("no header comment")
	}
	for _, l := range ls {
		if !strings.HasPrefix(l, "#") && !fullyQuoted(l, 9) {
			return nil, fmt.Errorf("not fully quoted: %q", l)
		}
	}
	rows, err := dataCSV(ls, 9)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		if _, err := time.Parse("2006-01-02 15:04:05", r[1]); err != nil {
			return nil, err
		}
		if r[3] != "online" && r[3] != "offline" || r[5] != "malware_download" ||
			r[7] != "https://urlhaus.abuse.ch/url/"+r[0]+"/" || r[6] == "" || r[8] == "" {
			return nil, fmt.Errorf("bad URLhaus row %q", r)
		}
		if err := parseURL(r[2]); err != nil {
			return nil, err
		}
		out = append(out, r[2])
	}
	return out, nil
}

func parseURLhausText(b []byte) ([]string, error) {
	ls, err := lines(b)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ls {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if err := parseURL(l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func parseURLhausZip(b []byte) ([]string, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	if len(zr.File) != 1 || zr.File[0].Name != "csv.txt" {
		return nil, fmt.Errorf("want one csv.txt in the ZIP, got %d files", len(zr.File))
	}
	f, err := zr.File[0].Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return parseURLhausCSV(data)
}

var sha1RE = regexp.MustCompile(`^[0-9a-f]{40}$`)

func parseSSLBL(b []byte) ([]string, error) {
	ls, err := lines(b)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(ls, "# Listingdate,SHA1,Listingreason") {
		return nil, errors.New("no header comment")
	}
	var out []string
	for _, l := range ls {
		if strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, ",")
		if len(f) != 3 || !sha1RE.MatchString(f[1]) || !strings.HasSuffix(f[2], " C&C") {
			return nil, fmt.Errorf("bad SSLBL line %q", l)
		}
		if _, err := time.Parse("2006-01-02 15:04:05", f[0]); err != nil {
			return nil, err
		}
		out = append(out, f[1])
	}
	return out, nil
}

// parseIPList reads one address a line, IPv4 or IPv6, tolerating trailing spaces.
func parseIPList(b []byte) ([]string, error) {
	ls, err := lines(b)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ls {
		v := strings.TrimRight(l, " ")
		if _, err := netip.ParseAddr(v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

const dshieldHeader = "Start\tEnd\tNetblock\tAttacks\tName\tCountry\temail"

func parseDShield(b []byte) ([]string, error) {
	ls, err := lines(b)
	if err != nil {
		return nil, err
	}
	var out []string
	header, end := false, false
	for _, l := range ls {
		switch {
		case l == "# END":
			end = true
		case strings.HasPrefix(l, "#"):
		case l == dshieldHeader:
			header = true
		default:
			f := strings.Split(l, "\t")
			if !header || end || len(f) != 7 {
				return nil, fmt.Errorf("bad DShield line %q", l)
			}
			start, err1 := netip.ParseAddr(f[0])
			last, err2 := netip.ParseAddr(f[1])
			bits, err3 := strconv.Atoi(f[2])
			_, err4 := strconv.Atoi(f[3])
			if err := errors.Join(err1, err2, err3, err4); err != nil {
				return nil, err
			}
			p := netip.PrefixFrom(start, bits)
			if p.Masked().Addr() != start || !p.Contains(last) || last.Next().IsValid() && p.Contains(last.Next()) {
				return nil, fmt.Errorf("start/end/netblock disagree: %q", l)
			}
			out = append(out, p.String())
		}
	}
	if !header || !end {
		return nil, errors.New("missing header row or # END footer")
	}
	return out, nil
}

func parseURLList(b []byte) ([]string, error) {
	ls, err := lines(b)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ls {
		if l == "" {
			continue
		}
		if err := parseURL(l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func parsePhishTank(b []byte) ([]string, error) {
	rest, ok := bytes.CutPrefix(b, []byte("\ufeff"))
	if !ok {
		return nil, errors.New("no UTF-8 byte order mark")
	}
	r := csv.NewReader(bytes.NewReader(rest))
	r.FieldsPerRecord = 8
	rows, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || !slices.Equal(rows[0], []string{"phish_id", "url", "phish_detail_url", "submission_time", "verified", "verification_time", "online", "target"}) {
		return nil, fmt.Errorf("bad header %v", rows)
	}
	var out []string
	for _, row := range rows[1:] {
		sub, err1 := time.Parse(time.RFC3339, row[3])
		ver, err2 := time.Parse(time.RFC3339, row[5])
		if err := errors.Join(err1, err2, parseURL(row[1])); err != nil {
			return nil, err
		}
		if _, err := strconv.Atoi(row[0]); err != nil || row[2] != "http://www.phishtank.com/phish_detail.php?phish_id="+row[0] ||
			row[4] != "yes" || row[6] != "yes" || ver.Before(sub) || row[7] == "" {
			return nil, fmt.Errorf("bad PhishTank row %q", row)
		}
		out = append(out, row[1])
	}
	return out, nil
}

func parseNetset(b []byte) ([]string, error) {
	ls, err := lines(b)
	if err != nil {
		return nil, err
	}
	var out []string
	entries := -1
	for _, l := range ls {
		if v, ok := strings.CutPrefix(l, "# Entries         : "); ok {
			if _, err := fmt.Sscanf(v, "%d subnets", &entries); err != nil {
				return nil, err
			}
		}
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.Contains(l, "/") {
			if _, err := parsePrefix(l); err != nil {
				return nil, err
			}
		} else if err := parseIPv4(l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if entries != len(out) {
		return nil, fmt.Errorf("header says %d entries, body has %d", entries, len(out))
	}
	return out, nil
}

// hostsSkip are the names of a hosts file's preamble, never blocked domains.
var hostsSkip = []string{"localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost", "ip6-loopback", "0.0.0.0"}

func parseHosts(b []byte) ([]string, error) {
	s := string(b)
	if !strings.HasSuffix(s, "\r\n") || strings.Count(s, "\n") != strings.Count(s, "\r\n") {
		return nil, errors.New("not CRLF throughout")
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n") {
		l, _, _ = strings.Cut(l, "#")
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("hosts line without a name: %q", l)
		}
		if _, err := netip.ParseAddr(strings.Split(f[0], "%")[0]); err != nil {
			return nil, err
		}
		for _, name := range f[1:] {
			if !slices.Contains(hostsSkip, name) {
				out = append(out, name)
			}
		}
	}
	return out, nil
}
