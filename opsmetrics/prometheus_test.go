package opsmetrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/opsmetrics"
	"github.com/tip-project/tip/worker"
)

// The repository's alert rules and dashboard, from this package's folder.
var (
	rulesFile     = filepath.Join("..", "deploy", "prometheus", "rules.yaml")
	dashboardFile = filepath.Join("..", "deploy", "grafana", "tip.json")
)

// TestPrometheusScrapesTheCollectorAndAlerts serves the collector on the
// seeded deployment as `tip serve metrics` does, and runs a real Prometheus
// (Debian's prometheus package; CI has it) scraping it every second with the
// repository's alert rules (deploy/prometheus/rules.yaml). TIP's series are
// in Prometheus with their labels and values, and TIPSourceDead fires for
// the dead source, and for it alone. The rules' `for:` (10m for
// TIPSourceDead) is rewritten to 2s in the copy Prometheus loads: the alert
// goes pending, then firing within seconds; everything else is the
// repository's file. Each expression of the Grafana dashboard
// (deploy/grafana/tip.json) is evaluated by the same Prometheus and must
// parse and run.
func TestPrometheusScrapesTheCollectorAndAlerts(t *testing.T) {
	testenv.Stack(t)
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (apt-get install prometheus: Debian's 2.42); CI has it")
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatalf("the alert rules: %v", err)
	}
	d := newDeployment(t)
	target := testenv.FreeAddr(t)
	srv, err := worker.ServeMetrics(target, opsmetrics.Registry(d.collector()), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	p := startPrometheus(t, bin, target, regexp.MustCompile(`(?m)^(\s+for:\s*)\S+`).ReplaceAll(rules, []byte("${1}2s")))

	// Scraped: up, and the collector's series, with the Go process's.
	p.await(t, "the first scrape", func() bool {
		return len(p.query(t, `up{job="tip"} == 1`)) == 1 && len(p.query(t, `tip_source_up`)) > 0
	})
	one := func(q string) float64 {
		t.Helper()
		r := p.query(t, q)
		if len(r) != 1 {
			t.Errorf("%s: %d series, want 1: %v", q, len(r), r)
			return 0
		}
		return r[0].value
	}
	for q, want := range map[string]float64{
		`tip_source_up{source="alpha"}`:                                1,
		`tip_source_up{source="gone"}`:                                 0,
		`tip_source_state{source="gone",state="dead"}`:                 1,
		`tip_source_state{source="gamma",state="failing"}`:             1,
		`tip_source_listings{source="alpha",type="ipv4"}`:              float64(len(d.w.Lists["alpha"])),
		`tip_source_runs_total{source="gone",status="dead"}`:           3,
		`tip_source_interval_seconds{source="alpha"}`:                  1800,
		`tip_spam_mails_total{collector="archive:lab"}`:                float64(len(d.w.Mails)),
		`tip_spam_collector_interval_seconds{collector="archive:lab"}`: 120,
		`tip_flux_monitors{state="watching"}`:                          2,
		`tip_flux_monitors{state="stable"}`:                            1,
		`tip_flux_checks_total`:                                        float64(d.checks()),
		`tip_flux_check_lateness_seconds_count`:                        float64(len(recentLates)),
		`tip_flux_check_lateness_seconds_bucket{le="2"}`:               2,
		`tip_flux_check_lateness_seconds_bucket{le="+Inf"}`:            3,
		`tip_core_running`:                                             0,
		`tip_workers_polling`:                                          0,
		`sum(tip_ops_scrape_errors_total)`:                             0,
		`count(tip_ops_scrape_errors_total)`:                           4,
		`count(go_goroutines{job="tip"})`:                              1,
		`count(process_resident_memory_bytes{job="tip"})`:              1,
		`count(tip_ops_scrape_duration_seconds)`:                       1,
	} {
		if got := one(q); got != want {
			t.Errorf("%s = %v, want %v", q, got, want)
		}
	}
	// The labels of each series are the contract's, besides job and instance.
	for name, want := range map[string][]string{
		"tip_source_state":                         {"source", "state"},
		"tip_source_listings":                      {"source", "type"},
		"tip_source_runs_total":                    {"source", "status"},
		"tip_spam_last_good_run_timestamp_seconds": {"collector"},
		"tip_flux_monitors":                        {"state"},
		"tip_flux_check_lateness_seconds_bucket":   {"le"},
		"tip_ops_scrape_errors_total":              {"part"},
	} {
		for _, labels := range p.series(t, name) {
			delete(labels, "__name__")
			delete(labels, "job")
			delete(labels, "instance")
			if got := slices.Sorted(maps.Keys(labels)); !slices.Equal(got, want) {
				t.Errorf("%s has labels %v, want %v", name, got, want)
			}
		}
	}

	// Every alert of the contract is loaded, from the repository's rules.
	var alertNames []string
	for _, g := range p.rules(t) {
		for _, r := range g.Rules {
			if r.Type == "alerting" {
				alertNames = append(alertNames, r.Name)
			}
			if r.Health != "ok" && r.Health != "unknown" {
				t.Errorf("rule %s: health %s: %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	for _, name := range []string{"TIPSourceDead", "TIPAllSourcesFailing", "TIPSpamCollectorSilent", "TIPFluxChecksLate", "TIPNoWorkerPolling", "TIPCoreNotRunning"} {
		if !slices.Contains(alertNames, name) {
			t.Errorf("alert %s not loaded; the rules have %q", name, alertNames)
		}
	}

	// TIPSourceDead: firing for gone, the dead source, alone.
	var firing []string
	p.await(t, "TIPSourceDead firing", func() bool {
		firing = nil
		for _, a := range p.alerts(t) {
			if a.Labels["alertname"] == "TIPSourceDead" && a.State == "firing" {
				firing = append(firing, a.Labels["source"])
			}
		}
		return len(firing) > 0
	})
	if !slices.Equal(firing, []string{"gone"}) {
		t.Errorf("TIPSourceDead fires for %q, want gone alone", firing)
	}
	for _, a := range p.alerts(t) {
		if a.Labels["alertname"] == "TIPSourceDead" && a.Labels["severity"] == "" {
			t.Errorf("TIPSourceDead without a severity: %v", a.Labels)
		}
	}

	t.Run("dashboard", func(t *testing.T) {
		exprs := dashboardExprs(t)
		vars := regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)
		source := regexp.MustCompile(`\$\{source(:[a-z]+)?\}|\$source\b`)
		for _, e := range exprs {
			q := source.ReplaceAllString(vars.ReplaceAllString(e, "1m"), ".*")
			if err := p.eval(q); err != nil {
				t.Errorf("dashboard expression %s: %v", e, err)
			}
		}
		t.Logf("%d dashboard expressions evaluated", len(exprs))
	})
}

// dashboardExprs are the expressions of every panel's targets, nested rows'
// too; the test skips without the dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("no dashboard at %s", dashboardFile)
	}
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var exprs []string
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					exprs = append(exprs, tg.Expr)
				}
			}
			walk(p.Panels)
		}
	}
	var dash struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	walk(dash.Panels)
	if len(exprs) == 0 {
		t.Fatalf("%s has no panel expressions", dashboardFile)
	}
	return exprs
}

