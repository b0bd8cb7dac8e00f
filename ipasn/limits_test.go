package ipasn

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"testing"
)

// bomb is a gzip stream of rows IPv4 rows of one origin: one member of perMember
// rows, repeated (a reader of several gzip members reads them all as one stream),
// so building it costs one member's compression however large it expands. 10
// million rows are about 450 MB of TSV in 3 MB of gzip.
func bomb(t testing.TB, rows, perMember int) (io.Reader, int64) {
	t.Helper()
	var tsv bytes.Buffer
	for i := range perMember {
		a := netip.AddrFrom4([4]byte{1, 0, 0, byte(i)})
		fmt.Fprintf(&tsv, "%s\t%s\t64500\tZZ\tBOMB-AS Example\n", a, a)
	}
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zw.Write(tsv.Bytes())
	zw.Close()
	var parts []io.Reader
	for range rows / perMember {
		parts = append(parts, bytes.NewReader(member.Bytes()))
	}
	return io.MultiReader(parts...), int64(member.Len()) * int64(rows/perMember)
}

// heapWatch passes reads through while the heap stays within limit bytes of what
// it was when the watch began, and fails them once it grows past: a load that
// does not stop by itself is stopped before it takes the machine's memory.
type heapWatch struct {
	r          io.Reader
	base, peak uint64
	limit      uint64
}

func newHeapWatch(r io.Reader, limit uint64) *heapWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &heapWatch{r: r, base: ms.HeapAlloc, peak: ms.HeapAlloc, limit: limit}
}

var errHeap = errors.New("heap past the test's bound")

func (h *heapWatch) Read(p []byte) (int, error) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.peak = max(h.peak, ms.HeapAlloc)
	if ms.HeapAlloc > h.base+h.limit {
		return 0, fmt.Errorf("%w: %d MB over %d MB before", errHeap, (ms.HeapAlloc-h.base)>>20, h.base>>20)
	}
	return h.r.Read(p)
}

// A gzip bomb of 10 million rows (3 MB that would expand to 450 MB and, kept,
// to gigabytes) is refused at the default row limit, with the heap bounded.
func TestLoadRefusesAGzipBomb(t *testing.T) {
	r, size := bomb(t, 10_000_000, 100_000)
	const bound = 256 << 20
	w := newHeapWatch(r, bound)
	_, st, err := Load(w)
	t.Logf("bomb of %d KB gzip: %v after %d rows; heap peaked %d MB above the start", size>>10, err, st.Rows, (w.peak-w.base)>>20)
	if errors.Is(err, errHeap) {
		t.Fatalf("the load grew the heap past %d MB: %v", bound>>20, err)
	}
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "MaxRows") {
		t.Fatalf("want the row limit's error, got %v", err)
	}
	if st.Rows != DefaultMaxRows {
		t.Errorf("refused after %d rows, want %d", st.Rows, DefaultMaxRows)
	}
}

// Each limit refuses the table that passes it, and says which limit it was.
func TestLoadLimits(t *testing.T) {
	row := func(i int) string {
		a := netip.AddrFrom4([4]byte{9, 0, byte(i >> 8), byte(i)})
		return fmt.Sprintf("%s\t%s\t%d\tZZ\tAS %d\n", a, a, 64500+i, i)
	}
	var plain strings.Builder
	for i := range 100 {
		plain.WriteString(row(i))
	}
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.String()
	}
	for _, c := range []struct {
		name  string
		in    string
		lim   Limits
		limit string // the limit named by the error; "" when the load passes
	}{
		{"within every limit", plain.String(), Limits{MaxInput: int64(plain.Len()), MaxBytes: int64(plain.Len()), MaxRows: 100, MaxASes: 100}, ""},
		{"plain over MaxInput", plain.String(), Limits{MaxInput: int64(plain.Len()) - 1}, "MaxInput"},
		{"plain over MaxBytes", plain.String(), Limits{MaxBytes: 1000}, "MaxBytes"},
		{"gzip over MaxInput", gz(plain.String()), Limits{MaxInput: 100}, "MaxInput"},
		{"gzip over MaxBytes", gz(plain.String()), Limits{MaxBytes: int64(plain.Len()) - 1}, "MaxBytes"},
		{"over MaxRows", plain.String(), Limits{MaxRows: 99}, "MaxRows"},
		{"over MaxASes", plain.String(), Limits{MaxASes: 99}, "MaxASes"},
		{"comments are not rows", "# header\n\n" + row(1), Limits{MaxRows: 1}, ""},
	} {
		_, _, err := c.lim.Load(strings.NewReader(c.in))
		switch {
		case c.limit == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.limit != "" && (!errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), c.limit)):
			t.Errorf("%s: want an error naming %s, got %v", c.name, c.limit, err)
		}
	}
	long := row(1) + "9.9.9.0\t9.9.9.255\t64500\tZZ\t" + strings.Repeat("x", MaxLine) + "\n"
	if _, _, err := Load(strings.NewReader(long)); err == nil || !strings.Contains(err.Error(), "line 2 longer than") {
		t.Errorf("a line past MaxLine: %v", err)
	}
}

