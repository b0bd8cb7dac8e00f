package apiserve

import (
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/config"
)

func TestFromConfig(t *testing.T) {
	def := config.Default().API
	cfg, err := FromConfig(def)
	if err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	if cfg.MaxLookupValues != 1000 || cfg.MinScore != 0.5 || cfg.RatePerToken != 50 || cfg.MaxBodyBytes != 1<<20 || cfg.TLSCert != "" {
		t.Errorf("FromConfig(defaults) = %+v", cfg)
	}
	for _, c := range []struct {
		edit func(*config.API)
		want string
	}{
		{func(a *config.API) { a.TLSCert = "cert.pem" }, "tls_key"},
		{func(a *config.API) { a.MaxConns = -1 }, "max_conns"},
		{func(a *config.API) { a.RatePerToken = -1 }, "rate_per_token"},
		{func(a *config.API) { a.Burst = 0 }, "burst"},
		{func(a *config.API) { a.MaxBodyBytes = 10 }, "max_body_bytes"},
		{func(a *config.API) { a.MaxLookupValues = 0 }, "max_lookup_values"},
		{func(a *config.API) { a.WriteTimeout = 0 }, "write_timeout"},
		{func(a *config.API) { a.MinScore = 1.5 }, "min_score"},
		{func(a *config.API) { a.Poll = time.Millisecond }, "poll"},
	} {
		a := def
		c.edit(&a)
		if _, err := FromConfig(a); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.want, err)
		}
	}
	if _, err := New(Config{TLSCert: "/nonexistent/cert.pem", TLSKey: "/nonexistent/key.pem"}, newFakeStore(), Options{Lookuper: fakeLookuper{}}); err == nil || !strings.Contains(err.Error(), "TLS key pair") {
		t.Errorf("New with missing TLS files: %v", err)
	}
}
