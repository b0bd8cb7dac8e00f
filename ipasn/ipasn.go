// Package ipasn maps IP addresses to their origin AS, reading the public iptoasn.com
// TSV format (ip2asn-v4.tsv, ip2asn-v6.tsv, ip2asn-combined.tsv, plain or gzipped):
//
//	range_start <TAB> range_end <TAB> AS_number <TAB> country_code <TAB> AS_description
//
// A real user drops in the real file; the lab serves one in the same format.
package ipasn

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tip-project/tip/textcap"
)

// AS is what the table knows about an address's origin.
type AS struct {
	Number      uint32
	Country     string // ISO 3166 alpha-2, "" when the file says None
	Description string
}

// Range is one row of the table.
type Range struct {
	First, Last netip.Addr
	AS
}

// Table answers lookups over the loaded ranges. Rows are held compactly: an IPv4
// range in 12 bytes and an IPv6 range in 40, each naming its origin in a list of
// the distinct ASes: 500,000 IPv4 rows of 80,000 origins, the real table's size,
// take 15 MB of heap where rows kept as Range, each holding its line, took 94
// (BenchmarkLoadRealSize).
type Table struct {
	v4   []span4 // sorted by first, stably: of rows starting at one address, the later in the file wins
	v6   []span6
	ases []AS // what span.as indexes
}

type span4 struct{ first, last, as uint32 }

type span6 struct {
	first, last [2]uint64 // the address as big-endian halves
	as          uint32
}

