package agent

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tip-project/tip/mail"
)

var updateFixtures = flag.Bool("update", false, "rewrite the format fixtures in testdata/")

// batchFixtures are batch files with the quirks a collector meets: what each
// must decode to (want "" is a good batch), asking for version 7.
var batchFixtures = []struct {
	name, want string
	data       func() []byte
}{
	{"good.jsonl.gz", "", func() []byte { return gzipString(batchHeaderLine(7, 2) + mailLine("a") + mailLine("b")) }},
	{"extra-fields.jsonl.gz", "", func() []byte {
		return gzipString(strings.Replace(batchHeaderLine(7, 1), `{`, `{"compression":"zstd","shard":3,`, 1) +
			strings.Replace(mailLine("a"), `"facts":{`, `"spam_score":9.5,"facts":{"future":[1,2],`, 1))
	}},
	{"crlf.jsonl.gz", "", func() []byte {
		return gzipString(strings.ReplaceAll(batchHeaderLine(7, 1)+mailLine("a"), "\n", "\r\n"))
	}},
	{"truncated.jsonl.gz", "unexpected EOF", func() []byte {
		b := gzipString(batchHeaderLine(7, 2) + mailLine("a") + mailLine("b"))
		return b[:len(b)*2/3]
	}},
	{"header-more-mails.jsonl.gz", "2 mails, its header says 3", func() []byte { return gzipString(batchHeaderLine(7, 3) + mailLine("a") + mailLine("b")) }},
	{"header-fewer-mails.jsonl.gz", "more than the 1 mails", func() []byte { return gzipString(batchHeaderLine(7, 1) + mailLine("a") + mailLine("b")) }},
	{"negative-mails.jsonl.gz", "-1 mails", func() []byte { return gzipString(batchHeaderLine(7, -1)) }},
	{"wrong-version.jsonl.gz", "version 8, want 7", func() []byte { return gzipString(batchHeaderLine(8, 1) + mailLine("a")) }},
	{"version-zero.jsonl.gz", "version 0", func() []byte { return gzipString(batchHeaderLine(0, 1) + mailLine("a")) }},
	{"wrong-schema.jsonl.gz", "schema 2", func() []byte {
		return gzipString(strings.Replace(batchHeaderLine(7, 1), `"schema":1`, `"schema":2`, 1) + mailLine("a"))
	}},
	{"wrong-format.jsonl.gz", "format", func() []byte {
		return gzipString(strings.Replace(batchHeaderLine(7, 1), batchFormat, "tip-agent-manifest", 1) + mailLine("a"))
	}},
	{"huge-line.jsonl.gz", "longer than", func() []byte {
		return gzipString(batchHeaderLine(7, 1) + strings.Replace(mailLine("a"), `"subject":""`, `"subject":"`+strings.Repeat("x", MaxLine)+`"`, 1))
	}},
	{"bad-sha.jsonl.gz", "sha256", func() []byte {
		return gzipString(batchHeaderLine(7, 1) + strings.Replace(mailLine("a"), "e3b0c4", "E3B0C4", 1))
	}},
	{"short-sha.jsonl.gz", "sha256", func() []byte {
		return gzipString(batchHeaderLine(7, 1) + strings.Replace(mailLine("a"), "e3b0c4", "", 1))
	}},
	{"name-with-slash.jsonl.gz", "not a Maildir name", func() []byte { return gzipString(batchHeaderLine(7, 1) + mailLine("../../etc/passwd")) }},
	{"negative-size.jsonl.gz", "negative size", func() []byte {
		return gzipString(batchHeaderLine(7, 1) + strings.Replace(mailLine("a"), `"size":0`, `"size":-5`, 1))
	}},
	{"blank-line.jsonl.gz", "batch 7 line 2", func() []byte { return gzipString(batchHeaderLine(7, 1) + "\n" + mailLine("a")) }},
	{"trailing-bracket.jsonl.gz", "trailing data", func() []byte {
		return gzipString(strings.TrimSuffix(batchHeaderLine(7, 1), "\n") + "]\n" + mailLine("a"))
	}},
	{"two-objects-on-a-line.jsonl.gz", "trailing data", func() []byte {
		return gzipString(batchHeaderLine(7, 1) + strings.TrimSuffix(mailLine("a"), "\n") + mailLine("b"))
	}},
	{"not-gzip.jsonl.gz", "not gzip", func() []byte { return []byte(batchHeaderLine(7, 1) + mailLine("a")) }},
	{"empty.jsonl.gz", "empty", func() []byte { return gzipString("") }},
	{"garbage-after-gzip.jsonl.gz", "batch", func() []byte {
		return append(gzipString(batchHeaderLine(7, 1)+mailLine("a")), "junk after the stream"...)
	}},
}

