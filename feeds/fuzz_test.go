package feeds_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
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
	for _, b := range feodoJSONQuirks {
		f.Add(uint8(index["feodo-json"]), []byte(b))
	}
	for _, b := range []string{
		`{"cidr":"1.10.16.0/20","sblid":"SBL1","x":{"y":[1,{"z":null}]}}` + "\n" + `{"type":"metadata","records":1}` + "\n",
		`{"CIDR":"1.2.3.0/24","cidr":"5.6.7.0/24"}` + "\n" + `{"cidr":1}` + "\n" + `{"cidr":"1.2.3.0/24"} x` + "\n",
		`{"cidr":"\u0031.2.3.0/24","sblid":"\ud83d\ude00"}` + "\n" + `["1.2.3.0/24"]` + "\n" + `{"cidr":"1.2.3.0/24",}` + "\n",
		`{"cidr":"1.2.3.0/24","x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + "}\n",
	} {
		f.Add(uint8(index["spamhaus-drop-json"]), []byte(b))
	}
	for _, b := range []string{
		`{"asn":"6517","asname":"X"}` + "\n" + `{"asn":6517.5}` + "\n" + `{"asn":true}` + "\n" + `{"asn":-1e3}` + "\n",
		`{"asn":13335,"asname":"` + strings.Repeat("a", 9000) + `"}` + "\n",
	} {
		f.Add(uint8(index["spamhaus-asndrop-json"]), []byte(b))
	}
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

// feodoJSONQuirks are Feodo Tracker bodies with what a JSON array can carry:
// a BOM, nesting, records of other kinds, numbers as strings, escapes, names in
// another case or given twice, limits just crossed, broken syntax.
var feodoJSONQuirks = []string{
	"\ufeff [ ]",
	`[{"ip_address":"5.6.7.8","port":"443","malware":null,"x":{"a":[1,2,{"b":true}]}}]`,
	`[{"IP_ADDRESS":"5.6.7.8","Port":-1.5e2},null,1,"s",[],{},true]`,
	`[{"ip_address":"\u0035.6.7.8","malware":"Qak\"Bot\\\ud83d"}]`,
	`[{"ip_address":"5.6.7.8","ip_address":"9.9.9.9"},{"ip_address":1},{"port":"abc"}]`,
	`[{"ip_address":"5.6.7.8","x":` + strings.Repeat("[", 15) + strings.Repeat("]", 15) + `}]`,
	`[{"ip_address":"5.6.7.8","x":[[[[[[[[[[[[[[[["]]]]]]]]]]]]]]]]},{"ip_address":"9.9.9.9"}]`,
	`[{"ip_address":"5.6.7.8","x":"` + strings.Repeat("a", 8193) + `"}]`,
	`[{"ip_address":"5.6.7.8","x":` + strings.Repeat("9", 8193) + `}]`,
	`[{"ip_address":"5.6.7.8","x":"\x"},{"ip_address":"5.6.7.8"}]`,
	`[{"ip_address":"5.6.7.8"},]`,
	`[{"ip_address":"5.6.7.8"} {"ip_address":"9.9.9.9"}]`,
	`[{"ip_address" "5.6.7.8"}]`,
	`[{"ip_address":nul}]`,
	`[{"ip_address":"5.6.7.8"}] trailing`,
	`[{"ip_address":"5.6.7.8",`,
	"[{\"ip_address\":\"5.6.7.8\",\"x\":\"a\tb\"}]",
}

// FuzzFeodoJSON checks the bounded JSON reader against encoding/json: on a body
// encoding/json reads as an array, both find the same C2s and the same number of
// bad records, a record nested deeper than the limit being bad.
func FuzzFeodoJSON(f *testing.F) {
	for _, b := range feodoJSONQuirks {
		f.Add([]byte(b))
	}
	if b, err := os.ReadFile("testdata/lab-feodo-ipblocklist-json.feodo-json"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var recs []json.RawMessage
		// Short bodies hold no token or record over the size limits.
		if len(body) > 8<<10 || json.Unmarshal(body, &recs) != nil {
			return
		}
		var want []string
		wantBad := 0
		for _, r := range recs {
			ind, ok := feodoReference(r)
			switch {
			case !ok || nesting(r) > 16:
				wantBad++
			case ind != "":
				want = append(want, ind)
			}
		}
		var got []string
		st, err := feeds.Parse("feodo-json", bytes.NewReader(body), feeds.Options{MaxBadShare: 1}, func(ind feeds.Indicator) error {
			got = append(got, ind.Value+" "+ind.Port+" "+ind.Malware)
			return nil
		})
		if err != nil && !errors.Is(err, feeds.ErrMalformed) || err == nil && (!slices.Equal(got, want) || st.Bad != wantBad) {
			t.Fatalf("%q: got %q, %d bad (%v), %v; encoding/json: %q, %d bad", body, got, st.Bad, st.BadSample, err, want, wantBad)
		}
		if err != nil && len(recs) > 0 {
			t.Fatalf("%q: %v; encoding/json reads it", body, err)
		}
	})
}

// feodoReference reads one record as the encoding/json decoder of Feodo records
// did: the indicator as "value port malware", "" for one dropped, or !ok for a bad
// record. A member named twice is bad, as for the streaming reader.
func feodoReference(r json.RawMessage) (string, bool) {
	var rec struct {
		IP      string      `json:"ip_address"`
		Port    json.Number `json:"port"`
		Malware string      `json:"malware"`
	}
	dec := json.NewDecoder(bytes.NewReader(r))
	dec.UseNumber()
	if err := dec.Decode(&rec); err != nil || bytes.Equal(r, []byte("null")) || twice(r, "ip_address", "port", "malware") {
		return "", false
	}
	ind, drop, err := feeds.Normalize("ip", rec.IP)
	if err != nil {
		return "", false
	}
	if drop != "" {
		return "", true
	}
	return ind.Value + " " + rec.Port.String() + " " + rec.Malware, true
}

// twice says whether an object names one of names twice, without case.
func twice(obj json.RawMessage, names ...string) bool {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, _ := dec.Token()
		key, _ := tok.(string)
		for _, n := range names {
			if strings.EqualFold(key, n) {
				if seen[n] {
					return true
				}
				seen[n] = true
			}
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	return false
}

// nesting is the deepest nesting of arrays and objects in a JSON text.
func nesting(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
