package mail

import (
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/lab/spam"
	"github.com/tip-project/tip/lab/world"
)

// labMail is one lab spam with the configuration of the trap that received it.
type labMail struct {
	spam.Message
	cfg Config
}

var (
	labOnce  sync.Once
	labMails []labMail
)

// labSample is two lab days from each of three seeds, starting on different days:
// the mail of the lab's traps and that of its agent trap (a stream of its own,
// read with that trap's rules, as its agent does).
func labSample(t testing.TB) []labMail {
	t.Helper()
	labOnce.Do(func() {
		for _, s := range []struct {
			seed uint64
			day  int
		}{{1, 0}, {2, 3}, {3, 9}} {
			w := world.NewWorld(s.seed)
			from := w.Start.Add(time.Duration(s.day) * 24 * time.Hour)
			agentTrap := []world.TrapMX{w.AgentTrapMX}
			for _, st := range []struct {
				traps []world.TrapMX
				opts  spam.Options
			}{{w.TrapMX, spam.Options{}}, {agentTrap, spam.Options{PerDay: 300, Stream: "agent", Traps: agentTrap}}} {
				g := spam.NewGenerator(w, st.opts)
				cfg := labConfig(st.traps, g)
				for _, m := range g.Between(from, from.Add(48*time.Hour)) {
					labMails = append(labMails, labMail{m, cfg})
				}
			}
		}
	})
	return labMails
}

// labConfig is the configuration of lab traps, as the catalog writes it.
func labConfig(traps []world.TrapMX, g *spam.Generator) Config {
	var cfg Config
	for _, mx := range traps {
		cfg.TrapMX = append(cfg.TrapMX, strings.ToLower(mx.Name))
		cfg.TrapMXAddrs = append(cfg.TrapMXAddrs, netip.PrefixFrom(mx.Addr, mx.Addr.BitLen()))
	}
	for _, a := range g.TrustedRelays() {
		cfg.TrustedRelays = append(cfg.TrustedRelays, netip.PrefixFrom(a, a.BitLen()))
	}
	return cfg
}

// mismatches counts disagreements per field and keeps a few examples.
type mismatches struct {
	n        map[string]int
	examples map[string][]string
}

func (m *mismatches) add(field, name, format string, args ...any) {
	if m.n == nil {
		m.n, m.examples = map[string]int{}, map[string][]string{}
	}
	m.n[field]++
	if len(m.examples[field]) < 3 {
		m.examples[field] = append(m.examples[field], name+": "+fmt.Sprintf(format, args...))
	}
}

func (m *mismatches) report(t *testing.T, total int) {
	t.Helper()
	fields := make([]string, 0, len(m.n))
	for f := range m.n {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		t.Errorf("%s: %d of %d mails disagree with the truth, e.g.\n  %s", f, m.n[f], total, strings.Join(m.examples[f], "\n  "))
	}
}

