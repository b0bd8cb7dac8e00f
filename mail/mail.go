// Package mail extracts the facts TIP keeps about one spam: the true sender by the
// trap's trust rules, the envelope and header addresses, the decoded subject, the
// dates and their skew, every Received hop, the URLs of text, HTML and attachments
// (normalised as feed URLs are), the attachments with their digests, the parse
// defects, and a campaign key that groups mails made from one template.
//
// Extraction is plain Go on the raw bytes of one message, built on
// github.com/emersion/go-message's charset tables (bodies and RFC 2047 words),
// net/mail for addresses, golang.org/x/net/html, and feeds.Normalize for URLs.
// Headers and MIME parts are split here with bounded readers, and lines end at
// CRLF, LF or a bare CR alike, as Python's email package reads mail; encoded
// words with badly padded base64 decode as they do there. It never fails
// and never panics: what is wrong with a message becomes a defect, and every
// cost (size, nesting, parts, decoded bytes, headers, URLs, archive entries) is
// bounded by Limits.
//
// It is written for throughput (issue 5): the common forms of addresses and
// media types take hand-written paths that read them exactly as net/mail and
// mime do, and fall back to those for anything else; scratch buffers pass from
// one extraction to the next through a sync.Pool.
package mail

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	// Registers every charset golang.org/x/text knows with go-message.
	_ "github.com/emersion/go-message/charset"

	"github.com/tip-project/tip/textcap"
)

// Config is one trap's view of its mail: which hosts are its own, and how much
// work one message may cost.
type Config struct {
	// TrapMX are the host names of the trap's own MX hosts; ".example.org" names
	// every host under example.org. The
	// Received header one of them wrote is the first trusted hop.
	TrapMX []string `json:"trap_mx,omitempty"`
	// TrapMXAddrs are their addresses, matched against the address a Received
	// header's by-clause names.
	TrapMXAddrs []netip.Prefix `json:"trap_mx_addrs,omitempty"`
	// TrustedRelays are relays of the trap's own organisation: a hop whose
	// connecting address is one of them is stepped over, like a private address.
	TrustedRelays []netip.Prefix `json:"trusted_relays,omitempty"`
	Limits        Limits         `json:"limits"`
}

// Limits bound the work one message may cost. A zero field takes its value from
// DefaultLimits.
type Limits struct {
	MaxSize           int64 `json:"max_size"`            // bytes of a message parsed beyond its headers
	MaxDepth          int   `json:"max_depth"`           // nesting of multiparts and attached messages
	MaxParts          int   `json:"max_parts"`           // MIME entities visited
	MaxDecoded        int64 `json:"max_decoded"`         // bytes decoded (transfer encodings, charsets, zip members)
	MaxHeaders        int   `json:"max_headers"`         // header fields read per entity
	MaxHeaderLen      int   `json:"max_header_len"`      // bytes of one header field
	MaxURLs           int   `json:"max_urls"`            // distinct URLs kept
	MaxArchiveEntries int   `json:"max_archive_entries"` // entries of a zip attachment listed and scanned
}

