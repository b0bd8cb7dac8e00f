package feeds_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
)

const day = 24 * time.Hour

// lab builds the feeds of seed 1 on a fixed clock at lab time at.
func lab(t testing.TB, at time.Duration, opts feeds.Options) (*world.World, *world.Clock, *feeds.Server) {
	t.Helper()
	w := world.NewWorld(1)
	clock := world.FixedClock(w.Start.Add(at))
	if opts.SlowChunkDelay == 0 {
		opts.SlowChunkDelay = time.Millisecond
	}
	if opts.LargeLines == 0 {
		opts.LargeLines = 1000
	}
	return w, clock, feeds.New(w, clock, opts)
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func do(s *feeds.Server, method, path string, hdr map[string]string) reply {
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r)
	return reply{rec.Code, rec.Header(), rec.Body.Bytes()}
}

func feed(t testing.TB, s *feeds.Server, name string) feeds.Feed {
	t.Helper()
	for _, f := range s.Catalog() {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no feed %s", name)
	return feeds.Feed{}
}

func truthOf(t testing.TB, s *feeds.Server, at time.Time, name string) feeds.FeedTruth {
	t.Helper()
	for _, ft := range s.Truth(at) {
		if ft.Feed == name {
			return ft
		}
	}
	t.Fatalf("no truth for %s", name)
	return feeds.FeedTruth{}
}

func values(ft feeds.FeedTruth) []string {
	var out []string
	for _, e := range ft.Entries {
		out = append(out, e.Value)
	}
	return out
}

func sorted(v []string) []string {
	v = slices.Clone(v)
	slices.Sort(v)
	return v
}

// served fetches a feed and parses it with the parser of its format.
func served(t testing.TB, s *feeds.Server, f feeds.Feed) []string {
	t.Helper()
	r := do(s, "GET", f.Path, nil)
	if r.code != http.StatusOK {
		t.Fatalf("%s: status %d", f.Path, r.code)
	}
	if got := r.header.Get("Content-Type"); got != f.ContentType {
		t.Errorf("%s: Content-Type %q, want %q", f.Path, got, f.ContentType)
	}
	vals, err := parsers[f.Format](r.body)
	if err != nil {
		t.Fatalf("%s does not parse as %s: %v\n%s", f.Path, f.Format, err, head(r.body))
	}
	return vals
}

func head(b []byte) string {
	if len(b) > 600 {
		b = b[:600]
	}
	return string(b)
}

// listed reports whether a feed's behaviour serves its list as it is.
func listed(f feeds.Feed) bool { return f.Behaviour == feeds.OK || f.Behaviour == feeds.Slow }

// TestServedEqualsTruth parses every feed in its real format at several lab
// times and checks the entries are exactly the truth's.
func TestServedEqualsTruth(t *testing.T) {
	_, clock, s := lab(t, 0, feeds.Options{})
	start := clock.Now()
	for _, at := range []time.Duration{-20 * day, 0, day + 7*time.Hour + 13*time.Minute, 6 * day, 45 * day} {
		clock.Set(start.Add(at))
		for _, f := range s.Catalog() {
			if !listed(f) {
				continue
			}
			if _, ok := parsers[f.Format]; !ok {
				t.Fatalf("%s: no parser for format %q", f.Name, f.Format)
			}
			got := sorted(served(t, s, f))
			ft := truthOf(t, s, clock.Now(), f.Name)
			if want := values(ft); !slices.Equal(got, want) {
				t.Errorf("%s at %v: served %d entries, truth %d\nserved %v\ntruth  %v", f.Name, at, len(got), len(want), got, want)
			}
			if len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Errorf("%s at %v: duplicate entries", f.Name, at)
			}
			if at == 0 && len(got) == 0 {
				t.Errorf("%s is empty at the lab epoch", f.Name)
			}
		}
	}
}