// manifestFixtures are manifests with quirks, and what each must decode to.
var manifestFixtures = []struct{ name, want, data string }{
	{"good.json", "", manifestJSON(`"latest":2`, manifestEntryJSON(1, emptySHA), manifestEntryJSON(2, emptySHA))},
	{"empty.json", "", manifestJSON(`"latest":0`)},
	{"null-versions.json", "", `{"format":"tip-agent-manifest","schema":1,"agent":"mx1","latest":0,"versions":null}`},
	{"extra-fields.json", "", strings.Replace(manifestJSON(`"latest":1,"mirror":"https://x"`, manifestEntryJSON(1, emptySHA)), `"mails"`, `"codec":"gzip","mails"`, 1)},
	{"gap.json", "version 3, want 2", manifestJSON(`"latest":2`, manifestEntryJSON(1, emptySHA), manifestEntryJSON(3, emptySHA))},
	{"duplicate-version.json", "version 1, want 2", manifestJSON(`"latest":2`, manifestEntryJSON(1, emptySHA), manifestEntryJSON(1, emptySHA))},
	{"starts-at-zero.json", "version 0, want 1", manifestJSON(`"latest":1`, manifestEntryJSON(0, emptySHA))},
	{"latest-lies.json", "latest 5 but 2 versions", manifestJSON(`"latest":5`, manifestEntryJSON(1, emptySHA), manifestEntryJSON(2, emptySHA))},
	{"bad-sha.json", "sha256", manifestJSON(`"latest":1`, manifestEntryJSON(1, strings.ToUpper(emptySHA)))},
	{"path-in-sha.json", "sha256", manifestJSON(`"latest":1`, manifestEntryJSON(1, "../../../../etc/passwd"))},
	{"zero-size.json", "size 0", manifestJSON(`"latest":1`, strings.Replace(manifestEntryJSON(1, emptySHA), `"size":1234`, `"size":0`, 1))},
	{"wrong-schema.json", "schema", strings.Replace(manifestJSON(`"latest":0`), `"schema":1`, `"schema":2`, 1)},
	{"entry-wrong-schema.json", "schema 2", manifestJSON(`"latest":1`, strings.Replace(manifestEntryJSON(1, emptySHA), `"schema":1`, `"schema":2`, 1))},
	{"wrong-format.json", "format", strings.Replace(manifestJSON(`"latest":0`), manifestFormat, batchFormat, 1)},
	{"trailing-data.json", "manifest", manifestJSON(`"latest":0`) + `{"again":1}`},
	{"truncated.json", "manifest", manifestJSON(`"latest":1`, manifestEntryJSON(1, emptySHA))[:80]},
	{"negative-latest.json", "manifest", manifestJSON(`"latest":-1`)},
}

const emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func batchHeaderLine(version, mails int) string {
	return `{"format":"tip-agent-batch","schema":1,"agent":"mx1.example.org","version":` + strconv.Itoa(version) +
		`,"created":"2026-11-27T01:02:03Z","mails":` + strconv.Itoa(mails) + "}\n"
}

func mailLine(name string) string {
	return `{"name":"` + name + `","folder":"spam","delivered":"2026-11-27T01:02:01Z","raw":true,"facts":{"sha256":"` + emptySHA +
		`","size":0,"sender_ip":"203.0.113.9","sender_hop":0,"envelope_from":"","subject":"","date_skew_s":0,"hops":[],"urls":[],"domains":[],"campaign_key":""}}` + "\n"
}

func manifestJSON(fields string, entries ...string) string {
	return `{"format":"tip-agent-manifest","schema":1,"agent":"mx1.example.org",` + fields + `,"versions":[` + strings.Join(entries, ",") + `]}`
}

func manifestEntryJSON(v int, sha string) string {
	return `{"version":` + strconv.Itoa(v) + `,"sha256":"` + sha + `","size":1234,"mails":2,"schema":1,"created":"2026-11-27T01:02:03Z"}`
}

