package export

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// The MISP feed reads back by the MISP core format's rules: a manifest of the
// events by UUID, one <uuid>.json per event with its Event, attributes of
// MISP's types and categories, hashes.csv listing every attribute's MD5 with
// its event; one event per source and day, the same UUIDs on every export.
func TestMISPFeedReadsBack(t *testing.T) {
	day1, day2 := time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 9, 2, 3, 0, 0, 0, time.UTC)
	feed := func() string {
		dir := t.TempDir()
		f, err := NewMISPFeed(dir, time.Date(2026, 9, 3, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []Row{
			{Type: "ipv4", Value: "45.10.0.7", Score: 0.93, Sources: []string{"feodo", "tip-flux-agents"}, FirstSeen: []time.Time{day1, day2}},
			{Type: "cidr", Value: "45.20.0.0/16", Score: 0.8, Sources: []string{"drop"}, FirstSeen: []time.Time{day1}},
			{Type: "domain", Value: "evil.example", Score: 0.7, Sources: []string{"feodo"}, FirstSeen: []time.Time{day1}},
			{Type: "url", Value: "http://evil.example/x", Score: 0.6, Sources: []string{"feodo"}, FirstSeen: []time.Time{day2},
				Context: []Context{{Source: "feodo", Category: "malware-download", Malware: "Emotet", TLP: "amber+strict"}}},
			{Type: "sha1", Value: "da39a3ee5e6b4b0d3255bfef95601890afd80709", Score: 0.8, Sources: []string{"sslbl"}, FirstSeen: []time.Time{day1}},
			{Type: "asn", Value: "64500", Score: 0.6, Sources: []string{"asn-drop"}, FirstSeen: []time.Time{day1}},
		} {
			if err := f.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir := feed()
	var manifest map[string]struct {
		Info, Date, Timestamp string
		Orgc                  struct{ Name, UUID string }
		Tag                   []struct{ Name string }
	}
	readJSON(t, filepath.Join(dir, "manifest.json"), &manifest)
	// feodo on two days, tip-flux-agents, drop, sslbl, asn-drop.
	if len(manifest) != 6 {
		t.Fatalf("%d events in the manifest, want 6", len(manifest))
	}
	types := map[string]string{"ip-dst": "Network activity", "domain": "Network activity", "url": "Network activity",
		"AS": "Network activity", "sha1": "Payload delivery"}
	attrs := map[string]string{} // md5 → event
	amber := 0
	for id, m := range manifest {
		if !uuidRE.MatchString(id) || m.Orgc.Name != "TIP" || !uuidRE.MatchString(m.Orgc.UUID) {
			t.Errorf("event %s: %+v", id, m)
		}
		var ev struct {
			Event struct {
				UUID, Info, Date, Timestamp string
				Published                   bool
				Tag                         []struct{ Name string }
				Attribute                   []struct {
					UUID, Type, Category, Value, Timestamp, Comment string
					ToIDs                                           bool `json:"to_ids"`
				}
			}
		}
		readJSON(t, filepath.Join(dir, id+".json"), &ev)
		e := ev.Event
		if e.UUID != id || e.Date != m.Date || !e.Published || len(e.Attribute) == 0 {
			t.Errorf("event %s: %+v", id, e)
		}
		if _, err := time.Parse(time.DateOnly, e.Date); err != nil {
			t.Errorf("event %s: date %q", id, e.Date)
		}
		var tags []string
		for _, tg := range e.Tag {
			tags = append(tags, tg.Name)
		}
		tlps := map[string]bool{"tlp:clear": true, "tlp:green": true, "tlp:amber": true, "tlp:amber+strict": true, "tlp:red": true}
		if len(tags) < 2 || len(tags) > 3 || !tlps[tags[0]] || !strings.HasPrefix(tags[1], `tip:source="`) ||
			(len(tags) == 3 && !strings.HasPrefix(tags[2], `tip:category="`)) {
			t.Errorf("event %s tags %q", id, tags)
		}
		if slices.Contains(tags, "tlp:amber+strict") {
			amber++
			if len(e.Attribute) != 1 || !strings.Contains(e.Attribute[0].Comment, "; Emotet") || tags[2] != `tip:category="malware-download"` {
				t.Errorf("the amber+strict event: tags %q, attributes %+v: want the URL's category and malware", tags, e.Attribute)
			}
		}
		for _, a := range e.Attribute {
			if cat, ok := types[a.Type]; !ok || cat != a.Category || !uuidRE.MatchString(a.UUID) || a.Timestamp == "" || !strings.HasPrefix(a.Comment, "score ") {
				t.Errorf("event %s attribute %+v", id, a)
			}
			if a.ToIDs != (a.Type != "AS") {
				t.Errorf("attribute %s: to_ids %v", a.Value, a.ToIDs)
			}
			sum := md5.Sum([]byte(a.Value))
			attrs[hex.EncodeToString(sum[:])+","+id] = a.Value
		}
	}
	if amber != 1 {
		t.Errorf("%d events tagged tlp:amber+strict, want 1 (the source of that TLP)", amber)
	}
	hashes, err := os.ReadFile(filepath.Join(dir, "hashes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(hashes)), "\n")
	if len(lines) != len(attrs) {
		t.Errorf("hashes.csv has %d lines for %d attributes", len(lines), len(attrs))
	}
	for _, l := range lines {
		if _, ok := attrs[l]; !ok {
			t.Errorf("hashes.csv line %q names no attribute of its event", l)
		}
	}
	// The same rows give the same events, byte for byte.
	again := feed()
	for id := range manifest {
		a, _ := os.ReadFile(filepath.Join(dir, id+".json"))
		b, _ := os.ReadFile(filepath.Join(again, id+".json"))
		if string(a) != string(b) {
			t.Errorf("event %s differs between two exports of the same rows", id)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// UUIDv5 is RFC 9562's version 5, as google/uuid computes it.
func TestUUIDv5(t *testing.T) {
	for _, name := range []string{"tip:org", "tip:misp-event:feodo:2026-09-01", ""} {
		if got, want := UUIDv5(name), uuid.NewSHA1(uuid.UUID(tipNamespace), []byte(name)).String(); got != want {
			t.Errorf("UUIDv5(%q) = %s, want %s", name, got, want)
		}
	}
}

// TestMISPFeedSpoolsItsAttributes: a feed spooled to disk every few rows is
// the same, byte for byte, as one held whole in memory, and leaves no spool
// behind.
func TestMISPFeedSpoolsItsAttributes(t *testing.T) {
	write := func(buffer int) string {
		t.Helper()
		defer func(b int) { mispSpoolBuffer = b }(mispSpoolBuffer)
		mispSpoolBuffer = buffer
		dir := t.TempDir()
		f, err := NewMISPFeed(dir, time.Date(2026, 9, 3, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		day := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
		for i := range 3000 {
			srcs := []string{fmt.Sprintf("s%d", i%7), "all"}
			r := Row{Type: "ipv4", Value: fmt.Sprintf("45.1.%d.%d", i/256, i%256), Score: 0.5 + float64(i%50)/100,
				Sources: srcs, FirstSeen: []time.Time{day.Add(time.Duration(i%5) * 24 * time.Hour), day},
				Context: []Context{{Source: srcs[0], Category: "botnet-c2", Malware: "M<&>", TLP: "green"}, {Source: "all"}}}
			if i%11 == 0 {
				r.Type, r.Value = "url", fmt.Sprintf("http://x%d.example/a?b=<c>&d", i)
			}
			if err := f.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	whole, spooled := write(1<<30), write(512)
	files, _ := os.ReadDir(whole)
	again, _ := os.ReadDir(spooled)
	if len(files) != len(again) || len(files) < 10 {
		t.Fatalf("%d files held whole, %d spooled", len(files), len(again))
	}
	for _, e := range files {
		if strings.HasPrefix(e.Name(), ".spool") {
			t.Errorf("the spool %s is left behind", e.Name())
		}
		a, _ := os.ReadFile(filepath.Join(whole, e.Name()))
		b, err := os.ReadFile(filepath.Join(spooled, e.Name()))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs when spooled (%v)", e.Name(), err)
		}
	}
}

// TestMISPFeedMemory measures the heap a feed of many rows takes, spooled
// and held whole (TIP_MISP_MEMORY_ROWS=1000000 go test -run
// TestMISPFeedMemory -v ./export): the spooled one's peak stays near its
// buffer whatever the rows, the whole one's grows with them.
func TestMISPFeedMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TIP_MISP_MEMORY_ROWS"))
	if n == 0 {
		t.Skip("set TIP_MISP_MEMORY_ROWS to measure")
	}
	peak := func(buffer int) uint64 {
		defer func(b int) { mispSpoolBuffer = b }(mispSpoolBuffer)
		mispSpoolBuffer = buffer
		runtime.GC()
		f, err := NewMISPFeed(t.TempDir(), time.Date(2026, 9, 3, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		var top uint64
		var ms runtime.MemStats
		day := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
		for i := range n {
			src := fmt.Sprintf("s%d", i%7)
			r := Row{Type: "ipv4", Value: fmt.Sprintf("45.%d.%d.%d", i/65536%256, i/256%256, i%256), Score: 0.5,
				Sources: []string{src}, FirstSeen: []time.Time{day.Add(time.Duration(i%5) * 24 * time.Hour)},
				Context: []Context{{Source: src, Category: "reputation", TLP: "clear"}}}
			if err := f.Write(r); err != nil {
				t.Fatal(err)
			}
			if i%20000 == 0 {
				runtime.ReadMemStats(&ms)
				top = max(top, ms.HeapInuse)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return top
	}
	spooled, whole := peak(mispSpoolBuffer), peak(1<<40)
	t.Logf("%d rows: heap in use at most %d MiB spooled, %d MiB held whole (%.1f×)", n, spooled>>20, whole>>20, float64(whole)/float64(spooled))
	if spooled >= whole {
		t.Errorf("spooling took no less heap: %d vs %d bytes", spooled, whole)
	}
}
