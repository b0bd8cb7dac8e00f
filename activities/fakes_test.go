package activities

// Activities against fakes of their stores: the module's logic without
// PostgreSQL, S3 or DNS (the tests beside these run the same activities
// against the real stack).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// fakeFluxStore keeps what the flux activities record.
type fakeFluxStore struct {
	FluxStore // a method not faked panics
	mu        sync.Mutex
	due       func(domains []string) []string
	coolDown  time.Duration
	verdicts  []storage.FluxVerdict
	checks    []storage.FluxWrite
	states    map[string]string
}

func (s *fakeFluxStore) DueForTriage(_ context.Context, domains []string, _ time.Time, coolDown time.Duration) ([]string, error) {
	s.coolDown = coolDown
	return s.due(domains), nil
}
func (s *fakeFluxStore) RecordTriage(_ context.Context, vs []storage.FluxVerdict) error {
	s.verdicts = append(s.verdicts, vs...)
	return nil
}
func (s *fakeFluxStore) AllowlistNets(context.Context) ([]netip.Prefix, error) {
	return []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, nil
}
func (s *fakeFluxStore) RecordFluxChecks(_ context.Context, ws []storage.FluxWrite) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, ws...)
	return nil
}
func (s *fakeFluxStore) SetFluxMonitor(_ context.Context, domain, state string, _ *flux.Summary, _ time.Time) error {
	if s.states == nil {
		s.states = map[string]string{}
	}
	s.states[domain] = state
	return nil
}

// fakeResolver answers from a function of the domain.
type fakeResolver func(domain string) flux.Observation

func (f fakeResolver) Observe(_ context.Context, domain string) (flux.Observation, error) {
	o := f(domain)
	if o.Status == "" {
		return o, errors.New("no answer")
	}
	return o, nil
}

// answer is a NOERROR observation of addrs (TTL 300), each in its own AS.
func answer(domain string, addrs ...string) flux.Observation {
	o := flux.Observation{Domain: domain, At: time.Now().UTC(), Status: flux.NoError}
	for i, a := range addrs {
		o.A = append(o.A, flux.Record{Addr: netip.MustParseAddr(a), TTL: 300, ASN: uint32(64500 + i), Country: "ZZ"})
	}
	return o
}

func TestFluxPlanTriageAgainstAFakeStore(t *testing.T) {
	store := &fakeFluxStore{due: func(ds []string) []string { return ds[1:] }}
	a := &Flux{Store: store, Config: FluxConfig{CoolDown: 48 * time.Hour, TriageWait: 10 * time.Minute}}
	plan, err := a.PlanTriage(context.Background(), []string{"Evil.Example.", "evil.example", "192.0.2.1", "com", "b.example", "c.example"})
	if err != nil {
		t.Fatal(err)
	}
	// Normalised, deduplicated, no address or public suffix; the store keeps what is due.
	if want := []string{"b.example", "c.example"}; !slices.Equal(plan.Due, want) || plan.MaxWait != 10*time.Minute || store.coolDown != 48*time.Hour {
		t.Errorf("plan %+v, cool-down %s; want due %v in 10m0s and the 48h cool-down asked", plan, store.coolDown, want)
	}
}

