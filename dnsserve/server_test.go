package dnsserve

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

// fakeStore holds listings and their changes in memory, as storage records them.
type fakeStore struct {
	mu       sync.Mutex
	listings map[[2]int64]storage.IndexedListing // {indicator, source}
	stamp    map[[2]int64]int64                  // the change that last touched a listing
	changes  []storage.ListingChange
	weights  []storage.SourceWeight
	supp     storage.Suppressed
	seq      int64
	ids      map[string]int64
	wake     chan struct{}
}

func newFakeStore() *fakeStore {
	return &fakeStore{listings: map[[2]int64]storage.IndexedListing{}, stamp: map[[2]int64]int64{}, ids: map[string]int64{},
		supp: storage.Suppressed{Indicators: map[int64]bool{}, Listings: map[[2]int64]bool{}}, wake: make(chan struct{}, 1),
		weights: []storage.SourceWeight{{ID: 1, Name: "feed-a", Weight: 0.6}, {ID: 2, Name: "feed-b", Weight: 0.5},
			{ID: 3, Name: "tip-spamtrap-senders", Weight: 0.6}, {ID: 4, Name: "tip-flux-agents", Weight: 0.7}}}
}

// set lists (or unlists) values by a source as one change.
func (f *fakeStore) set(source int32, active bool, values ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	for _, v := range values {
		typ, val, _ := strings.Cut(v, ":")
		id, ok := f.ids[val]
		if !ok {
			id = int64(len(f.ids) + 1)
			f.ids[val] = id
		}
		k := [2]int64{id, int64(source)}
		f.listings[k] = storage.IndexedListing{IndicatorID: id, Type: typ, Value: val, SourceID: source, Active: active}
		f.stamp[k] = f.seq
	}
	f.changes = append(f.changes, storage.ListingChange{Seq: f.seq, Kind: storage.ChangeListings, SourceID: source, At: time.Now()})
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fakeStore) ListingSnapshot(_ context.Context, _ time.Duration, fn func(storage.IndexedListing) error) ([]storage.ListingChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.listings {
		if l.Active {
			fn(l)
		}
	}
	return slices.Clone(f.changes), nil
}
func (f *fakeStore) ListingChanges(_ context.Context, since time.Time) ([]storage.ListingChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes), nil
}
func (f *fakeStore) ChangedListings(_ context.Context, seq int64, fn func(storage.IndexedListing) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, l := range f.listings {
		if f.stamp[k] == seq {
			fn(l)
		}
	}
	return nil
}
func (f *fakeStore) SourceWeights(context.Context) ([]storage.SourceWeight, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.weights), nil
}
func (f *fakeStore) SuppressedListings(context.Context) (storage.Suppressed, error) {
	return f.supp, nil
}
func (f *fakeStore) WaitListingChange(ctx context.Context) error {
	select {
	case <-f.wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var testConfig = Config{
	RPZ: []RPZ{{Name: "rpz.tip.", Selector: Selector{MinScore: 0.5}, Action: ActionNXDomain}},
	DNSBL: []DNSBL{{Name: "bl.tip.", Lists: []List{
		{Code: 2, Name: "aggregate", Selector: Selector{MinScore: 0.5, Types: []string{"ipv4", "ipv6", "cidr", "domain"}}},
		{Code: 3, Name: "spamtrap senders", Selector: Selector{Sources: []string{"tip-spamtrap-senders"}}},
	}}},
	TransferAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	NegativeTTL:   30 * time.Second,
}

// serve runs a server for the test on loopback and returns its address.
func serve(t *testing.T, cfg Config, store Store) (*Server, string) {
	t.Helper()
	s, err := New(cfg, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	udp, tcp := testenv.DNSListeners(t) // a UDP and a TCP port alike, retried when the TCP one is taken
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.ServeListeners(ctx, udp, tcp) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(50 * time.Millisecond)
	return s, udp.LocalAddr().String()
}

func ask(t *testing.T, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

func answers(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.TXT:
			out = append(out, strings.Join(v.Txt, ""))
		default:
			out = append(out, rr.String())
		}
	}
	return out
}

func TestDNSBLAnswers(t *testing.T) {
	f := newFakeStore()
	f.set(1, true, "ipv4:192.0.2.7", "cidr:198.51.100.0/24", "domain:evil.example", "ipv6:2001:db8::7")
	f.set(2, true, "ipv4:192.0.2.7", "ipv4:192.0.2.99") // 192.0.2.99: score 0.5 alone
	f.set(3, true, "ipv4:192.0.2.7", "ipv4:203.0.113.5")
	_, addr := serve(t, testConfig, f)
	for _, c := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"7.2.0.192.bl.tip.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.2", "127.0.0.3"}},
		{"5.113.0.203.bl.tip.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.2", "127.0.0.3"}}, // 0.6 alone
		{"99.2.0.192.bl.tip.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.2"}},
		{"42.100.51.198.bl.tip.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.2"}}, // inside the listed /24
		{"42.101.51.198.bl.tip.", dns.TypeA, dns.RcodeNameError, nil},
		{"7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.tip.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.2"}},
		{"www.evil.example.bl.tip.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.2"}}, // under a listed domain
		{"good.example.bl.tip.", dns.TypeA, dns.RcodeNameError, nil},
		{"2.0.0.127.bl.tip.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.2", "127.0.0.3"}}, // the test points
		{"1.0.0.127.bl.tip.", dns.TypeA, dns.RcodeNameError, nil},
		{"test.bl.tip.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.2", "127.0.0.3"}},
		{"7.2.0.192.bl.tip.", dns.TypeTXT, dns.RcodeSuccess, []string{"listed by TIP in aggregate, spamtrap senders: feed-a, feed-b, tip-spamtrap-senders; score 0.92"}},
		{"7.2.0.192.bl.tip.", dns.TypeAAAA, dns.RcodeSuccess, nil}, // NODATA
		{"bl.tip.", dns.TypeSOA, dns.RcodeSuccess, nil},
		{"7.2.0.192.other.zone.", dns.TypeA, dns.RcodeRefused, nil},
		{"7.2.0.192.bl.tip.", dns.TypeANY, dns.RcodeNotImplemented, nil},
	} {
		r := ask(t, addr, c.name, c.qtype)
		got := answers(r)
		if c.name == "bl.tip." {
			if len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("apex SOA: %v", r.Answer)
			}
			continue
		}
		if r.Rcode != c.rcode || !slices.Equal(got, c.want) {
			t.Errorf("%s %s: %s %q, want %s %q", c.name, dns.TypeToString[c.qtype], dns.RcodeToString[r.Rcode], got, dns.RcodeToString[c.rcode], c.want)
		}
		if r.Rcode == dns.RcodeNameError && (len(r.Ns) != 1 || r.Ns[0].(*dns.SOA).Minttl != 30) {
			t.Errorf("%s: NXDOMAIN without the SOA of a 30 s negative TTL: %v", c.name, r.Ns)
		}
	}
}

