// Package agent is TIP's spamtrap agent: it parses the spam of a mail server's
// Maildir folders where it lands, publishes the facts as numbered, immutable
// batches and serves them over HTTPS to collectors. The formats are documented in
// docs/agent-protocol.md; this file is their one Go implementation, shared by the
// agent and the collector.
package agent

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"time"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/tip-project/tip/mail"
)

// Schema is the version of the batch, manifest and wire formats.
const Schema = 1

const (
	batchFormat    = "tip-agent-batch"
	manifestFormat = "tip-agent-manifest"
)

// Limits of what a reader accepts, so a hostile agent cannot exhaust a collector.
const (
	MaxBatchMails   = 100_000
	MaxLine         = 8 << 20   // one mail's line of JSON
	MaxBatchBytes   = 512 << 20 // one batch, decompressed
	MaxManifestSize = 64 << 20
)

// BatchHeader is the first line of a batch.
type BatchHeader struct {
	Format  string    `json:"format"`
	Schema  int       `json:"schema"`
	Agent   string    `json:"agent"`
	Version uint64    `json:"version"`
	Created time.Time `json:"created"`
	Mails   int       `json:"mails"`
}

// Mail is one mail of a batch: where the agent found it and its facts.
type Mail struct {
	Name      string    `json:"name"`   // Maildir unique name, without ":2,FLAGS"
	Folder    string    `json:"folder"` // label of the Maildir it came from
	Delivered time.Time `json:"delivered"`
	Raw       bool      `json:"raw"` // the agent keeps the raw mail and serves it
	// RawOffset is where the raw mail starts in its batch's raw pack (it is
	// Facts.Size bytes long there); meaningful only when Raw.
	RawOffset int64      `json:"raw_offset,omitempty"`
	Facts     mail.Facts `json:"facts"`
}

// Batch is a decoded batch file.
type Batch struct {
	Header BatchHeader
	Mails  []Mail
}

// Entry is a published batch as the manifest lists it.
type Entry struct {
	Version uint64    `json:"version"`
	SHA256  string    `json:"sha256"` // of the batch file's bytes
	Size    int64     `json:"size"`
	Mails   int       `json:"mails"`
	Schema  int       `json:"schema"`
	Created time.Time `json:"created"`
	// RawSize is the size of the batch's raw pack, 0 when it has none.
	RawSize int64 `json:"raw_size,omitempty"`
}

// Manifest lists the published batches, versions 1 to Latest without gaps.
type Manifest struct {
	Format   string  `json:"format"`
	Schema   int     `json:"schema"`
	Agent    string  `json:"agent"`
	Latest   uint64  `json:"latest"`
	Versions []Entry `json:"versions"`
}

