// Package seed writes a small TIP database of known content through TIP's own
// write paths — the blacklist load activity, the metrics computation, RecordSpam,
// RecordTriage, SetFluxMonitor and RecordFluxChecks — for the tests of what reads
// it back (storage's report queries, the report and its browser test). World says
// what was written, so a test computes what it expects on its own.
package seed

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// OddSource is a source name that is markup: a report must show it as text.
const OddSource = `</script><b>odd</b>`

// Start is when the seeded flux checks and mails begin.
var Start = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)

// Refreshes is how many blacklist refreshes Write runs (each one metrics computation).
const Refreshes = 3

// World is what Write wrote.
type World struct {
	Sources []string            // every source, by name
	Lists   map[string][]string // what each source lists after the last refresh
	// Runs counts each source's runs by status.
	Runs  map[string]map[string]int
	Mails []storage.SpamRecord
	// Checks are the monitored domains' checks, oldest first; a monitored domain
	// without checks has none.
	Checks    map[string][]flux.Observation
	Monitored []string // by name
	Triaged   []string // every domain with a triage verdict, by name
}

// source is one seeded blacklist and what each refresh fetches of it: the lines of
// a changed body, or a fetch status (unchanged, dead, failed) instead.
type source struct {
	catalog.Source
	rounds [Refreshes]round
}

type round struct {
	lines  []string
	status string // activities.Fetch*: "" is FetchChanged with lines
}

func addrs(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s.%d", prefix, i))
	}
	return out
}

func sources() []source {
	list := func(name, format, typ string, prior float64) catalog.Source {
		return catalog.Source{Name: name, URL: "http://127.0.0.1:1/" + name, Format: format, Type: typ, Enabled: true, Prior: prior,
			Timeout: time.Minute, SizeLimit: 1 << 20}
	}
	hosts := func(ds ...string) []string {
		out := make([]string, len(ds))
		for i, d := range ds {
			out[i] = "0.0.0.0 " + d
		}
		return out
	}
	return []source{
		// grows by two addresses a refresh
		{list("alpha", "ip-list", "ipv4", 0.8), [Refreshes]round{
			{lines: addrs("45.10.0", 1, 10)}, {lines: addrs("45.10.0", 1, 12)}, {lines: addrs("45.10.0", 1, 14)}}},
		// half of it alpha's; the same body in the second refresh
		{list("beta", "ip-list", "ipv4", 0.5), [Refreshes]round{
			{lines: append(addrs("45.10.0", 6, 10), addrs("45.20.0", 1, 5)...)}, {status: contract.FetchUnchanged},
			{lines: append(addrs("45.10.0", 6, 12), addrs("45.20.0", 1, 3)...)}}},
		// domains, and a failure in the last refresh (its listings stay)
		{list("gamma", "hosts", "domain", 0.6), [Refreshes]round{
			{lines: hosts("evil-one.com", "evil-two.net", "evil-three.org")},
			{lines: hosts("evil-one.com", "evil-two.net", "evil-four.ru")},
			{status: contract.FetchFailed}}},
		{list("gone", "ip-list", "ipv4", 0.9), [Refreshes]round{
			{status: contract.FetchDead}, {status: contract.FetchDead}, {status: contract.FetchDead}}},
		{list(OddSource, "ip-list", "ipv4", 0.4), [Refreshes]round{
			{lines: addrs("45.10.0", 1, 3)}, {lines: addrs("45.10.0", 1, 3)}, {lines: addrs("45.10.0", 1, 3)}}},
	}
}

// New returns a fresh, migrated database of the test stack (internal/testenv)
// holding what Write writes, with a bucket of its own; both go when the test ends.
func New(t testing.TB) (*storage.DB, *World) {
	t.Helper()
	ctx := context.Background()
	db := testenv.MigratedDB(t)
	blobs, err := storage.NewBlobStoreFromConfig(testenv.NewBucket(t, testenv.Config(t)).S3)
	if err != nil {
		t.Fatal(err)
	}
	if err := blobs.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	blobs.SpoolDir = t.TempDir()
	w, err := Write(ctx, db, blobs)
	if err != nil {
		t.Fatal(err)
	}
	return db, w
}