// TestQuirks checks the real-world oddities the catalog promises are there.
func TestQuirks(t *testing.T) {
	_, clock, s := lab(t, 5*day, feeds.Options{})
	body := func(name string) string { return string(do(s, "GET", feed(t, s, name).Path, nil).body) }

	if b := body("blocklistde-all"); !strings.Contains(b, ":") || strings.Contains(b, "#") {
		t.Error("blocklist.de all.txt should mix IPv6 in and have no comments")
	}
	if b := body("cins-army"); !strings.Contains(b, " \n") {
		t.Error("CINS should have trailing spaces on some lines")
	}
	if b := body("phishtank-online-valid"); !strings.HasPrefix(b, "\ufeff") || !strings.Contains(b, `,"http`) {
		t.Error("PhishTank should start with a BOM and quote URLs with commas")
	}
	if b := body("hosts-file"); !strings.Contains(b, "\r\n") || !strings.Contains(b, " www.") || !strings.Contains(b, "127.0.0.1 localhost") {
		t.Error("the hosts file should use CRLF, the localhost preamble and several names a line")
	}
	if b := body("openphish"); !strings.HasSuffix(b, "\n\n") {
		t.Error("OpenPhish should end with a blank line")
	}
	if b := body("dshield-block"); !strings.Contains(b, "\t\t\n") || !strings.Contains(b, "\n# END\n") {
		t.Error("DShield should have rows with empty trailing fields and a # END footer")
	}
	if b := body("spamhaus-asndrop"); !strings.Contains(b, " ; | ") {
		t.Error("ASN-DROP should have a record without a country")
	}
	if b := body("urlhaus-csv-recent"); !strings.Contains(b, `"32-bit,elf,mips,Mozi"`) {
		t.Error("URLhaus should join tags with commas inside quotes")
	}
	if b := body("firehol-level1"); !strings.Contains(b, "\n0.0.0.0/8\n") || !strings.Contains(b, "\n224.0.0.0/3\n") || !strings.Contains(b, "\n10.0.0.0/8\n") {
		t.Error("FireHOL level1 should carry bogons")
	}
	// Spamhaus JSON: the metadata timestamp is the Last-Modified.
	r := do(s, "GET", "/feeds/spamhaus/drop_v4.json", nil)
	ls := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	var meta struct{ Timestamp int64 }
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &meta); err != nil {
		t.Fatal(err)
	}
	if lm, _ := http.ParseTime(r.header.Get("Last-Modified")); meta.Timestamp != lm.Unix() || lm.After(clock.Now()) {
		t.Errorf("metadata timestamp %d, Last-Modified %v", meta.Timestamp, lm)
	}
}