func TestFluxAssessDomainsAgainstFakes(t *testing.T) {
	store := &fakeFluxStore{}
	var watched []string
	a := &Flux{Store: store, Watch: func(_ context.Context, domain string, req contract.WatchRequest) error {
		if req.Origin != "spam-collect" || req.Assessment == nil || req.Assessment.Domain != domain {
			t.Errorf("watch %s with %+v", domain, req)
		}
		watched = append(watched, domain)
		return nil
	}}
	var fluxA, fluxB []string
	for i := range 12 {
		fluxA = append(fluxA, fmt.Sprintf("203.0.%d.%d", i*13, i+1))
		fluxB = append(fluxB, fmt.Sprintf("192.0.%d.%d", i*17+1, i+1))
	}
	first := []flux.Observation{answer("fast.example", fluxA...), answer("plain.example", "192.0.2.10"), answer("edge.example", "198.51.100.7")}
	second := []flux.Observation{answer("fast.example", fluxB...), answer("plain.example", "192.0.2.10"), answer("edge.example", "198.51.100.8")}
	out, err := a.AssessDomains(context.Background(), contract.AssessInput{Origin: "spam-collect", First: first, Second: second})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(watched, []string{"fast.example"}) || !slices.Equal(out.Watched, watched) {
		t.Errorf("watched %v (result %v), want fast.example alone", watched, out.Watched)
	}
	if len(store.verdicts) != 3 || store.verdicts[0].Origin != "spam-collect" || !store.verdicts[0].Assessment.Verdict.Fluxy() {
		t.Errorf("verdicts recorded %+v", store.verdicts)
	}
	// The store's allowlist (a CDN's range) makes edge.example a CDN.
	if store.verdicts[2].Assessment.Verdict != flux.VerdictCDN {
		t.Errorf("edge.example: %s, want %s from the store's allowlist", store.verdicts[2].Assessment.Verdict, flux.VerdictCDN)
	}
	if _, err := a.AssessDomains(context.Background(), contract.AssessInput{First: first, Second: second[:1]}); err == nil {
		t.Error("unpaired resolutions assessed")
	}
}

func TestFluxCheckDomainRecordsThroughTheWriter(t *testing.T) {
	store := &fakeFluxStore{}
	a := &Flux{Store: store, DNS: &Resolution{Resolver: fakeResolver(func(d string) flux.Observation { return answer(d, "192.0.2.1") })}}
	due := time.Now().Add(-time.Minute)
	sum := flux.Summary{IPs: 3}
	o, err := a.CheckDomain(context.Background(), contract.CheckInput{Domain: "fast.example", Due: due, State: contract.MonitorStable, Summary: &sum})
	if err != nil || !o.Answered() {
		t.Fatalf("%+v, %v", o, err)
	}
	// Without a table the addresses say why they carry no ASN.
	if o.NoASN == "" {
		t.Error("no reason given for the missing ASNs")
	}
	if len(store.checks) != 1 {
		t.Fatalf("%d checks recorded", len(store.checks))
	}
	w := store.checks[0]
	if w.State != contract.MonitorStable || w.Summary == nil || w.Summary.IPs != 3 || !w.Due.Equal(due) || w.Late < time.Minute {
		t.Errorf("recorded %+v", w)
	}
	if err := a.SetMonitorState(context.Background(), "fast.example", contract.MonitorStopped, &sum); err != nil || store.states["fast.example"] != contract.MonitorStopped {
		t.Errorf("state %q, %v", store.states["fast.example"], err)
	}
}

// fakeBlacklistStore keeps one source's row and the runs recorded.
type fakeBlacklistStore struct {
	BlacklistStore
	row  storage.SourceRow
	runs []storage.SourceRun
}

func (s *fakeBlacklistStore) UpsertSource(_ context.Context, r storage.SourceRow) error {
	s.row.Name, s.row.URL, s.row.Format, s.row.Type = r.Name, r.URL, r.Format, r.Type
	return nil
}
func (s *fakeBlacklistStore) Source(context.Context, string) (storage.SourceRow, error) {
	return s.row, nil
}
func (s *fakeBlacklistStore) RecordedRun(context.Context, string, string) (contract.LoadResult, bool, error) {
	return contract.LoadResult{}, false, nil
}
func (s *fakeBlacklistStore) RecordRunOutcome(_ context.Context, _ storage.SourceRow, run storage.SourceRun) error {
	s.runs = append(s.runs, run)
	return nil
}

// fakeBlobs keeps blobs in memory by SHA-256.
type fakeBlobs struct{ m map[string][]byte }

