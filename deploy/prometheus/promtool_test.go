// Package prometheus_test checks TIP's Prometheus files with promtool, the
// checker Prometheus ships: rules.yaml loads, its unit tests (rules_test.yaml)
// pass and would fail if an alert changed, and prometheus.yml loads with its
// rules. It also holds the alerts to the metric names TIP exports and their
// runbooks to tip's real commands. promtool comes from Debian's prometheus
// package (deploy/local/tools.sh installs it); without it the tests fail,
// except under -short.
package prometheus_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// promtool is the path of promtool: on PATH, or where Debian installs it.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/promtool"); err == nil {
		return "/usr/bin/promtool"
	}
	if testing.Short() {
		t.Skip("promtool is not installed (-short)")
	}
	t.Fatal("promtool is not installed: run deploy/local/tools.sh (make tools), which installs Debian's prometheus package")
	return ""
}

// runPromtool runs promtool ARGS in dir and returns its output; err is set when
// it exits non-zero.
func runPromtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("promtool %s: %v", strings.Join(args, " "), err)
	}
	return string(out), err
}

// TestPromtool: rules.yaml is valid, its unit tests pass, and prometheus.yml
// is a valid configuration whose rule file resolves.
func TestPromtool(t *testing.T) {
	for _, args := range [][]string{
		{"check", "rules", "rules.yaml"},
		{"test", "rules", "rules_test.yaml"},
		{"check", "config", "prometheus.yml"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if out, err := runPromtool(t, ".", args...); err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// TestConfigNeedsItsRules: `promtool check config` fails when the rule file
// prometheus.yml names is not beside it, so TestPromtool proves it resolves.
func TestConfigNeedsItsRules(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "prometheus.yml", filepath.Join(dir, "prometheus.yml"))
	out, err := runPromtool(t, dir, "check", "config", "prometheus.yml")
	if err == nil || !strings.Contains(out, "rules.yaml") {
		t.Fatalf("promtool check config passed without rules.yaml: %v\n%s", err, out)
	}
}

// TestRuleTestsBite: rules_test.yaml fails on a copy of rules.yaml with a
// threshold, a duration, a label, a branch or a runbook changed; each is a way
// the alerts could break unnoticed if the tests did not look at it.
func TestRuleTestsBite(t *testing.T) {
	for _, c := range []struct{ name, old, new string }{
		{"source threshold 4 intervals", "> on (source) 3 * max by (source)", "> on (source) 4 * max by (source)"},
		{"no dead state", "          max by (source) (tip_source_state{state=\"dead\"}) == 1\n          or on (source)\n", ""},
		{"fallback of sources without an interval", "3 * scalar(max(tip_source_interval_seconds))", "4 * scalar(max(tip_source_interval_seconds))"},
		{"source alert after 5m", "        for: 10m\n        labels:\n          severity: warning\n        annotations:\n          summary: \"Blacklist source",
			"        for: 5m\n        labels:\n          severity: warning\n        annotations:\n          summary: \"Blacklist source"},
		{"runbook without the source's name", "`tip blacklists refresh --source {{ $labels.source }} --wait`", "`tip blacklists refresh --source NAME --wait`"},
		{"own sources counted", `expr: sum(max by (source) (tip_source_up{source!~"tip-.*"})) == 0`, `expr: sum(max by (source) (tip_source_up)) == 0`},
		{"collector threshold 2 intervals", "> on (collector) 3 * max by (collector)", "> on (collector) 2 * max by (collector)"},
		{"lateness above, not at, the cadence", "p99_rate15m >= on ()", "p99_rate15m > on ()"},
		{"workers polling a warning", "expr: max(tip_workers_polling) == 0\n        for: 5m\n        labels:\n          severity: critical",
			"expr: max(tip_workers_polling) == 0\n        for: 5m\n        labels:\n          severity: warning"},
		{"no alert on an absent core", "max(tip_core_running) == 0 or absent(tip_core_running)", "max(tip_core_running) == 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			copyFile(t, "rules_test.yaml", filepath.Join(dir, "rules_test.yaml"))
			rules, err := os.ReadFile("rules.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(rules), c.old) {
				t.Fatalf("rules.yaml has no %q: the mutation would prove nothing", c.old)
			}
			broken := strings.Replace(string(rules), c.old, c.new, 1)
			if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := runPromtool(t, dir, "check", "rules", "rules.yaml"); err != nil {
				t.Fatalf("the mutated rules do not load, so this case proves nothing: %v\n%s", err, out)
			}
			if out, err := runPromtool(t, dir, "test", "rules", "rules_test.yaml"); err == nil {
				t.Fatalf("promtool test rules passed rules.yaml with %q in place of %q:\n%s", c.new, c.old, out)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