// TestConditionalGet checks ETag, Last-Modified, 304 for both validators, and HEAD.
func TestConditionalGet(t *testing.T) {
	_, _, s := lab(t, 50*time.Hour, feeds.Options{})
	for _, f := range s.Catalog() {
		if f.Behaviour == feeds.Dead {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			r := do(s, "GET", f.Path, nil)
			etag, lm := r.header.Get("ETag"), r.header.Get("Last-Modified")
			if r.code != http.StatusOK || etag == "" || lm == "" {
				t.Fatalf("status %d, ETag %q, Last-Modified %q", r.code, etag, lm)
			}
			mod, err := http.ParseTime(lm)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				hdr  map[string]string
				want int
			}{
				{map[string]string{"If-None-Match": etag}, http.StatusNotModified},
				{map[string]string{"If-None-Match": `"other", ` + etag}, http.StatusNotModified},
				{map[string]string{"If-Modified-Since": lm}, http.StatusNotModified},
				{map[string]string{"If-Modified-Since": mod.Add(time.Hour).Format(http.TimeFormat)}, http.StatusNotModified},
				{map[string]string{"If-Modified-Since": mod.Add(-time.Second).Format(http.TimeFormat)}, http.StatusOK},
				{map[string]string{"If-None-Match": `"other"`}, http.StatusOK},
				// If-None-Match wins over If-Modified-Since.
				{map[string]string{"If-None-Match": `"other"`, "If-Modified-Since": lm}, http.StatusOK},
			} {
				got := do(s, "GET", f.Path, c.hdr)
				if got.code != c.want {
					t.Errorf("%v: status %d, want %d", c.hdr, got.code, c.want)
				}
				if c.want == http.StatusNotModified && len(got.body) != 0 {
					t.Errorf("%v: 304 with a body", c.hdr)
				}
				if c.want == http.StatusOK && !bytes.Equal(got.body, r.body) {
					t.Errorf("%v: a different body", c.hdr)
				}
			}
			h := do(s, "HEAD", f.Path, nil)
			if h.code != http.StatusOK || len(h.body) != 0 || h.header.Get("ETag") != etag || h.header.Get("Last-Modified") != lm {
				t.Errorf("HEAD: status %d, %d body bytes, ETag %q", h.code, len(h.body), h.header.Get("ETag"))
			}
			if cl := h.header.Get("Content-Length"); f.Behaviour != feeds.Large && cl != strconv.Itoa(len(r.body)) {
				t.Errorf("HEAD Content-Length %q, GET body %d bytes", cl, len(r.body))
			}
		})
	}
}

// TestValidatorsFollowContent walks lab time hour by hour: a feed's body, ETag
// and Last-Modified change together, and Last-Modified is never in the future.
func TestValidatorsFollowContent(t *testing.T) {
	_, clock, s := lab(t, 0, feeds.Options{})
	start := clock.Now()
	type state struct {
		body       []byte
		etag, lm   string
		changes    int
		lastChange time.Time
	}
	prev := map[string]*state{}
	for h := 0; h <= 4*24; h++ {
		clock.Set(start.Add(time.Duration(h) * time.Hour))
		for _, f := range s.Catalog() {
			if !listed(f) && f.Behaviour != feeds.Truncated {
				continue
			}
			r := do(s, "GET", f.Path, nil)
			cur := &state{body: r.body, etag: r.header.Get("ETag"), lm: r.header.Get("Last-Modified")}
			mod, _ := http.ParseTime(cur.lm)
			if mod.After(clock.Now()) {
				t.Fatalf("%s: Last-Modified %v after lab time %v", f.Name, mod, clock.Now())
			}
			if p := prev[f.Name]; p != nil {
				bodyChanged, etagChanged, lmChanged := !bytes.Equal(p.body, cur.body), p.etag != cur.etag, p.lm != cur.lm
				if bodyChanged != etagChanged || bodyChanged != lmChanged {
					t.Fatalf("%s at +%dh: body changed %v, ETag changed %v, Last-Modified changed %v",
						f.Name, h, bodyChanged, etagChanged, lmChanged)
				}
				cur.changes = p.changes
				if bodyChanged {
					cur.changes++
				}
			}
			prev[f.Name] = cur
		}
	}
	for _, name := range []string{"feodo-ipblocklist", "blocklistde-all", "cins-army", "urlhaus-csv-recent", "openphish", "phishtank-online-valid", "firehol-level1", "dshield-block"} {
		if prev[name].changes < 4 {
			t.Errorf("%s changed only %d times in four lab days", name, prev[name].changes)
		}
	}
}

