// Package feeds parses public blacklist feeds — Spamhaus DROP and ASN-DROP,
// abuse.ch Feodo Tracker, URLhaus and SSLBL, blocklist.de-style IP lists, DShield,
// OpenPhish, PhishTank, FireHOL netsets, hosts files and a configurable generic
// layout — into normalised indicators. Parsing streams in constant memory (a
// line, a JSON token, a JSON record and its nesting are bounded; what exceeds a
// bound is a bad line) and tolerates what real feeds do: comments, banners,
// CRLF, a UTF-8 byte order mark, trailing spaces, blank lines, IPv6 where IPv4
// was expected, a header row that moved. It is plain Go: no network, no Temporal.
package feeds

import (
	"errors"
	"fmt"
	"time"
)

// Type is what an indicator is.
type Type string

const (
	IPv4   Type = "ipv4"
	IPv6   Type = "ipv6"
	CIDR   Type = "cidr"
	ASN    Type = "asn"
	Domain Type = "domain"
	URL    Type = "url"
	SHA1   Type = "sha1"
	SHA256 Type = "sha256"
	MD5    Type = "md5"
)

// Indicator is one normalised entry of a feed. Value is canonical, so two feeds
// listing the same thing give equal Values:
//
//   - ipv4, ipv6: netip's canonical text; an IPv4-mapped IPv6 address becomes IPv4.
//   - cidr: the masked prefix ("1.2.3.0/24"); a /32 or /128 becomes an ipv4 or ipv6
//     address, so one address has one form whichever way a feed writes it.
//   - asn: "AS" and the decimal number ("AS6517").
//   - domain: lower-case ASCII (IDNA), no trailing dot.
//   - url: scheme and host lower-case, host in IDNA, default port and fragment removed.
//   - sha1, sha256, md5: lower-case hex.
type Indicator struct {
	Type  Type   `json:"type"`
	Value string `json:"value"`
	// Registrable is the registrable domain (eTLD+1) of a domain or URL host;
	// empty for URLs on an IP address.
	Registrable string `json:"registrable,omitempty"`
	// The optional context a feed gives: the C2 port, the malware family, threat
	// tags or phishing target, and the feed's own reference (SBL id, URLhaus link,
	// PhishTank id).
	Port    string `json:"port,omitempty"`
	Malware string `json:"malware,omitempty"`
	Ref     string `json:"ref,omitempty"`
	// Category is what the feed says the entry is, where it says it per entry
	// (URLhaus's threat: malware_download); the source's category otherwise.
	Category string `json:"category,omitempty"`
	// Listed is when the feed says the entry was first listed (Feodo's
	// first_seen, URLhaus's dateadded, SSLBL's Listingdate, PhishTank's
	// submission_time), in UTC; zero when it does not say or says nonsense.
	Listed time.Time `json:"listed,omitzero"`
}

// Options configure the generic parser and the tolerance of every parser.
type Options struct {
	// CommentPrefix starts a comment line (generic; default "#").
	CommentPrefix string
	// Separator splits a line into columns (generic); empty means runs of spaces
	// or tabs, "," means CSV with quoting.
	Separator string
	// Column is the 0-based column that holds the indicator (generic).
	Column int
	// Header skips a header row (generic): the first data line whose column does
	// not parse, wherever it is.
	Header bool
	// AllowUnterminated parses a last line that has no newline. By default it is
	// a bad line: a body that stops mid-line was most likely cut short, and a cut
	// entry can still parse (an IPv6 address cut to a shorter one). Set it for a
	// feed known to omit the final newline (Cloudflare's ips-v4).
	AllowUnterminated bool
	// KeepPublicSuffix emits domains that are public suffixes (blogspot.com,
	// akamaized.net) instead of dropping them: an allowlist wants them.
	KeepPublicSuffix bool
	// Type is the indicator type of the column (generic); "ip" accepts both
	// families. Required for the generic parser.
	Type Type
	// MaxBadShare is the share of bad data lines above which Parse fails with
	// ErrMalformed (default 0.05).
	MaxBadShare float64
}

// Stats count what Parse saw. Lines = Comments + Blank + data lines; a data line
// gives indicators, is dropped, or is Bad.
type Stats struct {
	Lines      int `json:"lines"`
	Indicators int `json:"indicators"`
	Comments   int `json:"comments"` // comments, banners, headers and metadata lines
	Blank      int `json:"blank"`
	Bad        int `json:"bad"`
	// BadSample holds the first few bad lines with their line numbers and why.
	BadSample []string `json:"bad_sample,omitempty"`
	// Dropped counts valid entries left out, by reason: "private" (RFC 1918,
	// shared, ULA), "reserved" (this network, loopback, link-local,
	// documentation, benchmarking, multicast, 240/4), "bogon" (a prefix that
	// covers or straddles such space), a reserved or private ASN, "local" (a
	// hosts file's localhost names), "public-suffix" (a domain entry that is one). Duplicates are not
	// detected: that would take memory growing with the feed.
	Dropped map[string]int `json:"dropped,omitempty"`
}

// ErrMalformed says a body is not the feed it should be: an HTML page, a broken
// archive, or more bad lines than Options.MaxBadShare allows.
var ErrMalformed = errors.New("malformed feed")

// ErrUnknownFormat is returned for a format name Parse does not know.
var ErrUnknownFormat = errors.New("unknown feed format")

// FormatInfo describes one format Parse knows.
type FormatInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        Type   `json:"type"` // the usual indicator type; "" when configured
}

// Formats lists every format Parse knows, in a stable order.
func Formats() []FormatInfo {
	out := make([]FormatInfo, len(formats))
	for i, f := range formats {
		out[i] = FormatInfo{Name: f.name, Description: f.desc, Type: f.typ}
	}
	return out
}

func lookup(name string) (*format, error) {
	for i := range formats {
		if formats[i].name == name {
			return &formats[i], nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownFormat, name)
}