func (b *fakeBlobs) Put(ctx context.Context, r io.Reader, o storage.PutOptions) (storage.Blob, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return storage.Blob{}, err
	}
	return b.PutBytes(ctx, data, o)
}
func (b *fakeBlobs) PutBytes(_ context.Context, data []byte, o storage.PutOptions) (storage.Blob, error) {
	if b.m == nil {
		b.m = map[string][]byte{}
	}
	sha := fmt.Sprintf("%x", sha256Sum(data))
	b.m[sha] = bytes.Clone(data)
	return storage.Blob{SHA256: sha, Key: "sha256/" + sha, Size: int64(len(data)), ContentType: o.ContentType}, nil
}
func (b *fakeBlobs) Open(_ context.Context, sha string) (io.ReadCloser, storage.Blob, error) {
	data, ok := b.m[sha]
	if !ok {
		return nil, storage.Blob{}, errors.New("no such blob")
	}
	return io.NopCloser(bytes.NewReader(data)), storage.Blob{SHA256: sha, Size: int64(len(data))}, nil
}
func (b *fakeBlobs) ReadAll(ctx context.Context, sha string) ([]byte, error) {
	r, _, err := b.Open(ctx, sha)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}
func (b *fakeBlobs) Endpoint() string { return "memory" }
func (b *fakeBlobs) Bucket() string   { return "fake" }

func TestBlacklistFetchSourceAgainstFakes(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.Header.Get("If-None-Match"))
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "192.0.2.1\n192.0.2.2\n")
	}))
	defer srv.Close()
	store, blobs := &fakeBlacklistStore{}, &fakeBlobs{}
	a := &Blacklist{Store: store, Blobs: blobs, Downloads: &Downloads{Blobs: blobs}}
	src := catalog.Source{Name: "s", URL: srv.URL, Format: "ip-list", Type: "ipv4", Enabled: true, AllowPrivate: true}
	first, err := a.FetchSource(context.Background(), src)
	if err != nil || first.Status != contract.FetchChanged || first.ETag != `"v1"` || string(blobs.m[first.SHA256]) != "192.0.2.1\n192.0.2.2\n" {
		t.Fatalf("first fetch %+v, %v", first, err)
	}
	// The validators the store holds make the next GET conditional.
	store.row.ETag, store.row.ContentSHA256 = first.ETag, first.SHA256
	again, err := a.FetchSource(context.Background(), src)
	if err != nil || again.Status != contract.FetchUnchanged || again.SHA256 != first.SHA256 {
		t.Errorf("second fetch %+v, %v", again, err)
	}
	// Fetched within its interval: not asked at all.
	store.row.LastSuccess = time.Now()
	src.Interval = time.Hour
	if res, err := a.FetchSource(context.Background(), src); err != nil || res.Status != contract.FetchNotDue {
		t.Errorf("within its interval: %+v, %v", res, err)
	}
	if !slices.Equal(asked, []string{"", `"v1"`}) {
		t.Errorf("the server was asked with If-None-Match %q", asked)
	}
	// A source whose catalog does not allow private addresses is refused, not fetched.
	src.AllowPrivate, src.Interval = false, 0
	if res, err := a.FetchSource(context.Background(), src); err != nil || res.Status != contract.FetchFailed || !strings.Contains(res.Error, "allow_private") {
		t.Errorf("a loopback source without allow_private: %+v, %v", res, err)
	}
}

func TestBlacklistLoadRecordsOutcomesAgainstAFakeStore(t *testing.T) {
	store := &fakeBlacklistStore{}
	a := &Blacklist{Store: store, Blobs: &fakeBlobs{}}
	src := catalog.Source{Name: "s", URL: "https://feeds.invalid/s", Format: "ip-list", Type: "ipv4", Enabled: true}
	for _, c := range []struct{ fetch, want string }{
		{contract.FetchDead, contract.RunDead},
		{contract.FetchFailed, contract.RunFailed},
		{contract.FetchUnchanged, contract.RunUnchanged},
	} {
		res, err := a.LoadSource(context.Background(), contract.LoadInput{Source: src, RunKey: "k-" + c.fetch,
			Fetch: contract.FetchResult{Source: "s", Status: c.fetch, Error: "why"}})
		if err != nil || res.Status != c.want {
			t.Errorf("fetch %s: %+v, %v; want %s", c.fetch, res, err, c.want)
		}
	}
	if len(store.runs) != 3 || store.runs[0].RunKey != "k-dead" || store.runs[0].Result.Error != "why" {
		t.Errorf("runs recorded %+v", store.runs)
	}
}

