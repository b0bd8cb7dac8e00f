package reliability_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/testenv"
	labfeeds "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/workflows/contract"
)

// TestBrokenFeedsFailOnlyTheirOwnChild refreshes the lab's dead feed (404) and
// its HTML error page (status 200) among feeds of every kind: exactly those two
// runs fail, each with a clear error in source_runs, and every other source
// lists exactly what the lab serves.
func TestBrokenFeedsFailOnlyTheirOwnChild(t *testing.T) {
	t.Parallel()
	l := startLab(t, labfeeds.Options{SlowChunkDelay: 5 * time.Millisecond})
	broken := map[string]struct{ status, errHas string }{
		"et-compromised":        {contract.RunDead, "answers 404 Not Found: the feed is gone"},
		"blocklistde-strongips": {contract.RunMalformed, "malformed feed: an HTML page"},
	}
	sources := []string{"et-compromised", "blocklistde-strongips", "blocklistde-bots", "spamhaus-drop-v4-json",
		"spamhaus-asndrop", "feodo-ipblocklist-csv", "urlhaus-csv-dump", "sslbl-sslblacklist", "phishtank-online-valid",
		"firehol-level1", "dshield-block"}
	cfg := newConfig(t, l.writeCatalog(t, sources...), testenv.NewDatabase(t))
	runWorker(t, cfg)
	c := dial(t, cfg)

	run := startRefresh(t, c, cfg)
	res := finish(t, c, run, time.Minute)
	_, problems, _ := strings.Cut(res.Summary, "; problems: ")
	problems, _, _ = strings.Cut(problems, ";")
	if got := strings.Split(problems, ", "); !slices.Equal(got, []string{"et-compromised dead", "blocklistde-strongips malformed"}) {
		t.Errorf("summary %q: problems %q, want exactly the dead and the HTML feed", res.Summary, got)
	}

	st := readStored(t, cfg.Postgres.DSN)
	kids := children(t, c, run)
	for _, s := range sources {
		b, ok := broken[s]
		if !ok {
			checkLoaded(t, l, st, s, kids[s])
			continue
		}
		runs := st.runs[s]
		if len(runs) != 1 || st.keys[s][0] != kids[s] || runs[0].Status != b.status || !strings.Contains(runs[0].Error, b.errHas) {
			t.Errorf("%s: runs %+v under keys %v; want one %s run under %s with an error saying %q", s, runs, st.keys[s], b.status, kids[s], b.errHas)
		}
		if len(st.listed[s]) > 0 {
			t.Errorf("%s lists %d indicators", s, len(st.listed[s]))
		}
	}
}

// TestTruncatedFeedListsOnlyWhatItServes refreshes the lab's truncated feed,
// whose body stops in the middle of its last line, with an honest
// Content-Length. Whether TIP keeps the complete lines or fails the run, it must
// never list what the feed does not: at this lab time the cut line is an IPv6
// address cut short that is itself a valid address.
func TestTruncatedFeedListsOnlyWhatItServes(t *testing.T) {
	t.Parallel()
	const source = "blocklistde-ssh"
	l := startLab(t, labfeeds.Options{})
	cfg := newConfig(t, l.writeCatalog(t, source), testenv.NewDatabase(t))
	runWorker(t, cfg)
	c := dial(t, cfg)
	run := startRefresh(t, c, cfg)
	finish(t, c, run, time.Minute)

	resp, err := http.Get(l.url + l.feed(t, source).Path)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	cut := string(body[strings.LastIndexByte(string(body), '\n')+1:])
	want, _ := l.want(t, source)
	var complete []string // every entry but the one whose line is cut
	for v := range want {
		if !strings.HasPrefix(v, cut) {
			complete = append(complete, v)
		}
	}
	if cut == "" || len(complete) != len(want)-1 {
		t.Fatalf("the lab's truncated feed ends with %q; want one entry's line cut", cut)
	}

	st := readStored(t, cfg.Postgres.DSN)
	got := st.listed[source]
	for v := range got {
		if !want[v] {
			t.Errorf("%s lists %s, which the feed never served: its cut last line %q was taken for an indicator", source, v, cut)
		}
	}
	runs := st.runs[source]
	if len(runs) != 1 {
		t.Fatalf("%s: runs %+v, want one", source, runs)
	}
	switch r := runs[0]; r.Status {
	case contract.RunLoaded:
		if r.Bad < 1 {
			t.Errorf("%s loaded without counting its cut last line %q as bad: %+v", source, cut, r)
		}
		for _, v := range complete {
			if !got[v] {
				t.Errorf("%s loaded but lost %s, which the feed served whole", source, v)
			}
		}
	case contract.RunMalformed, contract.RunFailed:
		if r.Error == "" || len(got) > 0 {
			t.Errorf("%s failed with error %q and lists %d indicators; want a clear error and nothing listed", source, r.Error, len(got))
		}
	default:
		t.Errorf("%s: run %+v", source, r)
	}
}