// Write seeds the database and bucket (through the blacklist's own load
// activity): Refreshes refreshes of five sources
// (one dead, one failing at the end, one named OddSource), each followed by the
// metrics computation; 91 mails from 13 ASNs in 4 campaigns; four triaged
// domains, three monitored, two of them with checks.
func Write(ctx context.Context, db *storage.DB, blobs *storage.BlobStore) (*World, error) {
	a := &activities.Blacklist{Store: db, Blobs: blobs, Downloads: &activities.Downloads{Blobs: blobs}}
	w := &World{Lists: map[string][]string{}, Runs: map[string]map[string]int{}, Checks: map[string][]flux.Observation{}}
	srcs := sources()
	for _, s := range srcs {
		w.Sources = append(w.Sources, s.Name)
		w.Runs[s.Name] = map[string]int{}
		if err := db.UpsertSource(ctx, storage.SourceRow{Name: s.Name, URL: s.URL, Format: s.Format, Type: s.Type,
			Prior: s.Prior, Enabled: s.Enabled}); err != nil {
			return nil, err
		}
	}
	slices.Sort(w.Sources)
	for r := range Refreshes {
		for _, s := range srcs {
			res, err := load(ctx, a, s.Source, s.rounds[r], fmt.Sprintf("seed/%d", r))
			if err != nil {
				return nil, err
			}
			w.Runs[s.Name][res.Status]++
			if res.Status == contract.RunLoaded {
				w.Lists[s.Name] = listed(s.rounds[r].lines)
			}
		}
		if _, err := db.ComputeSourceMetrics(ctx); err != nil {
			return nil, err
		}
	}
	if err := writeSpam(ctx, db, w); err != nil {
		return nil, err
	}
	if err := writeFlux(ctx, db, w); err != nil {
		return nil, err
	}
	return w, nil
}

// listed is the indicator values of a body's lines.
func listed(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimPrefix(l, "0.0.0.0 ")
	}
	return out
}

// load runs the blacklist load activity on a body stored in the bucket, as a
// refresh does after its fetch.
func load(ctx context.Context, a *activities.Blacklist, src catalog.Source, r round, runKey string) (contract.LoadResult, error) {
	f := contract.FetchResult{Source: src.Name, Status: r.status, StartedAt: time.Now().UTC()}
	switch r.status {
	case "":
		body := []byte(strings.Join(r.lines, "\n") + "\n")
		b, err := a.Blobs.PutBytes(ctx, body, storage.PutOptions{ContentType: "text/plain"})
		if err != nil {
			return contract.LoadResult{}, err
		}
		f.Status, f.HTTPStatus, f.SHA256, f.Bytes = contract.FetchChanged, 200, b.SHA256, int64(len(body))
	case contract.FetchUnchanged:
		f.HTTPStatus = 304
	case contract.FetchDead:
		f.HTTPStatus, f.Error = 404, "404 Not Found"
	case contract.FetchFailed:
		f.HTTPStatus, f.Error = 403, "403 Forbidden"
	}
	res, err := a.LoadSource(ctx, contract.LoadInput{Source: src, Fetch: f, RunKey: runKey})
	if err != nil {
		return res, fmt.Errorf("seed %s: %w", src.Name, err)
	}
	return res, nil
}

// Countries are the seeded senders' countries, by ASN order.
var countries = []string{"RU", "CN", "US", "BR", "IN", "VN", "UA", "DE", "NL", "FR", "KR", "TR", "ID"}