func gzipString(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

// TestFormatFixtures decodes every fixture of testdata/ (the fuzz targets' seeds)
// to what it must give; -update rewrites them.
func TestFormatFixtures(t *testing.T) {
	if *updateFixtures {
		for _, dir := range []string{"batch", "manifest"} {
			os.MkdirAll(filepath.Join("testdata", dir), 0o755)
		}
		for _, fx := range batchFixtures {
			if err := os.WriteFile(filepath.Join("testdata", "batch", fx.name), fx.data(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, fx := range manifestFixtures {
			if err := os.WriteFile(filepath.Join("testdata", "manifest", fx.name), []byte(fx.data+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(name, want string, err error) {
		t.Helper()
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want one saying %q", name, err, want)
		}
	}
	for _, fx := range batchFixtures {
		data, err := os.ReadFile(filepath.Join("testdata", "batch", fx.name))
		if err != nil {
			t.Fatalf("%v (go test -run TestFormatFixtures -update writes the fixtures)", err)
		}
		b, err := DecodeBatch(bytes.NewReader(data), 7)
		check(fx.name, fx.want, err)
		if err == nil && (b.Header.Version != 7 || len(b.Mails) != b.Header.Mails) {
			t.Errorf("%s: %+v", fx.name, b.Header)
		}
	}
	for _, fx := range manifestFixtures {
		data, err := os.ReadFile(filepath.Join("testdata", "manifest", fx.name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = DecodeManifest(bytes.NewReader(data))
		check(fx.name, fx.want, err)
	}
}

func addSeeds(f *testing.F, dir string) {
	paths, _ := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if len(paths) == 0 {
		f.Fatalf("no seeds in testdata/%s", dir)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzDecodeBatch: no input crashes the decoder, and what it accepts encodes
// back to a batch it accepts again and encodes the same.
func FuzzDecodeBatch(f *testing.F) {
	addSeeds(f, "batch")
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(bytes.NewReader(data), 0)
		if err != nil {
			return
		}
		if len(b.Mails) != b.Header.Mails || b.Header.Version == 0 {
			t.Fatalf("accepted %+v with %d mails", b.Header, len(b.Mails))
		}
		var once, twice bytes.Buffer
		if err := EncodeBatch(&once, b); err != nil {
			t.Fatalf("an accepted batch does not encode: %v", err)
		}
		b2, err := DecodeBatch(bytes.NewReader(once.Bytes()), b.Header.Version)
		if err != nil {
			t.Fatalf("a re-encoded batch is refused: %v", err)
		}
		if err := EncodeBatch(&twice, b2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatal("encode(decode(x)) is not stable")
		}
	})
}

// FuzzDecodeManifest: the same for the manifest.
func FuzzDecodeManifest(f *testing.F) {
	addSeeds(f, "manifest")
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeManifest(bytes.NewReader(data))
		if err != nil {
			return
		}
		if m.Latest != uint64(len(m.Versions)) {
			t.Fatalf("accepted latest %d with %d versions", m.Latest, len(m.Versions))
		}
		var once, twice bytes.Buffer
		if err := EncodeManifest(&once, m); err != nil {
			t.Fatalf("an accepted manifest does not encode: %v", err)
		}
		m2, err := DecodeManifest(bytes.NewReader(once.Bytes()))
		if err != nil {
			t.Fatalf("a re-encoded manifest is refused: %v", err)
		}
		if err := EncodeManifest(&twice, m2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatal("encode(decode(x)) is not stable")
		}
	})
}

// FuzzReadPack: whatever pack bytes an agent sends for a batch, a raw mail is
// handed over only when it is exactly the mail its facts name; a short or
// forged pack is an error, never a panic or a mail with other bytes.
func FuzzReadPack(f *testing.F) {
	mails := [][]byte{[]byte("Subject: one\r\n\r\nbody\r\n"), []byte("Subject: two\r\n\r\n"), []byte("x")}
	var pack []byte
	var b Batch
	for i, raw := range mails {
		sum := sha256.Sum256(raw)
		if i == 1 {
			pack = append(pack, "junk"...) // bytes no mail names
		}
		b.Mails = append(b.Mails, Mail{Name: fmt.Sprint(i), Raw: true, RawOffset: int64(len(pack)), Facts: mail.Facts{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(raw))}})
		pack = append(pack, raw...)
	}
	f.Add(pack, uint8(0))
	f.Add(pack[:len(pack)-1], uint8(0))
	f.Add(append(pack, "trailing"...), uint8(1))
	f.Add([]byte{}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, skip uint8) {
		bb := b
		bb.Mails = append([]Mail{}, b.Mails...)
		bb.Mails[int(skip)%len(bb.Mails)].Raw = false // some batches keep some mails only
		err := ReadPack(bytes.NewReader(data), bb, func(m *Mail, r io.Reader) error {
			got, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != m.Facts.SHA256 || !m.Raw {
				t.Fatalf("mail %s handed over with bytes %q", m.Name, got)
			}
			return nil
		})
		if err != nil {
			return
		}
		for _, m := range bb.Mails { // every raw mail was found whole where the batch says
			if m.Raw && int64(len(data)) < m.RawOffset+m.Facts.Size {
				t.Fatalf("a pack of %d bytes accepted for mail %s at %d+%d", len(data), m.Name, m.RawOffset, m.Facts.Size)
			}
		}
	})
}
