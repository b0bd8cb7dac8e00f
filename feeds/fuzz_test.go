package feeds_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tip-project/tip/feeds"
)

// genericTypes configure the generic format in the fuzz target.
var genericTypes = []feeds.Type{"ip", feeds.CIDR, feeds.ASN, feeds.Domain, feeds.URL, feeds.SHA1}

// FuzzParse runs every format over arbitrary bytes: Parse must not panic, and
// every indicator it emits must already be canonical and listable.
func FuzzParse(f *testing.F) {
	formats := feeds.Formats()
	index := map[string]int{}
	for i, fi := range formats {
		index[fi.Name] = i
	}
	files, _ := filepath.Glob("testdata/lab-*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if i, ok := index[strings.TrimPrefix(filepath.Ext(name), ".")]; ok {
			f.Add(uint8(i), b)
		}
	}
	f.Add(uint8(index["generic"]), []byte("id,domain\n1,Evil.COM\n"))
	f.Add(uint8(index["hosts"]), []byte("0.0.0.0 bücher.de www.x.org # c\r\n"))
	f.Fuzz(func(t *testing.T, k uint8, body []byte) {
		fi := formats[int(k)%len(formats)]
		opts := feeds.Options{MaxBadShare: 1}
		if fi.Name == "generic" {
			opts.Type = genericTypes[int(k)/len(formats)%len(genericTypes)]
			opts.Separator = ","
			opts.Header = k%2 == 0
		}
		st, _ := feeds.Parse(fi.Name, bytes.NewReader(body), opts, func(ind feeds.Indicator) error {
			again, drop, err := feeds.Normalize(ind.Type, ind.Value)
			if err != nil || drop != "" || again.Value != ind.Value || again.Type != ind.Type || again.Registrable != ind.Registrable {
				t.Fatalf("%s emitted %+v; normalised again: %+v, drop %q, %v", fi.Name, ind, again, drop, err)
			}
			return nil
		})
		if st.Comments+st.Blank+st.Bad > st.Lines {
			t.Fatalf("stats do not add up: %+v", st)
		}
	})
}

// FuzzNormalize: a normalised value normalises to itself, for every type.
func FuzzNormalize(f *testing.F) {
	types := []feeds.Type{feeds.IPv4, feeds.IPv6, feeds.CIDR, feeds.ASN, feeds.Domain, feeds.URL, feeds.SHA1, feeds.SHA256, feeds.MD5}
	for i, s := range []string{"1.2.3.4", "2001:db9::1", "1.2.3.4/24", "AS13335", "Bücher.DE.", "HTTP://a.b.com:80/x?y#z",
		"4da1f0c1e7a3b2d95e6f0a1b2c3d4e5f60712c82", strings.Repeat("ab", 32), "d41d8cd98f00b204e9800998ecf8427e"} {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, k uint8, raw string) {
		ind, drop, err := feeds.Normalize(types[int(k)%len(types)], raw)
		if err != nil || drop != "" {
			return
		}
		again, drop, err := feeds.Normalize(ind.Type, ind.Value)
		if err != nil || drop != "" || again != ind {
			t.Fatalf("%q gave %+v; again %+v, drop %q, %v", raw, ind, again, drop, err)
		}
	})
}