// writeSpam records 13 − i mails from AS6450i for i in 0..12 (91 with a sender,
// in the campaigns pharma, casino and crypto or none), and 4 mails whose sender
// was not found.
func writeSpam(ctx context.Context, db *storage.DB, w *World) error {
	campaigns := []string{"pharma", "casino", "crypto", ""}
	n := 0
	mail := func(sender netip.Addr, asn int, cc, campaign string) storage.SpamRecord {
		at := Start.Add(time.Duration(n) * 17 * time.Minute)
		r := storage.SpamRecord{SHA256: fmt.Sprintf("%064x", n+1), Size: 1000, ReceivedAt: &at, SenderIP: sender, SenderASN: asn,
			SenderCountry: cc, Campaign: campaign, Subject: "offer " + campaign, Facts: json.RawMessage(`{}`),
			Origin: "archive:http://127.0.0.1:1/spam/2026-09.7z", Name: fmt.Sprint(n)}
		n++
		return r
	}
	for i := range 13 {
		for k := range 13 - i {
			ip := netip.AddrFrom4([4]byte{77, byte(10 + i), 0, byte(1 + k)})
			w.Mails = append(w.Mails, mail(ip, 64500+i, countries[i], campaigns[(i+k)%len(campaigns)]))
		}
	}
	for range 4 {
		w.Mails = append(w.Mails, mail(netip.Addr{}, 0, "", "pharma"))
	}
	_, err := db.RecordSpam(ctx, w.Mails)
	return err
}

// The seeded flux domains.
const (
	FluxBig   = "big-flux.example"   // 40 checks, one NXDOMAIN; 5 of 60 addresses in 12 ASNs an answer
	FluxSmall = "small-flux.example" // 6 checks; 3 of 10 addresses in 4 ASNs
	FluxQuiet = "quiet.example"      // monitored, no check yet
	Benign    = "benign.example"     // triaged benign, not monitored
)

func writeFlux(ctx context.Context, db *storage.DB, w *World) error {
	verdict := func(d string, v flux.Verdict, score float64) storage.FluxVerdict {
		return storage.FluxVerdict{Assessment: flux.Assessment{Domain: d, Verdict: v, Score: score}, Origin: "spam", At: Start}
	}
	if err := db.RecordTriage(ctx, []storage.FluxVerdict{verdict(FluxBig, flux.VerdictFlux, 120), verdict(FluxSmall, flux.VerdictFlux, 12),
		verdict(FluxQuiet, flux.VerdictDoubleFlux, 40), verdict(Benign, flux.VerdictBenign, -100)}); err != nil {
		return err
	}
	w.Triaged = []string{Benign, FluxBig, FluxQuiet, FluxSmall}
	w.Monitored = []string{FluxBig, FluxQuiet, FluxSmall}
	for _, d := range w.Monitored {
		if err := db.SetFluxMonitor(ctx, d, contract.MonitorWatching, nil, Start); err != nil {
			return err
		}
	}
	// check k of a domain answers per addresses out of pool, starting at k·step
	checks := func(domain string, n, per, pool, asns int, nx int) []flux.Observation {
		var out []flux.Observation
		for k := range n {
			o := flux.Observation{Domain: domain, At: Start.Add(time.Duration(k) * 5 * time.Minute), Status: flux.NoError}
			if k == nx {
				o.Status = flux.NXDomain
			} else {
				for j := range per {
					ip := (k*per + j) % pool
					o.A = append(o.A, flux.Record{Addr: netip.AddrFrom4([4]byte{91, byte(ip % asns), 1, byte(ip)}),
						TTL: uint32(60 + 30*(k%5)), ASN: uint32(65000 + ip%asns), Country: countries[ip%asns]})
				}
			}
			out = append(out, o)
		}
		return out
	}
	w.Checks[FluxBig] = checks(FluxBig, 40, 5, 60, 12, 25)
	w.Checks[FluxSmall] = checks(FluxSmall, 6, 3, 10, 4, -1)
	var ws []storage.FluxWrite
	for _, d := range []string{FluxBig, FluxSmall} {
		for _, o := range w.Checks[d] {
			ws = append(ws, storage.FluxWrite{Obs: o})
		}
	}
	return db.RecordFluxChecks(ctx, ws)
}
