package prometheus_test

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tip-project/tip/internal/metricnames"
	"go.yaml.in/yaml/v3"
)

// kind decides the series Prometheus stores for a metric.
type kind int

const (
	gauge kind = iota
	counter
	histogram // NAME_bucket, NAME_sum, NAME_count
)

// exported are the metrics TIP's processes serve, by the name the process
// gives them: the operations collector's (internal/metricnames, added in
// init) and the servers' and workers' own below. A rule may read only these (and what the group records): an
// alert on a renamed metric would otherwise stay silent for ever.
var exported = map[string]kind{
	// `tip serve dns` (dnsserve/metrics.go) and `tip serve api` (apiserve/metrics.go).
	"tip_dns_queries_total":            counter,
	"tip_dns_transfers_total":          counter,
	"tip_dns_notifies_total":           counter,
	"tip_dns_zone_serial":              gauge,
	"tip_dns_rate_limited_total":       counter,
	"tip_dns_index_listings":           gauge,
	"tip_dns_index_changes_total":      counter,
	"tip_dns_index_age_seconds":        gauge,
	"tip_api_requests_total":           counter,
	"tip_api_request_duration_seconds": histogram,
	"tip_api_refused_total":            counter,
	"tip_api_open_connections":         gauge,
	"tip_api_token_verify_seconds":     histogram,
	"tip_api_misp_generations_total":   counter,
	"tip_api_misp_generation_seconds":  gauge,
	"tip_api_version_age_seconds":      gauge,

	// `tip worker` (worker.metrics_address): its own (worker/presence.go) and
	// the Temporal SDK's, which the worker prefixes with tip_ and names the
	// Prometheus way (timers as _seconds histograms, counters as _total).
	"tip_worker_live_workers": gauge,
	"tip_flux_dns_qps_share":  gauge,
	"tip_temporal_workflow_task_schedule_to_start_latency_seconds": histogram,
	"tip_temporal_workflow_task_execution_latency_seconds":         histogram,
	"tip_temporal_workflow_endtoend_latency_seconds":               histogram,
	"tip_temporal_activity_schedule_to_start_latency_seconds":      histogram,
	"tip_temporal_activity_execution_latency_seconds":              histogram,
	"tip_temporal_local_activity_execution_latency_seconds":        histogram,
	"tip_temporal_workflow_completed_total":                        counter,
	"tip_temporal_workflow_failed_total":                           counter,
	"tip_temporal_workflow_task_execution_failed_total":            counter,
	"tip_temporal_activity_execution_failed_total":                 counter,
	"tip_temporal_local_activity_execution_failed_total":           counter,
	"tip_temporal_sticky_cache_total_forced_eviction_total":        counter,
	"tip_temporal_worker_task_slots_available":                     gauge,
	"tip_temporal_worker_task_slots_used":                          gauge,
	"tip_temporal_num_pollers":                                     gauge,
	"tip_temporal_sticky_cache_size":                               gauge,

	// Prometheus's own, for every target and rule.
	"up":     gauge,
	"ALERTS": gauge,
}

func init() {
	for name, k := range metricnames.Collector {
		exported[name] = map[metricnames.Kind]kind{metricnames.Gauge: gauge, metricnames.Counter: counter, metricnames.Histogram: histogram}[k]
	}
}

// seriesNames are the names Prometheus stores for the exported metrics.
func seriesNames() map[string]bool {
	out := map[string]bool{}
	for name, k := range exported {
		if k == histogram {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = true
			}
			continue
		}
		out[name] = true
	}
	return out
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func readRules(t *testing.T, path string) ruleFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// TestRulesReadExportedMetrics: every series a rule's expression reads, and
// every tip_* name its annotations mention (the queries of the descriptions,
// the metrics a runbook points to), is one TIP exports or one an earlier rule
// of the group records.
func TestRulesReadExportedMetrics(t *testing.T) {
	for _, err := range checkMetricNames(readRules(t, "rules.yaml")) {
		t.Error(err)
	}
}