// Rows of one origin share it; lookups answer by family and containment as the
// row order says (of two rows starting at one address, the later one).
func TestTableLookupAcrossFamilies(t *testing.T) {
	in := strings.Join([]string{
		"2001:db8::\t2001:db8::ffff\t64502\tFR\tSIX",
		"10.0.0.0\t10.0.0.255\t64500\tDE\tONE",
		"10.0.0.0\t10.0.0.15\t64501\tNL\tTWO",
		"10.0.1.0\t10.0.1.255\t64500\tDE\tONE",
		"::\t::ff\t64503\tZZ\tLOW SIX",
	}, "\n")
	tab, st, err := Load(strings.NewReader(in))
	if err != nil || st.Rows != 5 || tab.Len() != 5 || len(tab.ases) != 4 {
		t.Fatalf("load: %+v, %v, %d origins", st, err, len(tab.ases))
	}
	for ip, want := range map[string]uint32{
		"10.0.0.3": 64501, "10.0.1.9": 64500, "10.0.2.0": 0, "9.255.255.255": 0,
		"2001:db8::1": 64502, "2001:db8::1:0": 0, "::7": 64503, "::ffff:10.0.1.1": 64500, "::1:0": 0,
	} {
		as, ok := tab.Lookup(netip.MustParseAddr(ip))
		if ok != (want != 0) || as.Number != want {
			t.Errorf("Lookup(%s) = %d, %v; want %d", ip, as.Number, ok, want)
		}
	}
	var nilTable *Table
	if _, ok := nilTable.Lookup(netip.MustParseAddr("10.0.0.1")); ok || nilTable.Len() != 0 {
		t.Error("a nil table knows an AS")
	}
}

// FuzzLoad reads whole tables, plain or gzipped: a load either fails or gives a
// table in which every routed row's first address finds an AS.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n0.0.0.0\t0.255.255.255\t0\tNone\tNot routed\n"))
	f.Add([]byte("\ufeff# comment\n2001:200::\t2001:200:ffff:ffff:ffff:ffff:ffff:ffff\t2500\tJP\tWIDE\r\n::ffff:1.2.3.4\t1.2.3.4\tAS1\t\t\n"))
	f.Add([]byte("10.0.0.0\t10.0.0.255\t1\n10.0.0.0\t10.0.0.15\t2\n10.0.0.9\t10.0.0.9\t3\n"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("5.0.0.0\t5.0.255.255\t64500\tDE\tLAB\n"))
	zw.Close()
	f.Add(gz.Bytes())
	f.Add([]byte{0x1f, 0x8b, 0x08})
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, st, err := Limits{MaxInput: 1 << 14, MaxBytes: 1 << 14, MaxRows: 200, MaxASes: 50}.Load(bytes.NewReader(data))
		if err != nil {
			return
		}
		if tab.Len() != st.Rows || st.Bad > st.Rows+st.Unrouted+st.Bad {
			t.Fatalf("%d ranges held, stats %+v", tab.Len(), st)
		}
		if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, MaxLine)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimRight(sc.Text(), " \r")
			if n == 1 {
				line = strings.TrimPrefix(line, "\ufeff")
			}
			if r, routed, err := ParseLine(line); err == nil && routed && !strings.HasPrefix(line, "#") {
				if as, ok := tab.Lookup(r.First); !ok || as.Number == 0 {
					t.Fatalf("line %d (%q): %s finds no AS", n, line, r.First)
				}
			}
		}
	})
}