// axfr transfers a zone and returns its records' owners, the policy records
// alone, and the serial.
func axfr(t *testing.T, addr, zone string, tsig *dns.TSIG, secrets map[string]string) ([]string, uint32, error) {
	t.Helper()
	m := new(dns.Msg)
	m.SetAxfr(zone)
	tr := &dns.Transfer{TsigSecret: secrets}
	if tsig != nil {
		m.SetTsig(tsig.Hdr.Name, tsig.Algorithm, 300, time.Now().Unix())
	}
	ch, err := tr.In(m, addr)
	if err != nil {
		return nil, 0, err
	}
	var owners []string
	var serial uint32
	for env := range ch {
		if env.Error != nil {
			return nil, 0, env.Error
		}
		for _, rr := range env.RR {
			switch v := rr.(type) {
			case *dns.SOA:
				serial = v.Serial
			case *dns.CNAME:
				owners = append(owners, strings.TrimSuffix(v.Hdr.Name, "."+zone))
			}
		}
	}
	slices.Sort(owners)
	return owners, serial, nil
}

func TestRPZTransfersAndNotify(t *testing.T) {
	f := newFakeStore()
	f.set(1, true, "domain:evil.example", "ipv4:192.0.2.7", "cidr:198.51.100.0/24")
	f.set(2, true, "domain:meh.example") // 0.5: at the zone's bound
	notified := make(chan uint32, 10)
	secondary := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if r.Opcode == dns.OpcodeNotify && len(r.Answer) == 1 {
			notified <- r.Answer[0].(*dns.SOA).Serial
		}
		m := new(dns.Msg)
		m.SetReply(r)
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	secondary.NotifyStartedFunc = func() { close(started) }
	go secondary.ListenAndServe()
	<-started
	defer secondary.Shutdown()
	cfg := testConfig
	cfg.Notify = []string{secondary.PacketConn.LocalAddr().String()}
	cfg.Poll = 50 * time.Millisecond
	s, addr := serve(t, cfg, f)

	owners, serial, err := axfr(t, addr, "rpz.tip.", nil, nil)
	want := []string{"*.evil.example", "*.meh.example", "24.0.100.51.198.rpz-ip", "32.7.2.0.192.rpz-ip", "evil.example", "meh.example"}
	if err != nil || !slices.Equal(owners, want) || serial != 2 {
		t.Fatalf("AXFR: serial %d, owners %q, %v; want serial 2, %q", serial, owners, err, want)
	}
	// A removal: a new serial, NOTIFY, and an IXFR of just the change.
	f.set(1, false, "ipv4:192.0.2.7")
	select {
	case got := <-notified:
		if got != 3 {
			t.Errorf("NOTIFY serial %d, want 3", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no NOTIFY after the change")
	}
	m := new(dns.Msg)
	m.SetIxfr("rpz.tip.", 2, "localhost.", "hostmaster.localhost.")
	ch, err := (&dns.Transfer{}).In(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	var rrs []string
	for env := range ch {
		if env.Error != nil {
			t.Fatal(env.Error)
		}
		for _, rr := range env.RR {
			rrs = append(rrs, strings.Join(strings.Fields(rr.String())[3:5], " ")+" "+rr.Header().Name)
		}
	}
	wantIXFR := []string{"SOA localhost. rpz.tip.", "SOA localhost. rpz.tip.", "CNAME . 32.7.2.0.192.rpz-ip.rpz.tip.", "SOA localhost. rpz.tip.", "SOA localhost. rpz.tip."}
	if !slices.Equal(rrs, wantIXFR) {
		t.Errorf("IXFR from 2:\n%q\nwant\n%q", rrs, wantIXFR)
	}
	if got := s.Serials()["rpz.tip."]; got != 3 {
		t.Errorf("serial %d", got)
	}
}

func TestRPZTransferNeedsTheACLAndTSIG(t *testing.T) {
	f := newFakeStore()
	f.set(1, true, "domain:evil.example")
	cfg := testConfig
	cfg.TSIG = map[string]string{"xfr.tip.": "c2VjcmV0LXNlY3JldC1zZWNyZXQ="}
	_, addr := serve(t, cfg, f)
	if _, _, err := axfr(t, addr, "rpz.tip.", nil, nil); err == nil {
		t.Error("an unsigned AXFR was served")
	}
	tsig := &dns.TSIG{Hdr: dns.RR_Header{Name: "xfr.tip."}, Algorithm: dns.HmacSHA256}
	if _, _, err := axfr(t, addr, "rpz.tip.", tsig, map[string]string{"xfr.tip.": "d3Jvbmctd3Jvbmctd3Jvbmc="}); err == nil {
		t.Error("an AXFR signed with the wrong secret was served")
	}
	owners, _, err := axfr(t, addr, "rpz.tip.", tsig, cfg.TSIG)
	if err != nil || len(owners) != 2 {
		t.Errorf("signed AXFR: %q, %v", owners, err)
	}
	cfg.TSIG = nil
	cfg.TransferAllow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	_, addr = serve(t, cfg, f)
	if _, _, err := axfr(t, addr, "rpz.tip.", nil, nil); err == nil {
		t.Error("an AXFR from outside the ACL was served")
	}
}

func TestBadQueriesGetClearRcodes(t *testing.T) {
	f := newFakeStore()
	cfg := testConfig
	cfg.RatePerClient = 20
	_, addr := serve(t, cfg, f)
	// EDNS version 1: BADVERS; a huge EDNS size is capped.
	m := new(dns.Msg)
	m.SetQuestion("7.2.0.192.bl.tip.", dns.TypeA)
	m.SetEdns0(65000, false)
	m.IsEdns0().SetVersion(1)
	r, _, err := (&dns.Client{}).Exchange(m, addr)
	if err != nil || r.Rcode != dns.RcodeBadVers {
		t.Errorf("EDNS version 1: %v, %v", r, err)
	}
	m.IsEdns0().SetVersion(0)
	r, _, err = (&dns.Client{}).Exchange(m, addr)
	if err != nil || r.IsEdns0() == nil || r.IsEdns0().UDPSize() != maxUDPSize {
		t.Errorf("EDNS size 65000: %v, %v", r, err)
	}
	// AXFR over UDP is refused; a NOTIFY is not implemented.
	if r := ask(t, addr, "rpz.tip.", dns.TypeAXFR); r.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR over UDP: %s", dns.RcodeToString[r.Rcode])
	}
	n := new(dns.Msg)
	n.SetNotify("rpz.tip.")
	if r, _, err := (&dns.Client{}).Exchange(n, addr); err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("NOTIFY: %v, %v", r, err)
	}
	// A flood past the client's rate goes unanswered; the server answers again after.
	dropped := 0
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	for range 60 {
		m := new(dns.Msg)
		m.SetQuestion("1.0.0.127.bl.tip.", dns.TypeA)
		if _, _, err := c.Exchange(m, addr); err != nil {
			dropped++
		}
	}
	if dropped == 0 {
		t.Error("60 queries at once from one client, none dropped at 20 a second")
	}
	time.Sleep(time.Second)
	ask(t, addr, "1.0.0.127.bl.tip.", dns.TypeA)
}

func TestAskAndSerial(t *testing.T) {
	f := newFakeStore()
	f.set(1, true, "ipv4:192.0.2.7", "ipv6:2001:db8::7", "domain:evil.example")
	_, addr := serve(t, testConfig, f)
	ctx := context.Background()
	for value, want := range map[string]string{"192.0.2.7": "127.0.0.2", "2001:db8::7": "127.0.0.2", "evil.example": "127.0.0.2", "192.0.2.8": ""} {
		a, err := Ask(ctx, addr, "bl.tip", value)
		if err != nil || strings.Join(a.Codes, ",") != want || (want != "" && !strings.Contains(a.TXT, "feed-a")) {
			t.Errorf("%s: %+v, %v; want %q", value, a, err, want)
		}
	}
	if s, err := Serial(ctx, addr, "rpz.tip"); err != nil || s != 1 {
		t.Errorf("serial %d, %v", s, err)
	}
}

func TestJournalKeepsWhatAnIXFRSpares(t *testing.T) {
	z, err := newRPZZone(RPZ{Name: "rpz.tip."}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 1500 {
		z.apply(&entry{typ: "ipv4", value: fmt.Sprintf("45.10.%d.%d", i/250, 1+i%250)}, true)
	}
	z.commit(1, now)
	if _, ok := z.since(0); !ok {
		t.Error("the journal lost the zone's first change")
	}
	// 1,500 records in the zone: a journal of 2,000 changes keeps the newest only.
	for i := range 4 {
		for j := range 500 {
			e := &entry{typ: "ipv4", value: fmt.Sprintf("45.10.%d.%d", j/250, 1+j%250)}
			z.apply(e, i%2 == 1)
		}
		z.commit(uint32(2+i), now)
	}
	if _, ok := z.since(0); ok {
		t.Error("the journal kept more changes than the zone holds records")
	}
	if d, ok := z.since(4); !ok || len(d) != 1 || len(d[0].added) != 500 {
		t.Errorf("the newest change: %v, %v", d, ok)
	}
	// Past its keep, a change is forgotten.
	z.apply(&entry{typ: "domain", value: "late.example"}, true)
	z.commit(10, now.Add(2*time.Hour))
	if _, ok := z.since(4); ok {
		t.Error("a change older than the journal's keep is still served")
	}
}

// Two replicas over the same listings give the same serials and answers,
// whichever batches they applied the changes in.
func TestReplicasAgree(t *testing.T) {
	f := newFakeStore()
	f.set(1, true, "domain:evil.example", "ipv4:192.0.2.7")
	a, addrA := serve(t, testConfig, f)
	f.set(1, true, "domain:worse.example")
	if _, err := a.Update(context.Background(), false); err != nil { // a applies this change alone
		t.Fatal(err)
	}
	f.set(2, true, "ipv4:192.0.2.99")
	f.set(1, false, "ipv4:192.0.2.7")
	b, addrB := serve(t, testConfig, f) // b loads everything at once
	if _, err := a.Update(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if sa, sb := a.Serials(), b.Serials(); sa["rpz.tip."] != sb["rpz.tip."] || sa["rpz.tip."] != 4 {
		t.Errorf("serials %v and %v, want both 4", sa, sb)
	}
	for _, name := range []string{"7.2.0.192.bl.tip.", "99.2.0.192.bl.tip.", "worse.example.bl.tip.", "evil.example.bl.tip."} {
		ra, rb := ask(t, addrA, name, dns.TypeA), ask(t, addrB, name, dns.TypeA)
		if ra.Rcode != rb.Rcode || !slices.Equal(answers(ra), answers(rb)) {
			t.Errorf("%s: %s %v and %s %v", name, dns.RcodeToString[ra.Rcode], answers(ra), dns.RcodeToString[rb.Rcode], answers(rb))
		}
	}
	oa, _, errA := axfr(t, addrA, "rpz.tip.", nil, nil)
	ob, _, errB := axfr(t, addrB, "rpz.tip.", nil, nil)
	if errA != nil || errB != nil || !slices.Equal(oa, ob) {
		t.Errorf("zones differ: %v (%v) and %v (%v)", oa, errA, ob, errB)
	}
}