// promServer is a Prometheus server the test started.
type promServer struct {
	url string
}

// startPrometheus runs Prometheus on a free loopback port, scraping target
// every second and evaluating rules every second, until the test ends (its
// process group is stopped). Its log is a test artifact (-artifacts), and
// its end is shown when the test fails.
func startPrometheus(t *testing.T, bin, target string, rules []byte) *promServer {
	t.Helper()
	dir := t.TempDir()
	listen := testenv.FreeAddr(t)
	rulesPath := filepath.Join(dir, "rules.yaml")
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: tip
    static_configs:
      - targets: [%q]
`, rulesPath, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	for path, body := range map[string][]byte{rulesPath: rules, cfgPath: []byte(cfg)} {
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(t.ArtifactDir(), "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--web.listen-address="+listen,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--log.level=info")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck // stopped by the test
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			t.Logf("prometheus log (%s), its end:\n%s", logPath, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	p := &promServer{url: "http://" + listen}
	p.await(t, "prometheus ready", func() bool {
		select {
		case <-exited:
			t.Fatalf("prometheus exited at start; see its log")
		default:
		}
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// await polls ok every 250 ms for a minute at most.
func (p *promServer) await(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !ok(); time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
	}
}

// api gets an HTTP API path and decodes its data, or says why Prometheus
// refused (bad_data: the expression does not parse).
func (p *promServer) api(path string, params url.Values, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, r.ErrorType, r.Error)
	}
	if data == nil {
		return nil
	}
	return json.Unmarshal(r.Data, data)
}

type sample struct {
	labels map[string]string
	value  float64
}

// query evaluates an instant query whose result is a vector.
func (p *promServer) query(t *testing.T, q string) []sample {
	t.Helper()
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	if data.ResultType != "vector" {
		t.Fatalf("query %s: a %s, want a vector", q, data.ResultType)
	}
	var out []sample
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %v", q, r.Value)
		}
		out = append(out, sample{r.Metric, v})
	}
	return out
}

// eval evaluates an instant query, saying why it could not be.
func (p *promServer) eval(q string) error {
	return p.api("/api/v1/query", url.Values{"query": {q}}, nil)
}

// series lists the label sets of a metric's series.
func (p *promServer) series(t *testing.T, name string) []map[string]string {
	t.Helper()
	var out []map[string]string
	if err := p.api("/api/v1/series", url.Values{"match[]": {name}}, &out); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Errorf("no series %s", name)
	}
	return out
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []struct {
		Name      string `json:"name"`
		Type      string `json:"type"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	} `json:"rules"`
}

func (p *promServer) rules(t *testing.T) []ruleGroup {
	t.Helper()
	var data struct {
		Groups []ruleGroup `json:"groups"`
	}
	if err := p.api("/api/v1/rules", nil, &data); err != nil {
		t.Fatal(err)
	}
	return data.Groups
}

type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (p *promServer) alerts(t *testing.T) []alert {
	t.Helper()
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	if err := p.api("/api/v1/alerts", nil, &data); err != nil {
		t.Fatal(err)
	}
	return data.Alerts
}
