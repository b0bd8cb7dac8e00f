package grafana_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tip-project/tip/internal/metricnames"
)

// root is the repository's root, seen from this package's folder.
const root = "../.."

// kind is what a metric is; it decides the series Prometheus holds for it and
// the functions that make sense over them.
type kind int

const (
	gauge     kind = iota
	counter        // a monotonic series: only under rate, irate or increase
	histogram      // classic: series NAME_bucket, NAME_count, NAME_sum (counters)
	summary        // series NAME (a gauge per quantile), NAME_count, NAME_sum
)

func (k kind) String() string {
	return [...]string{"gauge", "counter", "histogram", "summary"}[k]
}

// series are the names Prometheus stores for metric name of kind k, each with
// whether it is a counter.
func series(name string, k kind) map[string]bool {
	switch k {
	case counter:
		return map[string]bool{name: true}
	case histogram:
		return map[string]bool{name + "_bucket": true, name + "_count": true, name + "_sum": true}
	case summary:
		return map[string]bool{name: false, name + "_count": true, name + "_sum": true}
	}
	return map[string]bool{name: false}
}

// specMetrics are the operations collector's metrics (package opsmetrics,
// served by `tip serve api` and `tip serve metrics`), from their one list.
// The dashboard must show every one of them.
var specMetrics = func() map[string]kind {
	out := map[string]kind{}
	for name, k := range metricnames.Collector {
		out[name] = map[metricnames.Kind]kind{metricnames.Gauge: gauge, metricnames.Counter: counter, metricnames.Histogram: histogram}[k]
	}
	return out
}()

// processMetricFiles are the Go files where TIP's servers and workers define
// their own Prometheus metrics; the test reads the names from them, so renaming
// a metric there fails the dashboard's test.
var processMetricFiles = []string{"dnsserve/metrics.go", "apiserve/metrics.go", "worker/presence.go"}

// sdkKind is how the Temporal Go SDK records a metric.
type sdkKind int

const (
	sdkCounter sdkKind = iota
	sdkGauge
	sdkTimer
)

func (k sdkKind) String() string { return [...]string{"counter", "gauge", "timer"}[k] }

// sdkMetrics are the Temporal Go SDK's metric names (the constants of
// go.temporal.io/sdk/internal/common/metrics, read in TestSDKMetricNames) and
// how the SDK records each.
var sdkMetrics = map[string]sdkKind{
	"temporal_workflow_completed":        sdkCounter,
	"temporal_workflow_canceled":         sdkCounter,
	"temporal_workflow_failed":           sdkCounter,
	"temporal_workflow_continue_as_new":  sdkCounter,
	"temporal_workflow_endtoend_latency": sdkTimer,

	"temporal_workflow_task_replay_latency":            sdkTimer,
	"temporal_workflow_task_queue_poll_empty":          sdkCounter,
	"temporal_workflow_task_queue_poll_succeed":        sdkCounter,
	"temporal_workflow_task_schedule_to_start_latency": sdkTimer,
	"temporal_workflow_task_execution_latency":         sdkTimer,
	"temporal_workflow_task_execution_failed":          sdkCounter,
	"temporal_workflow_task_no_completion":             sdkCounter,

	"temporal_activity_poll_no_task":              sdkCounter,
	"temporal_activity_schedule_to_start_latency": sdkTimer,
	"temporal_activity_execution_failed":          sdkCounter,
	"temporal_unregistered_activity_invocation":   sdkCounter,
	"temporal_activity_execution_latency":         sdkTimer,
	"temporal_activity_succeed_endtoend_latency":  sdkTimer,
	"temporal_activity_task_error":                sdkCounter,

	"temporal_local_activity_total":                    sdkCounter,
	"temporal_local_activity_canceled":                 sdkCounter,
	"temporal_local_activity_execution_cancelled":      sdkCounter,
	"temporal_local_activity_failed":                   sdkCounter,
	"temporal_local_activity_execution_failed":         sdkCounter,
	"temporal_local_activity_error":                    sdkCounter,
	"temporal_local_activity_execution_latency":        sdkTimer,
	"temporal_local_activity_succeed_endtoend_latency": sdkTimer,

	"temporal_corrupted_signals": sdkCounter,

	"temporal_worker_start":                sdkCounter,
	"temporal_worker_task_slots_available": sdkGauge,
	"temporal_worker_task_slots_used":      sdkGauge,
	"temporal_poller_start":                sdkCounter,
	"temporal_num_pollers":                 sdkGauge,

	"temporal_request":                         sdkCounter,
	"temporal_request_failure":                 sdkCounter,
	"temporal_request_latency":                 sdkTimer,
	"temporal_long_request":                    sdkCounter,
	"temporal_long_request_failure":            sdkCounter,
	"temporal_long_request_latency":            sdkTimer,
	"temporal_request_resource_exhausted":      sdkCounter,
	"temporal_long_request_resource_exhausted": sdkCounter,

	"temporal_sticky_cache_hit":                   sdkCounter,
	"temporal_sticky_cache_miss":                  sdkCounter,
	"temporal_sticky_cache_total_forced_eviction": sdkCounter,
	"temporal_sticky_cache_size":                  sdkGauge,
	"temporal_workflow_active_thread_count":       sdkGauge,

	"temporal_nexus_poll_no_task":                   sdkCounter,
	"temporal_nexus_task_schedule_to_start_latency": sdkTimer,
	"temporal_nexus_task_execution_failed":          sdkCounter,
	"temporal_nexus_task_execution_latency":         sdkTimer,
	"temporal_nexus_task_endtoend_latency":          sdkTimer,
}