// TestFeedsChangeAcrossDays checks feeds gain and lose entries as lab days pass.
func TestFeedsChangeAcrossDays(t *testing.T) {
	_, clock, s := lab(t, 0, feeds.Options{})
	start := clock.Now()
	for _, name := range []string{"feodo-ipblocklist-csv", "blocklistde-all", "blocklistde-bots", "cins-army", "dshield-block",
		"urlhaus-csv-recent", "urlhaus-text-online", "openphish", "phishtank-online-valid", "firehol-level1"} {
		f := feed(t, s, name)
		clock.Set(start)
		before := served(t, s, f)
		etag := do(s, "GET", f.Path, nil).header.Get("ETag")
		clock.Set(start.Add(4 * day))
		after := served(t, s, f)
		if do(s, "GET", f.Path, nil).header.Get("ETag") == etag {
			t.Errorf("%s: same ETag four lab days later", name)
		}
		var added, removed int
		for _, v := range after {
			if !slices.Contains(before, v) {
				added++
			}
		}
		for _, v := range before {
			if !slices.Contains(after, v) {
				removed++
			}
		}
		if added == 0 || removed == 0 {
			t.Errorf("%s: %d added and %d removed in four lab days", name, added, removed)
		}
	}
	// Long-lived lists grow without losing entries.
	clock.Set(start)
	before := served(t, s, feed(t, s, "hosts-file"))
	clock.Set(start.Add(5 * day))
	after := served(t, s, feed(t, s, "hosts-file"))
	if len(after) <= len(before) {
		t.Errorf("the hosts file did not grow: %d -> %d", len(before), len(after))
	}
}

func timingOf(t testing.TB, ft feeds.FeedTruth, set string) feeds.Timing {
	t.Helper()
	for _, tm := range ft.Timing {
		if tm.Set == set {
			return tm
		}
	}
	t.Fatalf("%s documents no timing for set %s", ft.Feed, set)
	return feeds.Timing{}
}

// TestDocumentedDelays checks every entry is listed exactly its documented delay
// after it turned bad.
func TestDocumentedDelays(t *testing.T) {
	_, clock, s := lab(t, 3*day, feeds.Options{})
	for _, ft := range s.Truth(clock.Now()) {
		for _, e := range ft.Entries {
			tm := timingOf(t, ft, e.Set)
			if e.FalsePositive {
				if !e.BadFrom.IsZero() || e.Why == "" {
					t.Errorf("%s: false positive %s has bad_from %v and why %q", ft.Feed, e.Value, e.BadFrom, e.Why)
				}
				continue
			}
			if got := e.ListedAt.Sub(e.BadFrom); got != time.Duration(tm.Delay) {
				t.Errorf("%s: %s listed %v after bad-from, documented %v", ft.Feed, e.Value, got, tm.Delay)
			}
			if !e.RemovedAt.IsZero() && !e.RemovedAt.After(clock.Now()) {
				t.Errorf("%s: %s active but removed at %v", ft.Feed, e.Value, e.RemovedAt)
			}
		}
	}
}

