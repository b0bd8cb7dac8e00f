package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/testenv"
)

// TestServeMetricsCommand runs tip serve metrics on a migrated, empty
// database of the test stack with the lab's catalogs: /metrics on
// metrics.listen has the operations metrics (read from PostgreSQL, the
// catalogs and Temporal, where no core runs) and the Go process's, until
// cancelled.
func TestServeMetricsCommand(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	setEnv(t, cfg)
	labConfig := filepath.Dir(testenv.LabConfigFile())
	t.Setenv("TIP_BLACKLISTS_CATALOG", filepath.Join(labConfig, "lab.yaml"))
	t.Setenv("TIP_SPAM_CATALOG", filepath.Join(labConfig, "spam-lab.yaml"))
	listen := testenv.FreeAddr(t)
	t.Setenv("TIP_METRICS_LISTEN", listen)
	if out, err := runTip(t, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	stop := serveUntilCancelled(t, "http://"+listen+"/metrics", "serve", "metrics")
	body := scrapeMetrics(t, "http://"+listen+"/metrics")
	for _, want := range []string{
		`tip_flux_monitors{state="watching"} 0`,
		`tip_flux_checks_total 0`,
		`tip_flux_check_lateness_seconds_count 0`,
		`tip_core_running 0`,
		`tip_workers_polling 0`,
		`tip_ops_scrape_errors_total{part="sources"} 0`,
		`tip_ops_scrape_errors_total{part="spam"} 0`,
		`tip_ops_scrape_errors_total{part="flux"} 0`,
		`tip_spam_mails_total{collector="archive:lab-archive"} 0`,
		`tip_ops_scrape_errors_total{part="core"} 0`,
		`tip_ops_scrape_duration_seconds `,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("tip serve metrics: no %q in\n%s", want, body)
		}
	}
	stop()
}

func TestServeMetricsNeedsAnAddress(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("TIP_METRICS_LISTEN", "")
	if out, err := runTip(t, "serve", "metrics"); err == nil || !strings.Contains(err.Error(), "TIP_METRICS_LISTEN") {
		t.Fatalf("serve metrics without an address = %v\n%s", err, out)
	}
}

// TestServeAPIServesTheOperationsMetrics: tip serve api serves the
// operations metrics beside its own on api.metrics_address.
func TestServeAPIServesTheOperationsMetrics(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	setEnv(t, cfg)
	metrics := testenv.FreeAddr(t)
	t.Setenv("TIP_API_LISTEN", testenv.FreeAddr(t))
	t.Setenv("TIP_API_METRICS_ADDRESS", metrics)
	t.Setenv("TIP_API_MISP_CACHE", t.TempDir())
	if out, err := runTip(t, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	stop := serveUntilCancelled(t, "http://"+metrics+"/metrics", "serve", "api")
	body := scrapeMetrics(t, "http://"+metrics+"/metrics")
	for _, want := range []string{`tip_ops_scrape_errors_total{part="flux"} 0`, `tip_core_running 0`, `tip_api_open_connections `} {
		if !strings.Contains(body, want) {
			t.Errorf("tip serve api's metrics: no %q in\n%s", want, body)
		}
	}
	stop()
}

// serveUntilCancelled runs a tip command until the returned stop, which
// requires it to end without an error; it returns once url answers.
func serveUntilCancelled(t *testing.T, url string, args ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var log bytes.Buffer
	go func() {
		root := newRoot()
		root.SetArgs(args)
		root.SetOut(&log)
		root.SetErr(&log)
		done <- root.ExecuteContext(ctx)
	}()
	t.Cleanup(cancel)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("tip %s ended: %v\n%s", strings.Join(args, " "), err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tip %s did not answer on %s", strings.Join(args, " "), url)
		}
	}
	return func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("tip %s: %v\n%s", strings.Join(args, " "), err, log.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("tip %s did not stop", strings.Join(args, " "))
		}
	}
}

func scrapeMetrics(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(body)
}
