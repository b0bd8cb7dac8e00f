package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/testenv"
)

// TestAPITokenCommands drives tip api token add, list and revoke on a
// migrated database.
func TestAPITokenCommands(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	setEnv(t, cfg)
	if out, err := runTip(t, "api", "token", "add", "early"); err == nil || !strings.Contains(err.Error(), "tip migrate") {
		t.Fatalf("token add before migrate = %v\n%s", err, out)
	}
	if out, err := runTip(t, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	out, err := runTip(t, "api", "token", "add", "soc-siem", "--scope", "lookup,export", "--ttl", "90d")
	tok := regexp.MustCompile(`tipk_[A-Za-z0-9_-]{43}`).FindString(out)
	if err != nil || tok == "" || !strings.Contains(out, "scopes lookup,export") || !strings.Contains(out, "shown this once") {
		t.Fatalf("token add = %v\n%s", err, out)
	}
	out, err = runTip(t, "api", "token", "add", "misp", "--scope", "all", "--json")
	var misp struct {
		Name, Token string
		Scopes      []string
		Expires     time.Time
	}
	if err != nil || json.Unmarshal([]byte(out), &misp) != nil || misp.Name != "misp" || len(misp.Scopes) != 1 || misp.Scopes[0] != "all" ||
		!strings.HasPrefix(misp.Token, "tipk_") || !misp.Expires.IsZero() {
		t.Fatalf("token add --json = %v\n%s", err, out)
	}
	for _, bad := range [][]string{
		{"api", "token", "add", "x", "--scope", "raw"},
		{"api", "token", "add", "x", "--scope", "all,lookup"},
		{"api", "token", "add", "x", "--ttl", "forever"},
		{"api", "token", "add", "x", "--ttl", "36501d"},
		{"api", "token", "add", "soc-siem"},
		{"api", "token", "revoke", "nobody"},
	} {
		if out, err := runTip(t, bad...); err == nil {
			t.Errorf("tip %s passed:\n%s", strings.Join(bad, " "), out)
		}
	}
	if out, err := runTip(t, "api", "token", "revoke", "misp"); err != nil || !strings.HasPrefix(out, "revoked misp at ") {
		t.Fatalf("revoke = %v\n%s", err, out)
	}
	if _, err := runTip(t, "api", "token", "revoke", "misp"); err == nil {
		t.Error("revoked twice")
	}
	out, err = runTip(t, "api", "token", "list")
	if err != nil || !regexp.MustCompile(`soc-siem\s+lookup,export\s+active`).MatchString(out) || !regexp.MustCompile(`misp\s+all\s+revoked`).MatchString(out) ||
		strings.Contains(out, tok) {
		t.Fatalf("list = %v\n%s", err, out)
	}
	out, err = runTip(t, "api", "token", "list", "--json")
	var rows []struct {
		Name, Status string
		Scopes       []string
		Expires      time.Time
	}
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 2 || rows[0].Name != "soc-siem" || rows[0].Status != "active" ||
		time.Until(rows[0].Expires) < 89*24*time.Hour || rows[1].Status != "revoked" {
		t.Fatalf("list --json = %v\n%s", err, out)
	}
}

// TestServeAPICommand runs tip serve api on loopback: it refuses to start on
// a database without its schema, then answers a token made by tip api token
// add and serves its metrics, until cancelled.
func TestServeAPICommand(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	setEnv(t, cfg)
	listen, metrics := testenv.FreeAddr(t), testenv.FreeAddr(t)
	t.Setenv("TIP_API_LISTEN", listen)
	t.Setenv("TIP_API_METRICS_ADDRESS", metrics)
	t.Setenv("TIP_API_MISP_CACHE", t.TempDir())
	if out, err := runTip(t, "serve", "api"); err == nil || !strings.Contains(err.Error(), "tip migrate") {
		t.Fatalf("serve api before migrate = %v\n%s", err, out)
	}
	if out, err := runTip(t, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	out, err := runTip(t, "api", "token", "add", "reader", "--scope", "sources")
	tok := regexp.MustCompile(`tipk_[A-Za-z0-9_-]{43}`).FindString(out)
	if err != nil || tok == "" {
		t.Fatalf("token add = %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var log bytes.Buffer
	go func() {
		root := newRoot()
		root.SetArgs([]string{"serve", "api"})
		root.SetOut(&log)
		root.SetErr(&log)
		done <- root.ExecuteContext(ctx)
	}()
	get := func(url, token string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := get("http://"+listen+"/v1/openapi.json", ""); code == 200 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve api ended: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve api did not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := get("http://"+listen+"/v1/sources", tok); code != 200 || !strings.Contains(body, `"sources"`) {
		t.Errorf("sources: %d %s", code, body)
	}
	if code, _ := get("http://"+listen+"/v1/lookup?q=evil.example", tok); code != http.StatusForbidden {
		t.Errorf("lookup with scope sources: %d", code)
	}
	if code, body := get("http://"+metrics+"/metrics", ""); code != 200 || !strings.Contains(body, `tip_api_requests_total{code="200",route="/v1/sources"} 1`) {
		t.Errorf("metrics: %d\n%s", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve api: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve api did not stop")
	}
}
