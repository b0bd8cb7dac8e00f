package lab

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/lab/spam"
	"github.com/tip-project/tip/lab/trap"
	"github.com/tip-project/tip/lab/world"
)

// SpamSite is the spam half of the lab on its own, for tests and benchmarks that
// need a public spam archive without the whole lab: a world's spam generator, its
// monthly archive and its ASN table, served by Handler, and a spam catalog for
// its traps.
type SpamSite struct {
	World   *world.World
	Gen     *spam.Generator
	Clock   *world.Clock
	Archive *trap.Archive
}

// NewSpamSite makes the lab world of seed 1 send perDay spams a day from its
// epoch on, published by an archive built in cacheDir, at lab time clock.
func NewSpamSite(perDay int, clock *world.Clock, cacheDir string) (*SpamSite, error) {
	w := world.NewWorld(1)
	s := &SpamSite{World: w, Gen: spam.NewGenerator(w, spam.Options{PerDay: perDay}), Clock: clock}
	var err error
	s.Archive, err = trap.NewArchive(MailSource(s.Gen), clock, w.Start, cacheDir)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Handler serves the archive under /spam-archive/ and the ASN table at /ip2asn.tsv.
func (s *SpamSite) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/spam-archive/", http.StripPrefix("/spam-archive", s.Archive.Handler()))
	mux.HandleFunc("/ip2asn.tsv", func(rw http.ResponseWriter, r *http.Request) { ipasn.Write(rw, s.World.ASNTable()) })
	return mux
}

// Catalog is a spam catalog for the site served at base: the ASN table, one trap
// per lab MX with the lab's trusted relays, and the archive, under the name
// archive, for every trap. It allows private destinations: the lab is on loopback.
func (s *SpamSite) Catalog(base, archive string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "allow_private: true\nasn_table: %q\ntraps:\n", base+"/ip2asn.tsv")
	var relays []string
	for _, a := range s.Gen.TrustedRelays() {
		relays = append(relays, a.String())
	}
	for _, mx := range s.World.TrapMX {
		fmt.Fprintf(&b, "  - {name: %s, mx: [%s], mx_addrs: [%s], trusted: [%s]}\n", mx.Trap, mx.Name, mx.Addr, strings.Join(relays, ", "))
	}
	fmt.Fprintf(&b, "archives:\n  - {name: %s, index: %q, trap: all}\n", archive, base+"/spam-archive/")
	return b.String()
}

// Rules are the trust rules of all the lab's traps together: the MX host names,
// their addresses and the relays the traps trust.
func (s *SpamSite) Rules() (mx []string, mxAddrs, trusted []netip.Prefix) {
	for _, m := range s.World.TrapMX {
		mx = append(mx, m.Name)
		mxAddrs = append(mxAddrs, netip.PrefixFrom(m.Addr, m.Addr.BitLen()))
	}
	for _, a := range s.Gen.TrustedRelays() {
		trusted = append(trusted, netip.PrefixFrom(a, a.BitLen()))
	}
	return mx, mxAddrs, trusted
}

// Sent is every spam the site's archive holds at its clock's time.
func (s *SpamSite) Sent() []spam.Message { return s.Gen.Between(time.Time{}, s.Clock.Now()) }