// TestRenamedMetricIsCaught: the check above fails when a rule reads a name
// TIP does not export, or a recording an earlier rule does not make.
func TestRenamedMetricIsCaught(t *testing.T) {
	rename := func(old, new string) func(*ruleFile) bool {
		return func(f *ruleFile) bool {
			found := false
			for _, g := range f.Groups {
				for i := range g.Rules {
					r := &g.Rules[i]
					found = found || strings.Contains(r.Expr, old) || strings.Contains(r.Annotations["description"], old)
					r.Expr = strings.ReplaceAll(r.Expr, old, new)
					if r.Annotations != nil {
						r.Annotations["description"] = strings.ReplaceAll(r.Annotations["description"], old, new)
					}
				}
			}
			return found
		}
	}
	for _, c := range []struct {
		name   string
		change func(*ruleFile) bool
		want   string
	}{
		{"renamed in an expression", rename("tip_workers_polling", "tip_worker_pollers"), "tip_worker_pollers"},
		{"renamed in a description's query", rename("tip_source_consecutive_failures", "tip_source_failures_in_a_row"), "tip_source_failures_in_a_row"},
		{"histogram without its suffix", rename("tip_flux_check_lateness_seconds_bucket", "tip_flux_check_lateness_seconds"), "tip_flux_check_lateness_seconds"},
		{"recording made after the alerts", func(f *ruleFile) bool {
			rules := f.Groups[0].Rules
			if len(rules) == 0 || rules[0].Record == "" {
				return false
			}
			f.Groups[0].Rules = append(rules[1:], rules[0])
			return true
		}, "source:tip_source_last_success_age_seconds:max"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := readRules(t, "rules.yaml")
			if !c.change(&f) {
				t.Fatal("rules.yaml has nothing to change: the case proves nothing")
			}
			errs := checkMetricNames(f)
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), c.want) }) {
				t.Fatalf("not caught (want an error naming %s): %v", c.want, errs)
			}
		})
	}
}

// checkMetricNames lists the names f's rules read that TIP does not export
// and no earlier rule of the same group records. An expression must name a
// series (a histogram's _bucket, _sum or _count); an annotation may name the
// metric itself, as a runbook pointing to a histogram does.
func checkMetricNames(f ruleFile) []error {
	known := seriesNames()
	mentioned := maps.Clone(known)
	for name := range exported {
		mentioned[name] = true
	}
	var errs []error
	for _, g := range f.Groups {
		recorded := map[string]bool{}
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			for _, m := range exprMetrics(r.Expr) {
				if !known[m] && !recorded[m] {
					errs = append(errs, fmt.Errorf("group %s, rule %s: its expression reads %s, which TIP does not export (nor an earlier rule records)", g.Name, name, m))
				}
			}
			for key, text := range r.Annotations {
				for _, m := range annotationMetrics(text) {
					if !mentioned[m] && !recorded[m] {
						errs = append(errs, fmt.Errorf("group %s, alert %s: annotation %s names %s, which TIP does not export (nor an earlier rule records)", g.Name, name, key, m))
					}
				}
			}
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	return errs
}

var (
	// What a metric name cannot be: strings, label matchers, ranges and
	// subquery or offset durations, and the label lists of grouping and
	// vector matching.
	promStrings  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^{}]*\}|\[[^\[\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promOffset   = regexp.MustCompile(`\boffset\s+-?[0-9a-zA-Z]+`)
	promNumber   = regexp.MustCompile(`\b(?:0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\b`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true, "Inf": true, "NaN": true,
		// Aggregations, which may take their grouping before the parenthesis.
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	}
)

// exprMetrics are the metric names a PromQL expression reads: what is left
// once strings, matchers, ranges, label lists, numbers, keywords and function
// calls are taken out.
func exprMetrics(expr string) []string {
	s := promStrings.ReplaceAllString(expr, " ")
	for prev := ""; prev != s; {
		prev = s
		s = promMatchers.ReplaceAllString(s, " ")
	}
	s = promGrouping.ReplaceAllString(s, " ")
	s = promOffset.ReplaceAllString(s, " ")
	s = promNumber.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		id := s[loc[0]:loc[1]]
		if promKeywords[id] || strings.HasPrefix(strings.TrimLeft(s[loc[1]:], " \t\n"), "(") {
			continue
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// annotationMetrics are the names in an annotation that look like TIP's
// metrics or recordings: tip_..., or level:tip_...:operations.
var annotationMetric = regexp.MustCompile(`\b(?:[a-z_]+:)?tip_[a-z0-9_]+(?::[a-z0-9_]+)?`)

func annotationMetrics(text string) []string {
	var out []string
	for _, m := range annotationMetric.FindAllString(text, -1) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

func TestExprMetrics(t *testing.T) {
	for expr, want := range map[string][]string{
		`max by (source) (tip_source_state{state="dead"}) == 1`:                                            {"tip_source_state"},
		`histogram_quantile(0.99, sum by (le) (rate(tip_flux_check_lateness_seconds_bucket[15m])))`:        {"tip_flux_check_lateness_seconds_bucket"},
		`a:b:c > on (source) 3 * max by (source) (x_total offset 5m) or on (source) y unless on(source) z`: {"a:b:c", "x_total", "y", "z"},
		`max(tip_core_running) == 0 or absent(tip_core_running)`:                                           {"tip_core_running"},
		`sum(up{job="tip-api", le="+Inf"}) > 1e3 and bool count(ALERTS)`:                                   {"up", "ALERTS"},
		`label_replace(m1, "dst", "$1", "src", "(.*)") * on() group_left(source) m2[5m:1m]`:                {"m1", "m2"},
	} {
		if got := exprMetrics(expr); !slices.Equal(got, want) {
			t.Errorf("exprMetrics(%q) = %q, want %q", expr, got, want)
		}
	}
}