// catalog is what a dashboard may query: every series name TIP's processes
// export (true: a counter), and the metrics every dashboard must show.
type catalog struct {
	series   map[string]bool
	required map[string]kind
}

// tipCatalog builds the catalog from the spec's list, the servers' Go files and
// the SDK's names as the worker exports them.
func tipCatalog(t testing.TB) catalog {
	t.Helper()
	c := catalog{series: map[string]bool{}, required: specMetrics}
	add := func(name string, k kind, from string) {
		for s, isCounter := range series(name, k) {
			if _, dup := c.series[s]; dup {
				t.Fatalf("series %s (%s) defined twice", s, from)
			}
			c.series[s] = isCounter
		}
	}
	for name, k := range specMetrics {
		add(name, k, "spec")
	}
	for _, file := range processMetricFiles {
		defined, err := goMetrics(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for name, k := range defined {
			add(name, k, file)
		}
	}
	prefix := workerPrefix(t)
	for name, k := range sdkMetrics {
		add(sdkSeries(prefix, name, k))
	}
	return c
}

// sdkSeries is how the worker's reporter (tally with the SDK's Prometheus
// naming scope and histogram timers) names an SDK metric.
func sdkSeries(prefix, name string, k sdkKind) (string, kind, string) {
	name = prefix + "_" + name
	switch k {
	case sdkCounter:
		return strings.TrimSuffix(name, "_total") + "_total", counter, "sdk"
	case sdkTimer:
		return strings.TrimSuffix(name, "_seconds") + "_seconds", histogram, "sdk"
	}
	return name, gauge, "sdk"
}

var optsKinds = map[string]kind{"CounterOpts": counter, "GaugeOpts": gauge, "HistogramOpts": histogram, "SummaryOpts": summary}

// goMetrics reads the metrics a Go file defines with client_golang's
// XxxOpts{Name: "..."} literals.
func goMetrics(path string) (map[string]kind, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]kind{}
	var bad error
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		sel, ok := lit.Type.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		k, ok := optsKinds[sel.Sel.Name]
		if !ok {
			return true
		}
		name := ""
		for _, e := range lit.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key, _ := kv.Key.(*ast.Ident)
			if key == nil {
				continue
			}
			switch key.Name {
			case "Namespace", "Subsystem":
				bad = fmt.Errorf("%s: a metric with %s; give the whole name in Name so this test can read it", path, key.Name)
			case "Name":
				if bl, ok := kv.Value.(*ast.BasicLit); ok && bl.Kind == token.STRING {
					name, _ = strconv.Unquote(bl.Value)
				}
			}
		}
		if name == "" {
			bad = fmt.Errorf("%s: a %s without a string literal Name; this test reads the names from the literals", path, sel.Sel.Name)
			return true
		}
		out[name] = k
		return true
	})
	if bad != nil {
		return nil, bad
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s defines no metrics this test can read", path)
	}
	return out, nil
}

