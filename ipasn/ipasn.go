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
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
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

// Table answers lookups over the loaded ranges.
type Table struct {
	ranges []Range // sorted by First, non-overlapping for lookups
}

// Stats describes a load: rows kept, unrouted rows skipped, bad lines and a sample.
type Stats struct {
	Rows, Unrouted, Bad int
	BadSample           []string
}

// MaxBadShare is the share of malformed lines above which Load fails.
const MaxBadShare = 0.01

// Load reads a TSV (gzip is detected). Malformed lines are counted and sampled; the
// load fails only if more than MaxBadShare of the lines are malformed.
func Load(r io.Reader) (*Table, Stats, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, Stats{}, fmt.Errorf("ipasn: gzip: %w", err)
		}
		defer gz.Close()
		br = bufio.NewReaderSize(gz, 64<<10)
	}
	var st Stats
	t := &Table{}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
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
		rg, routed, err := ParseLine(line)
		if err != nil {
			st.Bad++
			if len(st.BadSample) < 5 {
				st.BadSample = append(st.BadSample, fmt.Sprintf("line %d: %v", lineNo, err))
			}
			continue
		}
		if !routed {
			st.Unrouted++
			continue
		}
		t.ranges = append(t.ranges, rg)
		st.Rows++
	}
	if err := sc.Err(); err != nil {
		return nil, st, fmt.Errorf("ipasn: read: %w", err)
	}
	total := st.Rows + st.Unrouted + st.Bad
	if total == 0 {
		return nil, st, errors.New("ipasn: no ranges in input")
	}
	if float64(st.Bad)/float64(total) > MaxBadShare {
		return nil, st, fmt.Errorf("ipasn: %d of %d lines malformed (first: %s); is this an iptoasn.com TSV?", st.Bad, total, strings.Join(st.BadSample, "; "))
	}
	sort.SliceStable(t.ranges, func(i, j int) bool { return t.ranges[i].First.Less(t.ranges[j].First) })
	return t, st, nil
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

// Lookup returns the AS announcing ip.
func (t *Table) Lookup(ip netip.Addr) (AS, bool) {
	ip = ip.Unmap()
	// The last range starting at or before ip.
	i := sort.Search(len(t.ranges), func(i int) bool { return ip.Less(t.ranges[i].First) }) - 1
	if i >= 0 && !t.ranges[i].Last.Less(ip) {
		return t.ranges[i].AS, true
	}
	return AS{}, false
}

// Len is the number of routed ranges.
func (t *Table) Len() int { return len(t.ranges) }

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
