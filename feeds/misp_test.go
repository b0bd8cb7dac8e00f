package feeds_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tip-project/tip/feeds"
)

func TestMISPWarninglists(t *testing.T) {
	cases := []struct {
		file    string
		want    []string // type:value
		dropped map[string]int
		bad     int
		err     string
	}{
		{file: "misp-hostname.json", bad: 1,
			want: []string{"domain:mail.example-cert.org", "domain:portal.example-cert.org", "domain:xn--bcher-kva.example", "domain:akamaized.net"}},
		{file: "misp-cidr.json", bad: 2, dropped: map[string]int{"private": 1},
			want: []string{"cidr:8.8.8.0/24", "ipv4:8.8.4.4", "ipv6:2001:4860:4860::8888", "cidr:2001:4860::/32"}},
		{file: "misp-string.json", dropped: map[string]int{"other": 4},
			want: []string{"domain:example.com", "ipv4:1.1.1.1"}},
		{file: "misp-substring.json", dropped: map[string]int{"substring": 2},
			want: []string{"domain:amazonaws.com", "domain:googleusercontent.com", "domain:cloudfront.net"}},
		{file: "misp-regex.json", err: "regex warninglist"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			st, err := feeds.Parse("misp-warninglist", bytes.NewReader(body), feeds.Options{KeepPublicSuffix: true, MaxBadShare: 0.5},
				func(ind feeds.Indicator) error { got = append(got, string(ind.Type)+":"+ind.Value); return nil })
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || len(got) > 0 {
					t.Fatalf("err %v with %q, want one saying %q and nothing emitted", err, got, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("emitted %q, want %q", got, c.want)
			}
			for k, n := range c.dropped {
				if st.Dropped[k] != n {
					t.Errorf("dropped %v, want %v", st.Dropped, c.dropped)
				}
			}
			if st.Bad != c.bad || st.Indicators != len(c.want) {
				t.Errorf("stats %+v: want %d bad, %d indicators", st, c.bad, len(c.want))
			}
		})
	}
}

func TestMISPWarninglistMalformed(t *testing.T) {
	for _, body := range []string{
		`["8.8.8.8"]`,
		`{"list":["8.8.8.8"]}`,
		`{"type":"cidr"}`,
		`{"type":"cidr","list":"8.8.8.8"}`,
		`{"type":"cidrs","list":[]}`,
		`{"type":7,"list":[]}`,
		`{"type":"cidr","list":["8.8.8.8"]} trailing`,
		`{"type":"cidr","list":["8.8.8.8",]}`,
		`{"type":"cidr","list":["8.8.8.8"`,
		`<html><body>rate limited</body></html>`,
	} {
		_, err := feeds.Parse("misp-warninglist", strings.NewReader(body), feeds.Options{}, func(feeds.Indicator) error { return nil })
		if !errors.Is(err, feeds.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", body, err)
		}
	}
}

func TestMISPWarninglistQuirks(t *testing.T) {
	// a BOM, members in any case and order, unknown members of any shape, an
	// entry over the token limit (bad, skipped), nested entries (bad, skipped)
	body := "\ufeff" + `{"LIST":["9.9.9.9","` + strings.Repeat("1", 9000) + `",["1.1.1.1"],{"a":1},"149.112.112.112"],` +
		`"matching_attributes":[["x"]],"version":1.5,"Type":"cidr","name":null}`
	var got []string
	st, err := feeds.Parse("misp-warninglist", strings.NewReader(body), feeds.Options{MaxBadShare: 1},
		func(ind feeds.Indicator) error { got = append(got, ind.Value); return nil })
	if err != nil || !slices.Equal(got, []string{"9.9.9.9", "149.112.112.112"}) || st.Bad != 3 || st.Lines != 5 {
		t.Fatalf("got %q, %+v, %v", got, st, err)
	}
	// the callback's error stops the parse and comes back as is
	stop := errors.New("stop")
	n := 0
	_, err = feeds.Parse("misp-warninglist", strings.NewReader(body), feeds.Options{MaxBadShare: 1},
		func(feeds.Indicator) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("emit error: %v after %d", err, n)
	}
}

// FuzzMISPWarninglist: any body parses without panic into canonical indicators,
// with stats that add up.
func FuzzMISPWarninglist(f *testing.F) {
	files, _ := filepath.Glob("testdata/misp-*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"type":"string","list":["a.b","1.2.3.4/8",null,true,"\u0061.example"]}`))
	f.Add([]byte(`{"list":[` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `],"type":"hostname"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		st, _ := feeds.Parse("misp-warninglist", bytes.NewReader(body), feeds.Options{MaxBadShare: 1}, func(ind feeds.Indicator) error {
			again, drop, err := feeds.Normalize(ind.Type, ind.Value)
			if err != nil || drop != "" || again.Value != ind.Value || again.Type != ind.Type {
				t.Fatalf("emitted %+v; normalised again: %+v, drop %q, %v", ind, again, drop, err)
			}
			return nil
		})
		if st.Blank+st.Bad > st.Lines || st.Indicators > st.Lines {
			t.Fatalf("stats do not add up: %+v", st)
		}
	})
}
