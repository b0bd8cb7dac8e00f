package agent

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// agent.yaml's numbers are checked: a rate that is not a finite number of
// requests per second within bounds, limits out of range and a metrics address
// that is none are refused with the key named.
func TestLoadConfigChecksNumbers(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		err  string // "" accepted
	}{
		{"", ""},
		{"rate_limit: 1000000", ""},
		{"rate_limit: 0.5\nclient_rate_limit: 0.01", ""},
		{"max_conns: 4\nmax_conns_per_client: 4\nauth_timeout: 1s", ""},
		{"metrics: 127.0.0.1:9464", ""},
		{"metrics: '[::1]:9464'", ""},
		{"rate_limit: .nan", "rate_limit NaN"},
		{"rate_limit: .inf", "rate_limit +Inf"},
		{"rate_limit: -.inf", "rate_limit -Inf"},
		{"rate_limit: 0", "rate_limit 0"},
		{"rate_limit: -1", "rate_limit -1"},
		{"rate_limit: 1e-9", "rate_limit 1e-09"},
		{"rate_limit: 1e7", "rate_limit 1e+07"},
		{"client_rate_limit: .nan", "client_rate_limit NaN"},
		{"client_rate_limit: 0", "client_rate_limit 0"},
		{"max_conns: 0", "max_conns 0"},
		{"max_conns: 1000000", "max_conns 1000000"},
		{"max_conns_per_client: 0", "max_conns_per_client 0"},
		{"max_conns: 8\nmax_conns_per_client: 9", "max_conns_per_client 9"},
		{"auth_timeout: 0s", "auth_timeout 0s"},
		{"auth_timeout: -1s", "auth_timeout -1s"},
		{"auth_timeout: 1h", "auth_timeout 1h0m0s"},
		{"metrics: nonsense", `metrics "nonsense"`},
		{"metrics: '127.0.0.1:'", `metrics "127.0.0.1:"`},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte("id: mx1.test\n"+tc.yaml+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(dir)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %v, want an error naming %q", tc.yaml, err, tc.err)
		}
	}
}

// A rate limiter given a rate that is no rate (by a caller that skipped the
// checks) still says a sane wait, and a Retry-After is whole seconds within
// bounds.
func TestRateLimitsSaneWait(t *testing.T) {
	now := time.Unix(0, 0)
	for _, rate := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, -5, 1e-300} {
		l := newRateLimits[string](rate, 10, func() time.Time { return now })
		var wait time.Duration
		ok := true
		for range 3_000_000 {
			if wait, ok = l.allow("a"); !ok {
				break
			}
		}
		if ok || wait <= 0 || wait > time.Duration(float64(time.Second)/MinRate) {
			t.Errorf("rate %g: refused %v, wait %v", rate, !ok, wait)
		}
	}
	for _, tc := range []struct {
		wait time.Duration
		want string
	}{{0, "1"}, {-time.Hour, "1"}, {1500 * time.Millisecond, "2"}, {math.MinInt64, "1"}, {math.MaxInt64, "3600"}} {
		if got := retryAfter(tc.wait); got != tc.want {
			t.Errorf("retryAfter(%v) = %s, want %s", tc.wait, got, tc.want)
		}
	}
}