// TestOverlapAndDelays checks the known overlaps between feeds: an indicator on
// two feeds appears on the later one exactly the difference of their delays
// after the earlier one, and the served feeds agree.
func TestOverlapAndDelays(t *testing.T) {
	w, clock, s := lab(t, 0, feeds.Options{})
	at := w.Start.Add(8 * day)
	truth := map[string]feeds.FeedTruth{}
	for _, ft := range s.Truth(at) {
		truth[ft.Feed] = ft
	}
	byValue := func(ft feeds.FeedTruth) map[string]feeds.Entry {
		m := map[string]feeds.Entry{}
		for _, e := range ft.Entries {
			m[e.Value] = e
		}
		return m
	}
	for _, c := range []struct {
		early, late string
		set         string
		gap         time.Duration
	}{
		{"feodo-ipblocklist", "firehol-level1", "c2", 5 * time.Hour},
		{"spamhaus-drop", "firehol-level1", "hijacked-netblock", 5 * time.Hour},
		{"dshield-block", "firehol-level1", "scanner-netblock", 5 * time.Hour},
		{"feodo-ipblocklist", "cins-army", "c2", 23 * time.Hour},
		{"blocklistde-all", "cins-army", "scanner", 5*time.Hour + 30*time.Minute},
		{"openphish", "phishtank-online-valid", "phish", 10 * time.Hour},
	} {
		early, late := truth[c.early], truth[c.late]
		if d := time.Duration(timingOf(t, late, c.set).Delay - timingOf(t, early, c.set).Delay); d != c.gap {
			t.Errorf("%s documents %v after %s for %s, want %v", c.late, d, c.early, c.set, c.gap)
		}
		ev := byValue(early)
		var shared []feeds.Entry
		for _, e := range late.Entries {
			if e.Set != c.set {
				continue
			}
			if x, ok := ev[e.Value]; ok {
				shared = append(shared, e)
				if got := e.ListedAt.Sub(x.ListedAt); got != c.gap {
					t.Errorf("%s: on %s %v after %s, want %v", e.Value, c.late, got, c.early, c.gap)
				}
			}
		}
		if len(shared) == 0 {
			t.Fatalf("no %s entry on both %s and %s at %v", c.set, c.early, c.late, at)
		}
		// The served later feed shows the value exactly when the truth says.
		e := shared[0]
		f := feed(t, s, c.late)
		clock.Set(e.ListedAt.Add(-time.Second))
		if slices.Contains(served(t, s, f), e.Value) {
			t.Errorf("%s serves %s before its listing time", c.late, e.Value)
		}
		clock.Set(e.ListedAt)
		if !slices.Contains(served(t, s, f), e.Value) {
			t.Errorf("%s does not serve %s at its listing time", c.late, e.Value)
		}
	}
	// OpenPhish and PhishTank overlap only partly.
	op, pt := byValue(truth["openphish"]), byValue(truth["phishtank-online-valid"])
	var onlyOP, onlyPT int
	for v, e := range op {
		if _, ok := pt[v]; !ok && !e.FalsePositive {
			onlyOP++
		}
	}
	for v := range pt {
		if _, ok := op[v]; !ok {
			onlyPT++
		}
	}
	if onlyOP == 0 || onlyPT == 0 {
		t.Errorf("OpenPhish-only %d, PhishTank-only %d: want a partial overlap", onlyOP, onlyPT)
	}
}

// TestFalsePositives checks the known false positives are where the truth says
// and that the truth's reasons hold in the world.
func TestFalsePositives(t *testing.T) {
	w, clock, s := lab(t, 6*day, feeds.Options{})
	cdn := map[string]bool{}
	for _, d := range w.DomainsOf(world.CDNDomain) {
		for _, a := range d.Pool {
			cdn[a.String()] = true
		}
	}
	popular := func(host string) bool {
		d, ok := w.Domain(host)
		return ok && d.Popular
	}
	reserved := func(v string) bool {
		a, err := netip.ParseAddr(v)
		return err == nil && (a.IsPrivate() || netip.MustParsePrefix("100.64.0.0/10").Contains(a))
	}
	checks := map[string]func(feeds.Entry) bool{
		"openphish": func(e feeds.Entry) bool {
			u, err := url.Parse(e.Value)
			return err == nil && popular(u.Hostname())
		},
		"hosts-file":      func(e feeds.Entry) bool { return popular(e.Value) },
		"cins-army":       func(e feeds.Entry) bool { return cdn[e.Value] },
		"blocklistde-all": func(e feeds.Entry) bool { return reserved(e.Value) },
		"firehol-level1": func(e feeds.Entry) bool {
			p, err := netip.ParsePrefix(e.Value)
			return err == nil && (p.Addr().IsPrivate() || !p.Addr().IsGlobalUnicast() || slices.Contains(
				[]string{"100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24"}, e.Value))
		},
	}
	for name, isFP := range checks {
		ft := truthOf(t, s, clock.Now(), name)
		servedVals := served(t, s, feed(t, s, name))
		fps := 0
		for _, e := range ft.Entries {
			if isFP(e) != e.FalsePositive {
				t.Errorf("%s: %s marked false positive %v (%q), the world says %v", name, e.Value, e.FalsePositive, e.Why, isFP(e))
			}
			if e.FalsePositive {
				fps++
				if !slices.Contains(servedVals, e.Value) {
					t.Errorf("%s does not serve its false positive %s", name, e.Value)
				}
			}
		}
		if fps == 0 {
			t.Errorf("%s has no false positive at %v", name, clock.Now())
		}
	}
	firehol := values(truthOf(t, s, clock.Now(), "firehol-level1"))
	for _, b := range []string{"0.0.0.0/8", "10.0.0.0/8", "224.0.0.0/3"} {
		if !slices.Contains(firehol, b) {
			t.Errorf("FireHOL level1 lacks the bogon %s", b)
		}
	}
}

