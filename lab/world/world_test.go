package world

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tip-project/tip/ipasn"
)

func TestSameSeedSameWorld(t *testing.T) {
	a, b, c := NewWorld(7), NewWorld(7), NewWorld(8)
	if !reflect.DeepEqual(a.Domains, b.Domains) || !reflect.DeepEqual(a.ASNs, b.ASNs) {
		t.Fatal("the same seed gave two worlds")
	}
	if reflect.DeepEqual(a.Domains, c.Domains) {
		t.Fatal("different seeds gave the same domains")
	}
	at := a.Start.Add(50 * time.Hour)
	for i, d := range a.Domains {
		x, _ := a.A(d, at)
		y, _ := b.A(b.Domains[i], at)
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("%s answers differ between equal worlds", d.Name)
		}
	}
}

func TestWorldHasEveryClass(t *testing.T) {
	w := NewWorld(1)
	for _, c := range []Class{SingleFlux, DoubleFlux, CDNDomain, RoundRobin, Static, Malicious, Lame} {
		if len(w.DomainsOf(c)) == 0 {
			t.Errorf("no %s domain", c)
		}
	}
	for _, d := range w.Domains {
		if got, ok := w.Domain(d.Name); !ok || got != d {
			t.Errorf("Domain(%q) lookup failed", d.Name)
		}
	}
}

// holz is the published flux score over two resolutions one TTL apart.
func holz(w *World, d *Domain, at time.Time) float64 {
	a1, ttl := w.A(d, at)
	a2, _ := w.A(d, at.Add(time.Duration(ttl+1)*time.Second))
	ips, asns := map[netip.Addr]bool{}, map[int]bool{}
	for _, ip := range append(a1, a2...) {
		ips[ip] = true
		if as, ok := w.ASNOf(ip); ok {
			asns[as.Number] = true
		}
	}
	return 1.32*float64(len(ips)) + 18.54*float64(len(asns)) - 142.38
}

// The lab must behave as its labels say: flux domains score as flux on average over
// a day, CDN and ordinary domains never do.
func TestClassesBehaveAsLabelled(t *testing.T) {
	w := NewWorld(1)
	for _, d := range w.Domains {
		if d.Class == Lame {
			continue
		}
		positive := 0
		for h := 0; h < 24; h++ {
			if holz(w, d, w.Start.Add(time.Duration(h)*time.Hour)) > 0 {
				positive++
			}
		}
		switch {
		case d.Class.IsFlux() && positive < 12:
			t.Errorf("%s (%s) scored as flux in only %d of 24 hours", d.Name, d.Class, positive)
		case !d.Class.IsFlux() && positive > 0:
			t.Errorf("%s (%s) scored as flux in %d of 24 hours", d.Name, d.Class, positive)
		}
	}
}

func TestFluxRotatesEveryTTLAndStaticDoesNot(t *testing.T) {
	w := NewWorld(1)
	f := w.DomainsOf(SingleFlux)[5]
	a1, ttl := w.A(f, w.Start)
	a2, _ := w.A(f, w.Start.Add(time.Duration(ttl)*time.Second))
	if reflect.DeepEqual(a1, a2) {
		t.Fatalf("%s answered the same after its TTL", f.Name)
	}
	same, _ := w.A(f, w.Start.Add(time.Duration(ttl-1)*time.Second))
	if !reflect.DeepEqual(a1, same) {
		t.Fatalf("%s changed within one TTL", f.Name)
	}
	s := w.DomainsOf(Static)[0]
	b1, _ := w.A(s, w.Start)
	b2, _ := w.A(s, w.Start.Add(72*time.Hour))
	if !reflect.DeepEqual(b1, b2) || len(b1) != 1 {
		t.Fatalf("static %s: %v then %v", s.Name, b1, b2)
	}
	d := w.DomainsOf(DoubleFlux)[0]
	n1, nttl := w.NS(d, w.Start)
	n2, _ := w.NS(d, w.Start.Add(time.Duration(nttl)*time.Second*3))
	if reflect.DeepEqual(n1, n2) {
		t.Fatalf("double-flux %s kept its NS set", d.Name)
	}
	for _, h := range n1 {
		if got, ok := w.NSHostAddr(d, h.Name, w.Start); !ok || got != h.Addr {
			t.Fatalf("NS host %s resolves to %v, NS answer says %v", h.Name, got, h.Addr)
		}
	}
}

func TestTakedownSequence(t *testing.T) {
	w := NewWorld(1)
	var down *Domain
	for _, d := range w.Domains {
		if !d.TakedownAt.IsZero() {
			down = d
			break
		}
	}
	if down == nil {
		t.Fatal("no domain is taken down")
	}
	steps := []struct {
		at   time.Time
		want Status
	}{
		{down.TakedownAt.Add(-time.Second), Active},
		{down.TakedownAt, NXDomain},
		{down.ServfailAt, ServFail},
	}
	for _, s := range steps {
		if got := down.StatusAt(s.at); got != s.want {
			t.Errorf("%s at %s: %s, want %s", down.Name, s.at, got, s.want)
		}
	}
	if a, _ := w.A(down, down.TakedownAt); a != nil {
		t.Errorf("a taken-down domain still answers %v", a)
	}
}

// The published IP-to-ASN table agrees with the world for every address it hands out.
func TestASNTableRoundTripsThroughTheRealFormat(t *testing.T) {
	w := NewWorld(1)
	var buf bytes.Buffer
	if err := ipasn.Write(&buf, w.ASNTable()); err != nil {
		t.Fatal(err)
	}
	tab, st, err := ipasn.Load(&buf)
	if err != nil || st.Bad != 0 {
		t.Fatalf("load: %+v %v", st, err)
	}
	at := w.Start.Add(30 * time.Hour)
	for _, d := range w.Domains {
		a, _ := w.A(d, at)
		aaaa, _ := w.AAAA(d, at)
		for _, ip := range append(a, aaaa...) {
			want, ok := w.ASNOf(ip)
			got, found := tab.Lookup(ip)
			if !ok || !found || got.Number != uint32(want.Number) || got.Country != want.Country {
				t.Fatalf("%s (%s): table says %+v %v, world says %+v %v", ip, d.Name, got, found, want, ok)
			}
		}
	}
}

func TestClock(t *testing.T) {
	c := FixedClock(DefaultStart)
	c.Advance(90 * time.Minute)
	if got := c.Now(); !got.Equal(DefaultStart.Add(90 * time.Minute)) {
		t.Fatalf("fixed clock: %s", got)
	}
	fast := NewClock(DefaultStart, 3600)
	if d := fast.WallDuration(24 * time.Hour); d != 24*time.Second {
		t.Fatalf("a lab day at 3600x takes %s of wall time", d)
	}
	if fast.Now().Before(DefaultStart) {
		t.Fatal("clock runs backwards")
	}
}
