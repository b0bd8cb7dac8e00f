package resolver

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/lab/world"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string // "" for a valid config
	}{
		{"recursive", Config{Recursive: []string{"127.0.0.1:53", "[::1]:5353"}}, ""},
		{"roots", Config{Roots: []string{"198.41.0.4:53"}, Port: 5353}, ""},
		{"neither", Config{}, "no servers"},
		{"both", Config{Recursive: []string{"127.0.0.1:53"}, Roots: []string{"127.0.0.1:53"}}, "not both"},
		{"host name", Config{Recursive: []string{"dns.example:53"}}, "want ip:port"},
		{"no port", Config{Recursive: []string{"127.0.0.1"}}, "want ip:port"},
		{"UDP size below 512", Config{Recursive: []string{"127.0.0.1:53"}, UDPSize: 100}, "UDP size"},
		{"negative rate", Config{Recursive: []string{"127.0.0.1:53"}, Rate: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.cfg)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.cfg.UDPSize != DefaultUDPSize || r.cfg.Timeout != DefaultTimeout || r.cfg.Port == 0 {
					t.Errorf("defaults not filled: %+v", r.cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, want an error about %q", err, tc.err)
			}
		})
	}
}

func TestResolveRejectsBadNames(t *testing.T) {
	r, _ := New(Config{Recursive: []string{"127.0.0.1:9"}})
	for _, name := range []string{"", ".", "a..b", strings.Repeat("x", 64) + ".com"} {
		if _, err := r.Resolve(context.Background(), name); err == nil || !strings.Contains(err.Error(), "not a domain name") {
			t.Errorf("%q: %v", name, err)
		}
	}
}

// Observations go into workflow payloads and `--json` output: the status reads as
// its DNS mnemonic and survives the round trip.
func TestObservationJSON(t *testing.T) {
	for _, s := range []Status{NoError, NXDomain, ServFail, Refused} {
		b, err := json.Marshal(Observation{Status: s})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"Status":"`+s.String()+`"`) {
			t.Errorf("%s marshals as %s", s, b)
		}
		var back Observation
		if err := json.Unmarshal(b, &back); err != nil || back.Status != s {
			t.Errorf("%s: round trip gave %s, %v", s, back.Status, err)
		}
	}
	var s Status
	if err := s.UnmarshalText([]byte("BOGUS")); err == nil {
		t.Error("unknown status accepted")
	}
}

// Query is one checked exchange; the recursion-desired bit says which mode asks.
func TestQuery(t *testing.T) {
	l := startLab(t)
	d := labDomain(t, l.w, world.SingleFlux, nil)
	for _, m := range l.modes()[:2] {
		r, err := New(m.cfg)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := r.Query(context.Background(), l.addr("127.0.0.1"), strings.ToUpper(d.Name), dns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Answer) != d.Answer || resp.RecursionDesired != r.recursive || resp.IsEdns0() == nil {
			t.Errorf("%s: %d answers, RD %v, OPT %v", m.name, len(resp.Answer), resp.RecursionDesired, resp.IsEdns0())
		}
	}
}