func TestDeadAndHTMLError(t *testing.T) {
	_, _, s := lab(t, day, feeds.Options{})
	if r := do(s, "GET", feed(t, s, "et-compromised").Path, nil); r.code != http.StatusNotFound {
		t.Errorf("dead feed: status %d, want 404", r.code)
	}
	r := do(s, "GET", feed(t, s, "blocklistde-strongips").Path, nil)
	if r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
		!bytes.HasPrefix(r.body, []byte("<!DOCTYPE html>")) {
		t.Errorf("HTML error feed: status %d, type %q, body %q", r.code, r.header.Get("Content-Type"), head(r.body))
	}
	if _, err := parseIPList(r.body); err == nil {
		t.Error("the HTML error page parses as an IP list")
	}
	if r := do(s, "GET", "/feeds/no/such/feed.txt", nil); r.code != http.StatusNotFound {
		t.Errorf("unknown path: status %d", r.code)
	}
}

func TestTruncated(t *testing.T) {
	_, clock, s := lab(t, 2*day, feeds.Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	f := feed(t, s, "blocklistde-ssh")
	resp, err := http.Get(srv.URL + f.Path)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading an honest Content-Length must not fail: %v", err)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
	}
	if len(body) == 0 || body[len(body)-1] == '\n' {
		t.Fatalf("body should stop mid-line: %q", body)
	}
	ls := strings.Split(string(body), "\n")
	cut := ls[len(ls)-1]
	want := values(truthOf(t, s, clock.Now(), f.Name))
	var missing []string
	for _, v := range want {
		if !slices.Contains(ls[:len(ls)-1], v) {
			missing = append(missing, v)
		}
	}
	if len(missing) != 1 || len(ls)-1 != len(want)-1 || !strings.HasPrefix(missing[0], cut) || cut == missing[0] {
		t.Errorf("want every entry but one, whose line is cut: missing %v, cut line %q", missing, cut)
	}
}