// DefaultLimits are generous for real spam and small enough for hostile input.
func DefaultLimits() Limits {
	return Limits{
		MaxSize:           25 << 20,
		MaxDepth:          10,
		MaxParts:          200,
		MaxDecoded:        50 << 20,
		MaxHeaders:        1000,
		MaxHeaderLen:      64 << 10,
		MaxURLs:           2000,
		MaxArchiveEntries: 100,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxSize <= 0 {
		l.MaxSize = d.MaxSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxDecoded <= 0 {
		l.MaxDecoded = d.MaxDecoded
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = d.MaxHeaders
	}
	if l.MaxHeaderLen <= 0 {
		l.MaxHeaderLen = d.MaxHeaderLen
	}
	if l.MaxURLs <= 0 {
		l.MaxURLs = d.MaxURLs
	}
	if l.MaxArchiveEntries <= 0 {
		l.MaxArchiveEntries = d.MaxArchiveEntries
	}
	return l
}

// Facts is what TIP keeps about one mail; `tip spam parse` prints it as JSON.
type Facts struct {
	SHA256 string `json:"sha256"` // of the raw message: its S3 key
	// Digest identifies the mail whatever its line ends: the SHA-256 of the raw
	// message with every CRLF read as LF. A mail read from a file (LF) and the same
	// mail fetched over IMAP (which sends CRLF) have one digest, and TIP records
	// them as one mail seen twice.
	Digest string `json:"digest"`
	Size   int64  `json:"size"`

	// SenderIP is the true sender by the trust rules (canonical; an IPv4-mapped
	// address as IPv4; "" when none could be trusted). SenderHost is the name
	// the trap's side resolved it to, HELO what it said, SenderHop the index in
	// Hops of the header naming it (-1 if none).
	SenderIP   string `json:"sender_ip"`
	SenderHost string `json:"sender_host,omitempty"`
	HELO       string `json:"helo,omitempty"`
	SenderHop  int    `json:"sender_hop"`

	EnvelopeFrom string `json:"envelope_from"` // Return-Path address, "" for <>
	From         string `json:"from,omitempty"`
	FromName     string `json:"from_name,omitempty"`
	ReplyTo      string `json:"reply_to,omitempty"`
	// To is the trap address: Delivered-To, else X-Original-To, else Exim's
	// Envelope-to, else the "for" of the trap MX's Received header, else the
	// first address of To.
	To        string `json:"to,omitempty"`
	MessageID string `json:"message_id,omitempty"`

	Subject    string     `json:"subject"`
	Date       string     `json:"date,omitempty"` // as written, unfolded
	DateParsed *time.Time `json:"date_parsed,omitempty"`
	// Received is the time the trap's MX wrote in its Received header (the
	// newest header's when no MX is configured or found); DateSkewSeconds is
	// Date minus Received, 0 unless both are known.
	Received        *time.Time `json:"received,omitempty"`
	DateSkewSeconds int64      `json:"date_skew_s"`

	XMailer     string       `json:"x_mailer,omitempty"`
	Hops        []Hop        `json:"hops"` // Received headers, newest first
	URLs        []URL        `json:"urls"`
	Domains     []string     `json:"domains"` // distinct registrable domains of URLs, sorted
	Attachments []Attachment `json:"attachments,omitempty"`
	Defects     []string     `json:"defects,omitempty"`
	CampaignKey string       `json:"campaign_key"`
}

// Hop is one Received header.
type Hop struct {
	From   string     `json:"from,omitempty"`    // the connecting host's name as the receiver resolved it
	FromIP string     `json:"from_ip,omitempty"` // the connecting address, from the from-clause only
	HELO   string     `json:"helo,omitempty"`    // what the connecting host said it was
	By     string     `json:"by,omitempty"`      // the receiving host
	ByIP   string     `json:"by_ip,omitempty"`   // the receiving host's address, when the header names it
	With   string     `json:"with,omitempty"`
	ID     string     `json:"id,omitempty"`
	For    string     `json:"for,omitempty"`
	Date   *time.Time `json:"date,omitempty"`
	Raw    string     `json:"raw"` // the header value, unfolded
}

// URL is one distinct URL of a mail, normalised as feeds.Normalize does.
type URL struct {
	URL         string `json:"url"`
	Host        string `json:"host"`
	Registrable string `json:"registrable,omitempty"`
	// Source is where it was first found: text, html, attachment, or header
	// (List-Unsubscribe).
	Source string `json:"source"`
}

// URL sources.
const (
	SourceText       = "text"
	SourceHTML       = "html"
	SourceAttachment = "attachment"
	SourceHeader     = "header"
)

// Attachment is one MIME part that is not a body text: a named or attached part,
// an inline image, an attached message.
type Attachment struct {
	Name   string `json:"name,omitempty"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`   // decoded bytes
	SHA256 string `json:"sha256"` // of the decoded bytes
	// Entries are the names inside a zip attachment (at most MaxArchiveEntries).
	Entries []string `json:"entries,omitempty"`
}

// maxDefects bounds the defect list; hostile input could otherwise repeat one.
const maxDefects = 50

// maxDefectLen bounds one defect's text: defects quote the mail (header names,
// boundaries, attachment names), and every mail's are kept in PostgreSQL.
const maxDefectLen = 300

// extractor is the state of one Extract call.
type extractor struct {
	*buffers
	cfg     Config
	lim     Limits
	f       *Facts
	parts   int
	decoded int64
	// charset is the first charset a text part declares: raw 8-bit header bytes
	// are read in it.
	charset  string
	bodyText []string // top-level plain text bodies
	bodyLen  int
	htmlText []string        // top-level HTML bodies' visible text
	once     map[string]bool // defects reported once per message
	trapHop  int             // index in Hops of the trap MX's header, -1 if none
	// unclosed: a multipart lacks its closing delimiter.
	unclosed   bool
	candidates int // URLs normalised, kept or not
	// trapMXNames are cfg.TrapMX lower-cased, without a final dot.
	trapMXNames []string
}

// buffers are what one extraction hands on to the next: scratch space, and the
// maps of URLs seen, emptied. Nothing a Facts refers to.
type buffers struct {
	urls     map[string]bool // normalised URLs kept
	raws     map[rawURL]bool // raw URLs already looked at
	skeleton []byte          // the MIME outline in the campaign key
	key      []byte          // what the campaign key hashes
	spans    []fieldSpan     // readHeader's
	header   []byte          // readHeader's
	received receivedParser
	tag      []byte // html's tag name
	style    []byte // html's style value
}

var bufferPool = sync.Pool{New: func() any {
	return &buffers{urls: map[string]bool{}, raws: map[rawURL]bool{}}
}}

// maxKeptBuffer bounds a buffer kept for the next extraction.
const maxKeptBuffer = 1 << 20

func (b *buffers) release() {
	if len(b.urls) > 1000 || len(b.raws) > 1000 {
		b.urls, b.raws = map[string]bool{}, map[rawURL]bool{}
	} else {
		clear(b.urls)
		clear(b.raws)
	}
	for _, buf := range []*[]byte{&b.key, &b.header, &b.tag, &b.style} {
		if cap(*buf) > maxKeptBuffer {
			*buf = nil
		}
	}
	clear(b.received.toks[:cap(b.received.toks)])
	for i := range b.received.cl {
		c := &b.received.cl[i]
		clear(c.comments[:cap(c.comments)])
		clear(c.words[:cap(c.words)])
	}
	b.skeleton = b.skeleton[:0]
	bufferPool.Put(b)
}

// Digest is the SHA-256 of raw with every CRLF read as LF (Facts.Digest), hashed
// as it is read: no copy of the message is made.
func Digest(raw []byte) string {
	h := sha256.New()
	for len(raw) > 0 {
		i := bytes.Index(raw, crlf)
		if i < 0 {
			h.Write(raw)
			break
		}
		h.Write(raw[:i])
		h.Write(crlf[1:])
		raw = raw[i+2:]
	}
	return hex.EncodeToString(h.Sum(nil))
}

var crlf = []byte("\r\n")

// Extract takes one raw message apart. It never fails: problems become Defects.
// A message over Limits.MaxSize is recorded with its digest, size and headers.
func Extract(raw []byte, cfg Config) (f Facts) {
	sum := sha256.Sum256(raw)
	f.SHA256 = hex.EncodeToString(sum[:])
	f.Digest = Digest(raw)
	f.Size = int64(len(raw))
	f.SenderHop = -1
	f.Hops, f.URLs, f.Domains = []Hop{}, []URL{}, []string{}
	defer func() {
		// A bug must not stop an ingest; the fuzz tests make sure none is left.
		if r := recover(); r != nil {
			f.Defects = append(f.Defects, fmt.Sprintf("internal error: %v", r))
		}
	}()
	b := bufferPool.Get().(*buffers)
	defer b.release()
	x := &extractor{buffers: b, cfg: cfg, lim: cfg.Limits.withDefaults(), f: &f, trapHop: -1}
	x.run(raw)
	return f
}

func (x *extractor) defect(format string, args ...any) {
	if len(x.f.Defects) >= maxDefects {
		return
	}
	d := textcap.Cap(fmt.Sprintf(format, args...), maxDefectLen)
	if slices.Contains(x.f.Defects, d) {
		return
	}
	if len(x.f.Defects) == maxDefects-1 {
		d = "more defects not listed"
	}
	x.f.Defects = append(x.f.Defects, d)
}

// defectOnce reports a limit or a kind of damage once per message.
func (x *extractor) defectOnce(key, format string, args ...any) {
	if x.once == nil {
		x.once = map[string]bool{}
	}
	if x.once[key] {
		return
	}
	x.once[key] = true
	x.defect(format, args...)
}

func (x *extractor) run(raw []byte) {
	f := x.f
	if len(raw) == 0 {
		x.defect("empty message")
		x.finish()
		return
	}
	over := int64(len(raw)) > x.lim.MaxSize
	if over {
		x.defect("message of %d bytes is over the %d-byte limit: only its headers were read", len(raw), x.lim.MaxSize)
	}
	head := raw
	if over {
		head = raw[:x.lim.MaxSize]
	}
	head = crToLF(head)
	h, body := x.readHeader(head, true)
	if len(h) == 0 {
		x.defect("no header fields")
	}
	x.trace(h)
	if !over {
		x.entity(h, body, 0, "")
		if x.unclosed && head[len(head)-1] != '\n' {
			x.defect("message ends inside a line: truncated")
		}
	}
	x.addresses(h)
	x.dates(h)
	f.Subject = x.text(h.get("Subject"), "Subject")
	f.XMailer = x.text(h.get("X-Mailer"), "X-Mailer")
	for _, v := range h.all("List-Unsubscribe") {
		x.scanText(v, SourceHeader)
	}
	x.finish()
}

// finish derives what depends on everything else.
func (x *extractor) finish() {
	f := x.f
	for _, u := range f.URLs {
		if u.Registrable != "" {
			f.Domains = append(f.Domains, u.Registrable)
		}
	}
	slices.Sort(f.Domains)
	f.Domains = slices.Compact(f.Domains)
	f.CampaignKey = x.campaignKey()
}

// addresses fills the envelope and header addresses.
func (x *extractor) addresses(h header) {
	f := x.f
	if rp, ok := h.first("Return-Path"); ok {
		f.EnvelopeFrom = angleAddr(rp)
	}
	if v, ok := h.first("From"); ok {
		f.From, f.FromName = x.address(v, "From")
	} else {
		x.defect("missing From header")
	}
	if v, ok := h.first("Reply-To"); ok {
		f.ReplyTo, _ = x.address(v, "Reply-To")
	}
	f.MessageID = messageID(h.get("Message-ID"))
	// The trap address: what the trap's own delivery wrote (Postfix and
	// Dovecot, Exim), else what its MX was told, else what the sender claims.
	switch {
	case h.get("Delivered-To") != "":
		f.To = angleAddr(h.get("Delivered-To"))
	case h.get("X-Original-To") != "":
		f.To = angleAddr(h.get("X-Original-To"))
	case h.get("Envelope-To") != "":
		f.To = angleAddr(h.get("Envelope-To"))
	case x.trapHop >= 0 && f.Hops[x.trapHop].For != "":
		f.To = f.Hops[x.trapHop].For
	default:
		if v, ok := h.first("To"); ok {
			f.To, _ = x.address(v, "To")
		}
	}
}

// dates reads the Date header and measures it against the trap's receipt.
func (x *extractor) dates(h header) {
	f := x.f
	v, ok := h.first("Date")
	if !ok {
		x.defect("missing Date header")
		return
	}
	f.Date = v
	t, ok := parseDate(v)
	if !ok {
		x.defect("unparseable Date header")
		return
	}
	f.DateParsed = &t
	if f.Received != nil {
		f.DateSkewSeconds = t.Unix() - f.Received.Unix()
	}
}

// messageID is the first <id> of a Message-ID value, without the brackets.
func messageID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
		return strings.TrimSpace(v[i+1:])
	}
	return v
}

// angleAddr is the address of a Return-Path or Delivered-To value: "<a@b>" or a
// bare address; "" for the null sender "<>".
func angleAddr(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j >= 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
		return strings.TrimSpace(v[i+1:])
	}
	if i := strings.IndexAny(v, " \t,;("); i >= 0 {
		v = v[:i]
	}
	return v
}