// fakeSpamStore answers the claims of collector runs.
type fakeSpamStore struct {
	SpamStore
	due      bool
	claimed  []string
	senders  storage.SourceRow
	window   time.Duration
	released []string
}

func (s *fakeSpamStore) ClaimCollectorRun(_ context.Context, name string, _ time.Duration) (bool, error) {
	s.claimed = append(s.claimed, name)
	return s.due, nil
}
func (s *fakeSpamStore) ReleaseCollectorRun(_ context.Context, name string) error {
	s.released = append(s.released, name)
	return nil
}
func (s *fakeSpamStore) RefreshSpamSenders(_ context.Context, src storage.SourceRow, _ string, window time.Duration) (contract.LoadResult, error) {
	s.senders, s.window = src, window
	return contract.LoadResult{Source: src.Name, Status: contract.RunLoaded, Entries: 2}, nil
}

func TestSpamActivitiesAgainstAFakeStore(t *testing.T) {
	dir := t.TempDir()
	cat := filepath.Join(dir, "spam.yaml")
	doc := `traps:
  - {name: lab, mx: [mx.lab.example], mx_addrs: [192.0.2.25]}
archives:
  - {name: old, index: "https://archive.invalid/", trap: all, enabled: false}
mailboxes:
  - {name: box, address: "127.0.0.1:1143", username: trap, password: secret, trap: all}
agents:
  - {name: mx1, url: "https://127.0.0.1:8443", token: t, fingerprint: "ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab"}
`
	if err := os.WriteFile(cat, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	store := &fakeSpamStore{}
	traps := Spamtraps{Store: store, Catalog: cat}
	s := &Spam{Spamtraps: traps}
	plan, err := s.ReadSpamCatalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Archives) != 0 || len(plan.Mailboxes) != 1 || len(plan.Agents) != 1 || plan.Agents[0].Name != "mx1" {
		t.Errorf("plan %+v: want the enabled mailbox and agent, not the disabled archive", plan)
	}
	res, err := s.RefreshSpamSenders(context.Background(), "run-1")
	if err != nil || res.Entries != 2 || store.senders.Name != contract.SpamSendersSource || store.window != contract.SpamSenderWindow {
		t.Errorf("senders %+v, %v; store asked for %q over %s", res, err, store.senders.Name, store.window)
	}
	// A collector run not due does nothing else.
	ag := &AgentSync{Spamtraps: traps}
	got, err := ag.SyncAgent(context.Background(), plan.Agents[0])
	if err != nil || got.Status != contract.FetchNotDue || !slices.Equal(store.claimed, []string{"agent:mx1"}) || len(store.released) != 0 {
		t.Errorf("an agent not due: %+v, %v; claims %v, releases %v", got, err, store.claimed, store.released)
	}
}

// fakeProbeStore answers the probe's questions.
type fakeProbeStore struct{ version string }

func (s fakeProbeStore) ServerVersion(context.Context) (string, error) { return s.version, nil }
func (s fakeProbeStore) SchemaVersion(context.Context) (int, error)    { return 16, nil }

func TestProbeAgainstFakes(t *testing.T) {
	p := &Probe{Store: fakeProbeStore{"15.8"}, Blobs: &fakeBlobs{}, Identity: "1@test"}
	r, err := p.Probe(context.Background())
	if err != nil || r.PostgresVersion != "15.8" || r.SchemaVersion != 16 || r.Worker != "1@test" || r.Bucket != "fake" || r.BlobKey == "" {
		t.Errorf("%+v, %v", r, err)
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