func halves(a netip.Addr) [2]uint64 {
	b := a.As16()
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func less6(a, b [2]uint64) bool { return a[0] < b[0] || a[0] == b[0] && a[1] < b[1] }

// Stats describes a load: rows kept, unrouted rows skipped, bad lines and a sample.
type Stats struct {
	Rows, Unrouted, Bad int
	BadSample           []string
}

// MaxBadShare is the share of malformed lines above which Load fails.
const MaxBadShare = 0.01

// Default limits of a load. iptoasn.com's ip2asn-v4.tsv.gz is about 500,000 rows,
// 25 MB as TSV and 6 MB gzipped, with some 80,000 distinct origins; the combined
// v4 and v6 table somewhat more. The defaults leave the real tables several
// times their size to grow, while a table that would take gigabytes (a gzip bomb,
// a wrong file) is refused after at most a few hundred MB of reading with the
// heap grown by under 150 MB (TestLoadRefusesAGzipBomb).
const (
	DefaultMaxInput = 64 << 20  // bytes read, as served (gzipped or not)
	DefaultMaxBytes = 256 << 20 // bytes of TSV, after gunzip
	DefaultMaxRows  = 4_000_000 // data lines: routed, unrouted and malformed
	DefaultMaxASes  = 1 << 20   // distinct origins (AS, country, description); the real table has about 80,000
	// MaxLine is the longest line read; a real one is under 200 bytes.
	MaxLine = 4 << 10
)

// Limits bound what a load reads and keeps; a zero field takes its default.
type Limits struct {
	MaxInput int64 // bytes read from the reader
	MaxBytes int64 // bytes of TSV, after gunzip when the input is gzipped
	MaxRows  int   // data lines (comments and blank lines aside)
	MaxASes  int   // distinct origins: AS number, country and description
}

// ErrTooLarge is what a load refused for exceeding a limit wraps.
var ErrTooLarge = errors.New("ipasn: table too large")

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxInput <= 0 {
		l.MaxInput = DefaultMaxInput
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxRows <= 0 {
		l.MaxRows = DefaultMaxRows
	}
	if l.MaxASes <= 0 {
		l.MaxASes = DefaultMaxASes
	}
	return l
}

// Load reads a TSV (gzip is detected) within the default Limits.
func Load(r io.Reader) (*Table, Stats, error) { return Limits{}.Load(r) }

// Load reads a TSV (gzip is detected). Malformed lines are counted and sampled; the
// load fails if more than MaxBadShare of the lines are malformed, and with an
// error wrapping ErrTooLarge as soon as the input passes one of the limits.
func (l Limits) Load(r io.Reader) (*Table, Stats, error) {
	l = l.WithDefaults()
	in := &cappedReader{r: r, left: l.MaxInput, what: "bytes read (ipasn.Limits.MaxInput)", limit: l.MaxInput}
	br := bufio.NewReaderSize(in, 64<<10)
	var text io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, Stats{}, loadErr("gzip", err)
		}
		defer gz.Close()
		text = &cappedReader{r: gz, left: l.MaxBytes, what: "bytes of TSV after gunzip (ipasn.Limits.MaxBytes)", limit: l.MaxBytes}
	} else if l.MaxBytes < l.MaxInput {
		text = &cappedReader{r: br, left: l.MaxBytes, what: "bytes of TSV (ipasn.Limits.MaxBytes)", limit: l.MaxBytes}
	}
	var st Stats
	t := &Table{}
	origins := map[AS]uint32{}
	sc := bufio.NewScanner(text)
	sc.Buffer(make([]byte, 0, 4096), MaxLine)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), " \r")
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if st.Rows+st.Unrouted+st.Bad >= l.MaxRows {
			return nil, st, fmt.Errorf("%w: more than %d rows (ipasn.Limits.MaxRows)", ErrTooLarge, l.MaxRows)
		}
		rg, routed, err := ParseLine(line)
		if err != nil {
			st.Bad++
			if len(st.BadSample) < 5 {
				st.BadSample = append(st.BadSample, textcap.Cap(fmt.Sprintf("line %d: %v", lineNo, err), 200))
			}
			continue
		}
		if !routed {
			st.Unrouted++
			continue
		}
		if !t.add(rg, origins, l.MaxASes) {
			return nil, st, fmt.Errorf("%w: more than %d distinct origins (ipasn.Limits.MaxASes)", ErrTooLarge, l.MaxASes)
		}
		st.Rows++
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, st, fmt.Errorf("ipasn: line %d longer than %d bytes; is this an iptoasn.com TSV?", lineNo+1, MaxLine)
		}
		return nil, st, loadErr("read", err)
	}
	total := st.Rows + st.Unrouted + st.Bad
	if total == 0 {
		return nil, st, errors.New("ipasn: no ranges in input")
	}
	if float64(st.Bad)/float64(total) > MaxBadShare {
		return nil, st, fmt.Errorf("ipasn: %d of %d lines malformed (first: %s); is this an iptoasn.com TSV?", st.Bad, total, strings.Join(st.BadSample, "; "))
	}
	slices.SortStableFunc(t.v4, func(a, b span4) int { return cmp.Compare(a.first, b.first) })
	slices.SortStableFunc(t.v6, func(a, b span6) int {
		if c := cmp.Compare(a.first[0], b.first[0]); c != 0 {
			return c
		}
		return cmp.Compare(a.first[1], b.first[1])
	})
	return t, st, nil
}

// add keeps a routed row, naming its origin once however many rows share it (the
// strings are copied out of the line, which is not kept). It reports false when
// the row's origin would be one more than maxASes.
func (t *Table) add(r Range, origins map[AS]uint32, maxASes int) bool {
	i, ok := origins[r.AS]
	if !ok {
		if len(t.ases) >= maxASes {
			return false
		}
		i = uint32(len(t.ases))
		as := AS{Number: r.Number, Country: strings.Clone(r.Country), Description: strings.Clone(r.Description)}
		t.ases = append(t.ases, as)
		origins[as] = i
	}
	if r.First.Is4() {
		t.v4 = append(t.v4, span4{first: v4(r.First), last: v4(r.Last), as: i})
	} else {
		t.v6 = append(t.v6, span6{first: halves(r.First), last: halves(r.Last), as: i})
	}
	return true
}