// StreamItem introduces one batch in a batch stream; Size bytes of it follow.
type StreamItem struct {
	Version uint64 `json:"version"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
}

// BatchName is the file name of a batch under batches/.
func BatchName(version uint64) string { return fmt.Sprintf("%020d.jsonl.gz", version) }

// PackName is the file name of a batch's raw pack under raw/.
func PackName(version uint64) string { return fmt.Sprintf("%020d.raw", version) }

var packNameRE = regexp.MustCompile(`^([0-9]{20})\.raw$`)

// ParsePackName is the version of a raw pack's file name, or false.
func ParsePackName(name string) (uint64, bool) { return versionOf(packNameRE, name) }

var batchNameRE = regexp.MustCompile(`^([0-9]{20})\.jsonl\.gz$`)

// ParseBatchName is the version of a batch file name, or false.
func ParseBatchName(name string) (uint64, bool) { return versionOf(batchNameRE, name) }

// versionOf is the version a file name matching re carries (its one group of 20
// digits), or false.
func versionOf(re *regexp.Regexp, name string) (uint64, bool) {
	m := re.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseUint(m[1], 10, 64)
	return v, err == nil && v > 0
}

var hexSHA = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidSHA256 says whether s is a SHA-256 as TIP writes it: 64 lower-case hex digits.
func ValidSHA256(s string) bool { return hexSHA.MatchString(s) }

// EncodeBatch writes a batch file: gzip-compressed JSON Lines, the header first.
// The header's Format, Schema and Mails are set from the batch.
func EncodeBatch(w io.Writer, b Batch) error {
	b.Header.Format, b.Header.Schema, b.Header.Mails = batchFormat, Schema, len(b.Mails)
	// The fastest level of a faster gzip: four times the standard library's
	// default speed for a quarter more bytes (at the default, compression took a
	// third of the agent's time per mail); any gzip reader reads it.
	zw, _ := kgzip.NewWriterLevel(w, kgzip.BestSpeed)
	enc := json.NewEncoder(zw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b.Header); err != nil {
		return err
	}
	for i := range b.Mails {
		if err := enc.Encode(&b.Mails[i]); err != nil {
			return err
		}
	}
	return zw.Close()
}

// DecodeBatch reads a batch file and checks it is the version expected (0: any).
// Every error says what is wrong; nothing of a bad batch is returned.
func DecodeBatch(r io.Reader, version uint64) (Batch, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return Batch{}, fmt.Errorf("batch: not gzip: %w", err)
	}
	defer zr.Close()
	lim := &io.LimitedReader{R: zr, N: MaxBatchBytes + 1}
	sc := bufio.NewScanner(lim)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	var b Batch
	line := 0
	var rawEnd int64 // the end of the last raw mail in the pack so far
	for sc.Scan() {
		line++
		if line == 1 {
			if err := strictJSON(sc.Bytes(), &b.Header); err != nil {
				return Batch{}, fmt.Errorf("batch header: %w", err)
			}
			h := b.Header
			switch {
			case h.Format != batchFormat:
				return Batch{}, fmt.Errorf("batch header: format %q, want %q", h.Format, batchFormat)
			case h.Schema != Schema:
				return Batch{}, fmt.Errorf("batch header: schema %d, this TIP reads %d", h.Schema, Schema)
			case h.Version == 0 || (version != 0 && h.Version != version):
				return Batch{}, fmt.Errorf("batch header: version %d, want %d", h.Version, version)
			case h.Mails < 0 || h.Mails > MaxBatchMails:
				return Batch{}, fmt.Errorf("batch header: %d mails, at most %d allowed", h.Mails, MaxBatchMails)
			}
			b.Mails = make([]Mail, 0, min(h.Mails, 4096))
			continue
		}
		if len(b.Mails) == b.Header.Mails {
			return Batch{}, fmt.Errorf("batch %d: more than the %d mails its header says", b.Header.Version, b.Header.Mails)
		}
		var m Mail
		if err := strictJSON(sc.Bytes(), &m); err != nil {
			return Batch{}, fmt.Errorf("batch %d line %d: %w", b.Header.Version, line, err)
		}
		if err := m.check(); err != nil {
			return Batch{}, fmt.Errorf("batch %d line %d: %w", b.Header.Version, line, err)
		}
		if m.Raw {
			// Raw mails lie in the pack in batch order without overlapping, so a
			// collector reads the pack once, front to back.
			if m.RawOffset < rawEnd || m.Facts.Size > math.MaxInt64-m.RawOffset {
				return Batch{}, fmt.Errorf("batch %d line %d: raw offset %d overlaps the mail before it (which ends at %d)", b.Header.Version, line, m.RawOffset, rawEnd)
			}
			rawEnd = m.RawOffset + m.Facts.Size
		} else if m.RawOffset != 0 {
			return Batch{}, fmt.Errorf("batch %d line %d: a raw offset for a mail not kept raw", b.Header.Version, line)
		}
		b.Mails = append(b.Mails, m)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Batch{}, fmt.Errorf("batch: a line longer than %d bytes", MaxLine)
		}
		return Batch{}, fmt.Errorf("batch: %w", err)
	}
	if lim.N <= 0 {
		return Batch{}, fmt.Errorf("batch: more than %d bytes decompressed", MaxBatchBytes)
	}
	if line == 0 {
		return Batch{}, errors.New("batch: empty")
	}
	if len(b.Mails) != b.Header.Mails {
		return Batch{}, fmt.Errorf("batch %d: %d mails, its header says %d", b.Header.Version, len(b.Mails), b.Header.Mails)
	}
	return b, nil
}

func (m *Mail) check() error {
	switch {
	case m.Name == "" || len(m.Name) > 255 || bytes.ContainsAny([]byte(m.Name), "/\x00"):
		return fmt.Errorf("mail name %q is not a Maildir name", m.Name)
	case len(m.Folder) > 255:
		return errors.New("folder label longer than 255 bytes")
	case !ValidSHA256(m.Facts.SHA256):
		return fmt.Errorf("mail %s: sha256 %q is not 64 lower-case hex digits", m.Name, m.Facts.SHA256)
	case m.Facts.Size < 0:
		return fmt.Errorf("mail %s: negative size", m.Name)
	case m.RawOffset < 0:
		return fmt.Errorf("mail %s: negative raw offset", m.Name)
	}
	return nil
}

// strictJSON decodes one JSON value that must fill the whole line.
func strictJSON(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(v); err != nil {
		return err
	}
	// dec.More is not enough: it reports a following ']' or '}' as the end.
	if rest := bytes.TrimSpace(line[dec.InputOffset():]); len(rest) > 0 {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// DecodeManifest reads and checks a manifest: the format, schema, versions 1 to
// Latest in order without gaps, and well-formed hashes.
func DecodeManifest(r io.Reader) (Manifest, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxManifestSize+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	if len(data) > MaxManifestSize {
		return Manifest{}, fmt.Errorf("manifest: larger than %d bytes", MaxManifestSize)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	if m.Format != manifestFormat || m.Schema != Schema {
		return Manifest{}, fmt.Errorf("manifest: format %q schema %d, want %q schema %d", m.Format, m.Schema, manifestFormat, Schema)
	}
	if err := CheckEntries(m.Versions, 0); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	if n := uint64(len(m.Versions)); m.Latest != n {
		return Manifest{}, fmt.Errorf("manifest: latest %d but %d versions", m.Latest, n)
	}
	return m, nil
}

// CheckEntries checks manifest entries that must follow version after: ascending
// without gaps, with well-formed hashes and sizes.
func CheckEntries(es []Entry, after uint64) error {
	for i, e := range es {
		switch {
		case e.Version != after+uint64(i)+1:
			return fmt.Errorf("entry %d: version %d, want %d", i, e.Version, after+uint64(i)+1)
		case !ValidSHA256(e.SHA256):
			return fmt.Errorf("version %d: sha256 %q is not 64 lower-case hex digits", e.Version, e.SHA256)
		case e.Size <= 0 || e.Size > MaxBatchBytes:
			return fmt.Errorf("version %d: size %d out of range", e.Version, e.Size)
		case e.Mails < 0 || e.Mails > MaxBatchMails:
			return fmt.Errorf("version %d: %d mails out of range", e.Version, e.Mails)
		case e.Schema != Schema:
			return fmt.Errorf("version %d: schema %d, this TIP reads %d", e.Version, e.Schema, Schema)
		case e.RawSize < 0:
			return fmt.Errorf("version %d: raw size %d out of range", e.Version, e.RawSize)
		}
	}
	return nil
}

// EncodeManifest writes a manifest, setting its format, schema and latest.
func EncodeManifest(w io.Writer, m Manifest) error {
	m.Format, m.Schema, m.Latest = manifestFormat, Schema, uint64(len(m.Versions))
	if m.Versions == nil {
		m.Versions = []Entry{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(m)
}
