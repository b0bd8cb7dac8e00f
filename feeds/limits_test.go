package feeds_test

import (
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/tip-project/tip/feeds"
)

// repeat reads c without end.
type repeat byte

func (c repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// body is head, n bytes of c, as many of closing unless it is 0, then tail,
// generated as read: the test never holds the n bytes.
func body(head string, c, closing byte, n int64, tail string) io.Reader {
	parts := []io.Reader{strings.NewReader(head), io.LimitReader(repeat(c), n)}
	if closing != 0 {
		parts = append(parts, io.LimitReader(repeat(closing), n))
	}
	return io.MultiReader(append(parts, strings.NewReader(tail))...)
}

// allocated runs f and returns the bytes it allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestJSONHugeValuesInBoundedMemory: a Feodo record holding a 64 MB string,
// number or member name, or nested 64 million levels deep, is a bad record, read
// through without being held, and the record after it still parses; a body of
// such a record alone is malformed.
func TestJSONHugeValuesInBoundedMemory(t *testing.T) {
	const huge = 64 << 20
	for _, c := range []struct {
		name          string
		head, tail    string
		fill, closing byte
	}{
		{"string", `[{"ip_address":"1.2.3.4","malware":"`, `"}`, 'A', 0},
		{"number", `[{"ip_address":"1.2.3.4","port":`, `}`, '9', 0},
		{"member name", `[{"ip_address":"1.2.3.4","`, `":1}`, 'k', 0},
		{"nesting", `[{"ip_address":"1.2.3.4","x":`, `}`, '[', ']'},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			var st feeds.Stats
			var err error
			alloc := allocated(func() {
				st, err = feeds.Parse("feodo-json", body(c.head, c.fill, c.closing, huge, c.tail+`,{"ip_address":"5.6.7.8"}]`),
					feeds.Options{MaxBadShare: 0.5}, func(ind feeds.Indicator) error {
						got = append(got, ind.Value)
						return nil
					})
			})
			if err != nil || len(got) != 1 || got[0] != "5.6.7.8" || st.Bad != 1 || st.Lines != 2 {
				t.Errorf("got %q, %v, stats %+v; want 5.6.7.8 and one bad record", got, err, st)
			}
			if alloc > huge/64 {
				t.Errorf("parsing %d bytes of %q allocated %d bytes", huge, c.fill, alloc)
			}
			t.Logf("%d MB of %q: %d KB allocated; %v", huge>>20, c.fill, alloc>>10, st.BadSample)

			alloc = allocated(func() {
				st, err = feeds.Parse("feodo-json", body(c.head, c.fill, c.closing, huge, c.tail+"]"),
					feeds.Options{}, func(feeds.Indicator) error { return nil })
			})
			if !errors.Is(err, feeds.ErrMalformed) || st.Indicators != 0 {
				t.Errorf("one huge record: %v, stats %+v; want ErrMalformed", err, st)
			}
			if alloc > huge/64 {
				t.Errorf("parsing %d bytes of %q allocated %d bytes", huge, c.fill, alloc)
			}
		})
	}
}

// TestJSONLimits: each JSON format rejects a record that nests too deep, is too
// long, or holds a too-long string, and goes on with the next record.
func TestJSONLimits(t *testing.T) {
	deep := strings.Repeat("[", 1000) + strings.Repeat("]", 1000)
	wide := "[" + strings.Repeat("1,", 40_000) + "1]" // a record over 64 KiB
	long := `"` + strings.Repeat("x", 20_000) + `"`
	for _, c := range []struct {
		name, format, body string
		want               []string
		why                string
	}{
		{"feodo deep", "feodo-json", `[{"ip_address":"1.2.3.4","x":` + deep + `},{"ip_address":"5.6.7.8"}]`, []string{"5.6.7.8"}, "nested"},
		{"feodo deep record", "feodo-json", `[` + deep + `,{"ip_address":"5.6.7.8"}]`, []string{"5.6.7.8"}, "nested"},
		{"feodo wide", "feodo-json", `[{"ip_address":"1.2.3.4","x":` + wide + `},{"ip_address":"5.6.7.8"}]`, []string{"5.6.7.8"}, "longer than"},
		{"feodo long string", "feodo-json", `[{"ip_address":"1.2.3.4","x":` + long + `},{"ip_address":"5.6.7.8"}]`, []string{"5.6.7.8"}, "string longer"},
		{"feodo long key", "feodo-json", `[{` + long + `:1,"ip_address":"1.2.3.4"},{"ip_address":"5.6.7.8"}]`, []string{"5.6.7.8"}, "name longer"},
		{"drop json deep", "spamhaus-drop-json", `{"cidr":"1.10.16.0/20","x":` + deep + "}\n" + `{"cidr":"1.2.3.0/24"}` + "\n", []string{"1.2.3.0/24"}, "nested"},
		{"drop json long string", "spamhaus-drop-json", `{"cidr":"1.10.16.0/20","x":` + long + "}\n" + `{"cidr":"1.2.3.0/24"}` + "\n", []string{"1.2.3.0/24"}, "string longer"},
		{"drop json line over the line limit", "spamhaus-drop-json", `{"cidr":"1.10.16.0/20","x":"` + strings.Repeat("x", 70_000) + "\"}\n" + `{"cidr":"1.2.3.0/24"}` + "\n", []string{"1.2.3.0/24"}, "line longer"},
		{"asndrop json deep", "spamhaus-asndrop-json", `{"asn":6517,"x":` + deep + "}\n" + `{"asn":13335}` + "\n", []string{"AS13335"}, "nested"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, st, err := parse(t, c.format, c.body, feeds.Options{MaxBadShare: 0.5})
			if err != nil || strings.Join(got, " ") != strings.Join(c.want, " ") || st.Bad != 1 {
				t.Fatalf("got %q, %v, stats %+v; want %q and one bad record", got, err, st, c.want)
			}
			if !strings.Contains(st.BadSample[0], c.why) {
				t.Errorf("bad sample %q does not say %q", st.BadSample[0], c.why)
			}
		})
	}
}

// TestErrorTextIsBounded: a few bad lines of 65 KB give an error and samples of a
// few hundred bytes each that still name the count and show a sample.
func TestErrorTextIsBounded(t *testing.T) {
	bad := strings.Repeat("\xff", 65_000)
	feed := "1.2.3.4\n" + strings.Repeat(bad+"\n", 5) + "5.6.7.8\n"
	_, st, err := parse(t, "ip-list", feed, feeds.Options{})
	if !errors.Is(err, feeds.ErrMalformed) {
		t.Fatalf("err %v, want ErrMalformed", err)
	}
	msg := err.Error()
	if len(msg) > 2048 || !strings.Contains(msg, "5 of 7 data lines bad") || !strings.Contains(msg, "line 2: ") {
		t.Errorf("error of %d bytes: %.300q…", len(msg), msg)
	}
	for _, s := range st.BadSample {
		if len(s) > 200 {
			t.Errorf("bad sample of %d bytes: %.100q…", len(s), s)
		}
	}
	t.Logf("%d bytes: %s", len(msg), msg)
}