func v4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

// loadErr wraps a read error; one that is a limit's says so alone.
func loadErr(what string, err error) error {
	if errors.Is(err, ErrTooLarge) {
		return err
	}
	return fmt.Errorf("ipasn: %s: %w", what, err)
}

// cappedReader fails with ErrTooLarge once more than limit bytes were read.
type cappedReader struct {
	r     io.Reader
	left  int64
	limit int64
	what  string
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Past the limit only if there is more to read.
		var one [1]byte
		if n, err := c.r.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("%w: more than %d %s", ErrTooLarge, c.limit, c.what)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// ParseLine parses one TSV row; routed is false for AS 0 ("Not routed") rows.
func ParseLine(line string) (r Range, routed bool, err error) {
	f := strings.SplitN(line, "\t", 5)
	if len(f) < 3 {
		return r, false, fmt.Errorf("want 5 tab-separated fields, got %d", len(f))
	}
	if r.First, err = netip.ParseAddr(strings.TrimSpace(f[0])); err != nil {
		return r, false, fmt.Errorf("range_start: %w", err)
	}
	if r.Last, err = netip.ParseAddr(strings.TrimSpace(f[1])); err != nil {
		return r, false, fmt.Errorf("range_end: %w", err)
	}
	r.First, r.Last = r.First.Unmap(), r.Last.Unmap()
	if r.First.Is4() != r.Last.Is4() || r.Last.Less(r.First) {
		return r, false, fmt.Errorf("range %s-%s is not ordered within one family", r.First, r.Last)
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(f[2]), "AS"), 10, 32)
	if err != nil {
		return r, false, fmt.Errorf("AS_number %q: not a number", f[2])
	}
	r.Number = uint32(n)
	if len(f) > 3 {
		if cc := strings.TrimSpace(f[3]); cc != "None" && cc != "" {
			r.Country = cc
		}
	}
	if len(f) > 4 {
		r.Description = strings.TrimSpace(f[4])
	}
	return r, r.Number != 0, nil
}

// Lookup returns the AS announcing ip. A nil table knows no AS.
func (t *Table) Lookup(ip netip.Addr) (AS, bool) {
	if t == nil {
		return AS{}, false
	}
	ip = ip.Unmap()
	// The last range starting at or before ip.
	if ip.Is4() {
		x := v4(ip)
		i := sort.Search(len(t.v4), func(i int) bool { return x < t.v4[i].first }) - 1
		if i >= 0 && x <= t.v4[i].last {
			return t.ases[t.v4[i].as], true
		}
		return AS{}, false
	}
	if !ip.Is6() {
		return AS{}, false
	}
	x := halves(ip)
	i := sort.Search(len(t.v6), func(i int) bool { return less6(x, t.v6[i].first) }) - 1
	if i >= 0 && !less6(t.v6[i].last, x) {
		return t.ases[t.v6[i].as], true
	}
	return AS{}, false
}

// Len is the number of routed ranges.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.v4) + len(t.v6)
}

// Write renders ranges in the iptoasn TSV format, filling the gaps between them
// with "Not routed" rows as the real file does. Ranges must be sorted and disjoint.
func Write(w io.Writer, ranges []Range) error {
	bw := bufio.NewWriter(w)
	gap := func(first, last netip.Addr) {
		fmt.Fprintf(bw, "%s\t%s\t0\tNone\tNot routed\n", first, last)
	}
	var prev netip.Addr
	for i, r := range ranges {
		if i > 0 && prev.Is4() == r.First.Is4() {
			if next := prev.Next(); next.Less(r.First) {
				gap(next, r.First.Prev())
			}
		}
		cc := r.Country
		if cc == "" {
			cc = "None"
		}
		fmt.Fprintf(bw, "%s\t%s\t%d\t%s\t%s\n", r.First, r.Last, r.Number, cc, r.Description)
		prev = r.Last
	}
	return bw.Flush()
}