// Every fact Extract finds agrees with the lab's ground truth.
func TestExtractMatchesLabTruth(t *testing.T) {
	mails := labSample(t)
	if len(mails) < 3000 {
		t.Fatalf("only %d lab mails", len(mails))
	}
	var bad mismatches
	malformed := 0
	labPSL := map[string]bool{}
	for _, m := range mails {
		tr, name := m.Truth, m.Name
		f := Extract(m.Raw, m.cfg)
		checkInvariants(t, f, DefaultLimits())
		eq := func(field, got, want string) {
			if got != want {
				bad.add(field, name, "got %q, truth %q", got, want)
			}
		}
		eq("sender_ip", f.SenderIP, tr.SenderIP.String())
		eq("helo", f.HELO, tr.HELO)
		if f.SenderHop != tr.SenderHop {
			bad.add("sender_hop", name, "got %d, truth %d", f.SenderHop, tr.SenderHop)
		}
		eq("envelope_from", f.EnvelopeFrom, tr.EnvelopeFrom)
		eq("from", f.From, tr.From)
		eq("from_name", f.FromName, tr.FromName)
		eq("reply_to", f.ReplyTo, tr.ReplyTo)
		eq("to", f.To, tr.Trap)
		eq("message_id", f.MessageID, tr.MessageID)
		eq("subject", f.Subject, tr.Subject)
		eq("date", f.Date, tr.Date)
		eq("x_mailer", f.XMailer, tr.XMailer)

		// Hops: one per Received header, by the same host, from the same address.
		if len(f.Hops) != len(tr.Hops) {
			bad.add("hops", name, "%d hops, truth %d", len(f.Hops), len(tr.Hops))
		} else {
			for i, h := range tr.Hops {
				want := ""
				if h.FromIP.IsValid() {
					want = h.FromIP.String()
				}
				if f.Hops[i].By != h.By || f.Hops[i].FromIP != want {
					bad.add("hops", name, "hop %d by %q from %q, truth by %q from %q", i, f.Hops[i].By, f.Hops[i].FromIP, h.By, want)
				}
			}
		}

		// The skew: TIP measures from the time the trap's MX wrote in its
		// header, the lab from the final delivery, at most a minute later.
		if f.Received == nil {
			bad.add("received", name, "no receipt time")
		} else if lag := m.Time.Unix() - f.Received.Unix(); lag < 0 || lag > 60 {
			bad.add("received", name, "MX time %s, delivered %s", f.Received, m.Time)
		} else if f.DateParsed != nil && f.DateSkewSeconds-lag != tr.DateSkewSeconds {
			bad.add("date_skew", name, "got %d (MX %d s before delivery), truth %d", f.DateSkewSeconds, lag, tr.DateSkewSeconds)
		}
		if tr.Date != "" && tr.DateSkewSeconds != 0 && f.DateParsed == nil {
			bad.add("date_skew", name, "Date %q not parsed", tr.Date)
		}

		// URLs and their domains, as a set. A damaged attachment may hide its links.
		damaged := map[string]bool{}
		for _, a := range tr.Attachments {
			if a.Damaged {
				damaged[a.Name] = true
			}
		}
		want, wantDomains := map[string]bool{}, map[string]bool{}
		for _, u := range tr.URLs {
			if att, ok := strings.CutPrefix(u.Where, "attachment:"); ok && (damaged[att] || damaged[strings.SplitAfter(att, ".zip")[0]]) {
				continue
			}
			want[u.URL] = true
			// The lab takes a host's last two labels as its registrable
			// domain; the Public Suffix List knows better (akamaized.net is a
			// suffix of its own, so www.akamaized.net is registrable).
			d := u.Domain
			if ind, _, err := feeds.Normalize(feeds.Domain, u.Host); err == nil && ind.Registrable != d {
				labPSL[u.Host+" -> "+d+", PSL "+ind.Registrable] = true
				d = ind.Registrable
			}
			wantDomains[d] = true
		}
		got := map[string]bool{}
		for _, u := range f.URLs {
			got[u.URL] = true
			if u.Host != hostOf(u.URL) || u.Registrable == "" {
				bad.add("url_fields", name, "%+v", u)
			}
		}
		for u := range want {
			if !got[u] {
				bad.add("urls_missed", name, "%s", u)
			}
		}
		for u := range got {
			if !want[u] && !slices.ContainsFunc(tr.URLs, func(x spam.URL) bool { return x.URL == u }) {
				bad.add("urls_extra", name, "%s", u)
			}
		}
		for d := range wantDomains {
			if !slices.Contains(f.Domains, d) {
				bad.add("domains", name, "%s missing from %v", d, f.Domains)
			}
		}

		// Attachments: every intact one, with its digest, size and zip entries.
		for _, a := range tr.Attachments {
			if a.Damaged {
				continue
			}
			i := slices.IndexFunc(f.Attachments, func(g Attachment) bool { return g.SHA256 == a.SHA256 })
			if i < 0 {
				bad.add("attachments", name, "%s (%s) not found", a.Name, a.SHA256[:12])
				continue
			}
			g := f.Attachments[i]
			var members []string
			for _, mb := range a.Members {
				members = append(members, mb.Name)
			}
			if g.Name != a.Name || g.Type != a.ContentType || g.Size != int64(a.Size) || !slices.Equal(g.Entries, members) {
				bad.add("attachments", name, "got %+v, truth %+v", g, a)
			}
		}
		if len(f.Attachments) != len(tr.Attachments) {
			bad.add("attachments", name, "%d attachments, truth %d", len(f.Attachments), len(tr.Attachments))
		}

		// Defects: none for a sound mail, at least one for a broken one.
		if tr.Malformed {
			malformed++
			if len(f.Defects) == 0 {
				bad.add("defects_missed", name, "%s not seen", tr.Defects)
			}
		} else if len(f.Defects) > 0 {
			bad.add("defects_extra", name, "%q", f.Defects)
		}
		if f.CampaignKey == "" {
			bad.add("campaign_key", name, "empty")
		}
	}
	bad.report(t, len(mails))
	for d := range labPSL {
		t.Logf("lab truth disagrees with the Public Suffix List: %s", d)
	}
	t.Logf("%d lab mails (%d malformed) from 3 seeds compared with their truth", len(mails), malformed)
}