// workerPrefix reads the prefix the worker gives the SDK's metrics, and fails
// if the worker no longer names them the way sdkSeries assumes.
func workerPrefix(t testing.TB) string {
	t.Helper()
	path := filepath.Join(root, "worker/worker.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	prefix, naming, histograms := "", false, false
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.KeyValueExpr:
			if key, ok := n.Key.(*ast.Ident); ok && key.Name == "Prefix" {
				if bl, ok := n.Value.(*ast.BasicLit); ok && bl.Kind == token.STRING {
					prefix, _ = strconv.Unquote(bl.Value)
				}
			}
		case *ast.SelectorExpr:
			naming = naming || n.Sel.Name == "NewPrometheusNamingScope"
			histograms = histograms || n.Sel.Name == "HistogramTimerType"
		}
		return true
	})
	if prefix == "" || !naming || !histograms {
		t.Fatalf("%s: the SDK's metrics are no longer reported with a literal Prefix, the SDK's Prometheus naming scope and histogram timers "+
			"(prefix %q, naming scope %v, histogram timers %v): the temporal panels and sdkSeries must follow", path, prefix, naming, histograms)
	}
	return prefix
}

// TestSDKMetricNames: every SDK metric this test knows is a constant of the SDK
// version go.mod requires, recorded as the kind listed (a rename or a change of
// kind in an SDK upgrade fails here, not on an empty panel).
func TestSDKMetricNames(t *testing.T) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/sdk")
	cmd.Dir = root
	out, err := cmd.Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skipf("the SDK's source is not at hand (go list -m: %v)", err)
	}
	consts, err := stringConsts(filepath.Join(dir, "internal/common/metrics/constants.go"))
	if err != nil {
		t.Fatal(err)
	}
	recorded, err := sdkRecordings(filepath.Join(dir, "internal"))
	if err != nil {
		t.Fatal(err)
	}
	byValue := map[string]string{}
	for ident, v := range consts {
		byValue[v] = ident
	}
	for name, want := range sdkMetrics {
		ident, ok := byValue[name]
		if !ok {
			t.Errorf("%s is no metric of the SDK in %s", name, dir)
			continue
		}
		if got, seen := recorded[ident]; seen && got != want {
			t.Errorf("%s (%s) is recorded as a %s, listed as a %s", name, ident, got, want)
		} else if !seen && (want == sdkTimer) != strings.HasSuffix(ident, "Latency") {
			// Recorded through a variable (the request metrics): the SDK names its timers ...Latency.
			t.Errorf("%s (%s) is listed as a %s; the SDK names its timers, and only them, ...Latency", name, ident, want)
		}
	}
}

// TestCollectorNames: the metric names in package opsmetrics are the spec's
// (specMetrics), so a rename in the collector fails here rather than leaving a
// panel empty.
func TestCollectorNames(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "opsmetrics", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if bl, ok := n.(*ast.BasicLit); ok && bl.Kind == token.STRING {
				if s, err := strconv.Unquote(bl.Value); err == nil && metricName.MatchString(s) {
					found[s] = true
				}
			}
			return true
		})
	}
	if len(found) == 0 {
		t.Fatalf("no metric names found in %s/opsmetrics", root)
	}
	for name := range specMetrics {
		if !found[name] {
			t.Errorf("%s: no such metric in package opsmetrics", name)
		}
	}
	for name := range found {
		if _, ok := specMetrics[name]; !ok {
			t.Errorf("opsmetrics defines %s, which specMetrics (and so the dashboard) lacks", name)
		}
	}
}

var metricName = regexp.MustCompile(`^tip_[a-z0-9_]+$`)

// stringConsts evaluates a file's string constants (literals and sums of them).
func stringConsts(path string) (map[string]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var eval func(ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		case *ast.Ident:
			s, ok := out[e.Name]
			return s, ok
		case *ast.ParenExpr:
			return eval(e.X)
		case *ast.BinaryExpr:
			x, ok1 := eval(e.X)
			y, ok2 := eval(e.Y)
			return x + y, ok1 && ok2 && e.Op == token.ADD
		}
		return "", false
	}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i < len(vs.Values) {
					if s, ok := eval(vs.Values[i]); ok {
						out[n.Name] = s
					}
				}
			}
		}
	}
	return out, nil
}

var recordCall = regexp.MustCompile(`\b(Counter|Gauge|Timer)\(\s*metrics\.(\w+)\s*\)`)

// sdkRecordings finds, in the SDK's internal package, the kind each metric
// constant is recorded with (handler.Counter(metrics.X), ...).
func sdkRecordings(dir string) (map[string]sdkKind, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	out := map[string]sdkKind{}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		src, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		for _, m := range recordCall.FindAllStringSubmatch(string(src), -1) {
			out[m[2]] = map[string]sdkKind{"Counter": sdkCounter, "Gauge": sdkGauge, "Timer": sdkTimer}[m[1]]
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no metric recordings found in %s", dir)
	}
	return out, nil
}