func TestSlowDrips(t *testing.T) {
	const delay = 4 * time.Millisecond
	_, clock, s := lab(t, 3*day, feeds.Options{SlowChunkDelay: delay})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	f := feed(t, s, "blocklistde-bots")
	begin := time.Now()
	resp, err := http.Get(srv.URL + f.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body []byte
	reads := 0
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			reads++
			body = append(body, buf[:n]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(begin)
	chunks := (len(body) + 63) / 64
	if chunks < 3 {
		t.Fatalf("the slow feed is too short to drip: %d bytes", len(body))
	}
	if min := time.Duration(chunks-1) * delay; elapsed < min {
		t.Errorf("%d bytes arrived in %v, want at least %v", len(body), elapsed, min)
	}
	if reads < 2 {
		t.Errorf("the body arrived in %d read(s); want it dripped", reads)
	}
	got, err := parseIPList(body)
	if err != nil || !slices.Equal(sorted(got), values(truthOf(t, s, clock.Now(), f.Name))) {
		t.Errorf("the slow feed serves the wrong list (%v)", err)
	}
}

// TestLarge streams the large feed at its default size and counts its lines.
func TestLarge(t *testing.T) {
	w, clock, s := lab(t, day, feeds.Options{LargeLines: -1}) // default size
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	f := feed(t, s, "lab-large")
	resp, err := http.Get(srv.URL + f.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Last-Modified") == "" {
		t.Error("the large feed needs validators")
	}
	sc := bufio.NewScanner(resp.Body)
	n := 0
	seen := map[string]bool{}
	for sc.Scan() {
		if n < 100_000 {
			if err := parseIPv4(sc.Text()); err != nil {
				t.Fatalf("line %d: %v", n+1, err)
			}
			if seen[sc.Text()] {
				t.Fatalf("line %d repeats %s", n+1, sc.Text())
			}
			seen[sc.Text()] = true
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 1_000_000 {
		t.Errorf("the large feed has %d lines, want at least 1,000,000", n)
	}
	if ft := truthOf(t, s, clock.Now(), f.Name); ft.Count != n || ft.Generator == "" {
		t.Errorf("truth says %d lines (%q), served %d", ft.Count, ft.Generator, n)
	}
	if r := do(s, "GET", f.Path, map[string]string{"If-None-Match": etag}); r.code != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d", r.code)
	}
	clock.Set(w.Start.Add(2 * day))
	if r := do(s, "HEAD", f.Path, map[string]string{"If-None-Match": etag}); r.code != http.StatusOK || r.header.Get("ETag") == etag {
		t.Errorf("next lab day: status %d, ETag %q unchanged", r.code, etag)
	}
}

func TestIndex(t *testing.T) {
	_, _, s := lab(t, 0, feeds.Options{})
	r := do(s, "GET", "/feeds/", nil)
	var idx feeds.Index
	if err := json.Unmarshal(r.body, &idx); err != nil {
		t.Fatalf("index: %v\n%s", err, head(r.body))
	}
	if !slices.EqualFunc(idx.Feeds, s.Catalog(), func(a, b feeds.Feed) bool { return a.Name == b.Name && a.Path == b.Path }) {
		t.Error("the index is not the catalog")
	}
	behaviours := map[feeds.Behaviour]bool{}
	for _, f := range idx.Feeds {
		behaviours[f.Behaviour] = true
		if f.Format == "" || f.Indicator == "" || !strings.HasPrefix(f.Path, "/feeds/") || f.Description == "" {
			t.Errorf("incomplete catalog entry %+v", f)
		}
		if f.RealURL != "" {
			if err := parseURL(f.RealURL); err != nil {
				t.Errorf("%s: %v", f.Name, err)
			}
		}
	}
	for _, b := range []feeds.Behaviour{feeds.OK, feeds.Dead, feeds.HTMLError, feeds.Slow, feeds.Truncated, feeds.Large} {
		if !behaviours[b] {
			t.Errorf("no feed behaves %s", b)
		}
	}
}

func TestDeterministic(t *testing.T) {
	_, _, a := lab(t, 3*day, feeds.Options{})
	_, _, b := lab(t, 3*day, feeds.Options{})
	w2 := world.NewWorld(2)
	c := feeds.New(w2, world.FixedClock(w2.Start.Add(3*day)), feeds.Options{SlowChunkDelay: time.Millisecond, LargeLines: 1000})
	for _, f := range a.Catalog() {
		ra, rb, rc := do(a, "GET", f.Path, nil), do(b, "GET", f.Path, nil), do(c, "GET", f.Path, nil)
		if !bytes.Equal(ra.body, rb.body) || ra.header.Get("ETag") != rb.header.Get("ETag") {
			t.Errorf("%s differs between two labs of one seed", f.Name)
		}
		if listed(f) && bytes.Equal(ra.body, rc.body) {
			t.Errorf("%s is the same for seeds 1 and 2", f.Name)
		}
	}
	at := world.DefaultStart.Add(10 * day)
	ja, _ := json.Marshal(a.Truth(at))
	jb, _ := json.Marshal(b.Truth(at))
	if !bytes.Equal(ja, jb) {
		t.Error("truth differs between two labs of one seed")
	}
}