// Mails of one campaign get one key, and different campaigns mostly different
// keys. Reports purity (how much of each key is one campaign), completeness
// (how much of each campaign is one key) and the adjusted Rand index.
func TestCampaignKeyGroupsCampaigns(t *testing.T) {
	mails := labSample(t)
	keys := make([]string, len(mails))
	camps := make([]string, len(mails))
	for i, m := range mails {
		keys[i] = Extract(m.Raw, m.cfg).CampaignKey
		// Campaign ids restart with each seed.
		camps[i] = fmt.Sprintf("%s/%s", m.cfg.TrustedRelays[0], m.Truth.Campaign)
	}
	purity, completeness, ari := clusterScores(keys, camps)
	// How campaigns share keys: a templated campaign split over keys, two
	// templated campaigns on one key, a one-off on another mail's key (made
	// from the same theme with the same choices, it reads the same).
	campKeys, keyCamps := map[string]map[string]bool{}, map[string]map[string]bool{}
	for i := range mails {
		if campKeys[camps[i]] == nil {
			campKeys[camps[i]] = map[string]bool{}
		}
		if keyCamps[keys[i]] == nil {
			keyCamps[keys[i]] = map[string]bool{}
		}
		campKeys[camps[i]][keys[i]] = true
		keyCamps[keys[i]][camps[i]] = true
	}
	templated, split, merged, soloShared := 0, 0, 0, 0
	for c, ks := range campKeys {
		if strings.Contains(c, "/solo-") {
			for k := range ks {
				if len(keyCamps[k]) > 1 {
					soloShared++
				}
			}
			continue
		}
		templated++
		if len(ks) > 1 {
			split++
		}
	}
	for _, cs := range keyCamps {
		n := 0
		for c := range cs {
			if !strings.Contains(c, "/solo-") {
				n++
			}
		}
		if n > 1 {
			merged++
		}
	}
	t.Logf("%d mails, %d campaigns (%d templated), %d keys: purity %.4f, completeness %.4f, adjusted Rand %.4f; "+
		"%d templated campaigns split, %d keys shared by templated campaigns, %d one-offs share a key",
		len(mails), len(campKeys), templated, len(keyCamps), purity, completeness, ari, split, merged, soloShared)
	if purity < 0.95 || completeness < 0.98 || ari < 0.97 || split > 0 {
		t.Errorf("campaign keys group badly: purity %.4f, completeness %.4f, ARI %.4f, %d split", purity, completeness, ari, split)
	}
}

// clusterScores compares a clustering with the truth: purity, its converse
// (completeness) and the adjusted Rand index (Hubert and Arabie).
func clusterScores(pred, truth []string) (purity, completeness, ari float64) {
	n := len(pred)
	cont := map[[2]string]int{}
	a, b := map[string]int{}, map[string]int{}
	for i := range pred {
		cont[[2]string{pred[i], truth[i]}]++
		a[pred[i]]++
		b[truth[i]]++
	}
	bestP, bestT := map[string]int{}, map[string]int{}
	for k, c := range cont {
		bestP[k[0]] = max(bestP[k[0]], c)
		bestT[k[1]] = max(bestT[k[1]], c)
	}
	var sp, st int
	for _, c := range bestP {
		sp += c
	}
	for _, c := range bestT {
		st += c
	}
	pairs := func(x int) float64 { return float64(x) * float64(x-1) / 2 }
	var sumC, sumA, sumB float64
	for _, c := range cont {
		sumC += pairs(c)
	}
	for _, c := range a {
		sumA += pairs(c)
	}
	for _, c := range b {
		sumB += pairs(c)
	}
	expected := sumA * sumB / pairs(n)
	maxIndex := (sumA + sumB) / 2
	ari = (sumC - expected) / (maxIndex - expected)
	if math.IsNaN(ari) {
		ari = 1
	}
	return float64(sp) / float64(n), float64(st) / float64(n), ari
}

// Extract shares nothing between calls: mails taken apart at once give what
// they give one at a time.
func TestConcurrentExtract(t *testing.T) {
	mails := labSample(t)[:300]
	want := make([]Facts, len(mails))
	for i, m := range mails {
		want[i] = Extract(m.Raw, m.cfg)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(mails); i += 4 {
				if got := Extract(mails[i].Raw, mails[i].cfg); !reflect.DeepEqual(got, want[i]) {
					t.Errorf("%s differs when extracted concurrently", mails[i].Name)
				}
			}
		}()
	}
	wg.Wait()
}
