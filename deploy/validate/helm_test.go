package validate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/tip-project/tip/internal/devstack"
)

const chartDir = "../helm/tip"

// valueSets: the chart's defaults, and every optional part enabled.
var valueSets = map[string][]string{"defaults": nil, "all": {filepath.Join(chartDir, "ci/all-values.yaml")}}

// TestHelmChart: Helm's linter passes, and the chart renders with both value sets
// into manifests that decode strictly into their Kubernetes types and run what
// the production-like stack runs.
func TestHelmChart(t *testing.T) {
	for name, files := range valueSets {
		t.Run(name, func(t *testing.T) {
			vals := readValues(t, files)
			if err := lintChart(chartDir, vals); err != nil {
				t.Error(err)
			}
			objs, err := renderChart(chartDir, vals)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range checkManifests(objs, name == "all") {
				t.Error(err)
			}
		})
	}
}

// TestHelmRejectsBrokenCopies: a copy of the chart with an unknown field, a
// wrong command or a metrics port the probes do not use fails the checks.
func TestHelmRejectsBrokenCopies(t *testing.T) {
	for _, c := range []struct{ name, file, old, new, want string }{
		{"unknown field", "templates/worker-deployment.yaml", "          imagePullPolicy:", "          pullPolicy: Always\n          imagePullPolicy:", "pullPolicy"},
		{"wrong worker command", "templates/worker-deployment.yaml", `args: ["worker"]`, `args: ["work"]`, "worker"},
		{"wrong agent command", "templates/agent.yaml", `args: ["agent", "serve", "--dir", "/var/lib/tip-agent"]`, `args: ["agent", "serve", "--dir", "/var/lib/agent"]`, "agent"},
		{"setup is no hook", "templates/setup-job.yaml", "helm.sh/hook: post-install,post-upgrade", "example.org/hook: post-install", "hook"},
		{"wrong api command", "templates/api-deployment.yaml", `args: ["serve", "api"]`, `args: ["serve", "apis"]`, "api"},
		{"api listening elsewhere", "templates/api-deployment.yaml", `value: "0.0.0.0:{{ .Values.api.port }}"`, `value: "0.0.0.0:8000"`, "TIP_API_LISTEN"},
		{"certificate not mounted", "templates/api-deployment.yaml", "mountPath: /etc/tip/api-tls", "mountPath: /etc/tip/tls", "TIP_API_TLS_CERT"},
		{"probe on another port", "templates/worker-deployment.yaml", `value: "0.0.0.0:{{ .Values.worker.metricsPort }}"`, `value: "0.0.0.0:9000"`, "metrics"},
		{"rules not deploy/prometheus's", "files/prometheus-rules.yaml", "for: 10m", "for: 1h", "PrometheusRule"},
		{"scraping a port the Service lacks", "templates/servicemonitor.yaml", "- port: metrics", "- port: http-metrics", "http-metrics"},
		{"dashboard without the sidecar's label", "templates/grafana-dashboard.yaml", `grafana_dashboard: "1"`, `grafana_dashboard: "yes"`, "grafana_dashboard"},
		{"the lab's ASN table", "values.yaml", "  TIP_FLUX_QPS: \"200\"\n", "  TIP_FLUX_QPS: \"200\"\n  TIP_FLUX_ASN_TABLE: http://127.0.0.1:8480/iptoasn/ip2asn-combined.tsv.gz\n", "flux.asn_table http://127.0.0.1:8480"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
				t.Fatal(err)
			}
			breakFile(t, filepath.Join(dir, c.file), c.old, c.new)
			objs, err := renderChart(dir, readValues(t, valueSets["all"]))
			if err == nil {
				err = errors.Join(checkManifests(objs, true)...)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("the checks did not catch it (want an error about %q): %v", c.want, err)
			}
		})
	}
}

func readValues(t *testing.T, files []string) map[string]any {
	vals := map[string]any{}
	for _, f := range files {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vals = chartutil.CoalesceTables(v.AsMap(), vals)
	}
	return vals
}

// lintChart runs Helm's linter (`helm lint`); warnings and errors fail.
func lintChart(dir string, vals map[string]any) error {
	var errs []error
	for _, m := range lint.All(dir, vals, "tip", false).Messages {
		if m.Severity >= support.WarningSev {
			errs = append(errs, fmt.Errorf("helm lint: %s", m))
		}
	}
	return errors.Join(errs...)
}

// renderChart renders the chart as `helm template tip CHART -n tip` does and
// decodes every manifest strictly into its Kubernetes type: an unknown field, a
// wrong type or an unknown kind fails.
func renderChart(dir string, vals map[string]any) ([]any, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, err
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "tip", Namespace: "tip", Revision: 1, IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var objs []any
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") || strings.HasSuffix(n, ".tpl") {
			continue
		}
		for doc := range strings.SplitSeq(files[n], "\n---") {
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				return nil, fmt.Errorf("%s: %v", n, err)
			}
			if head.Kind == "" {
				continue // empty: a disabled part
			}
			obj, ok := kinds[head.APIVersion+"/"+head.Kind]
			if !ok {
				return nil, fmt.Errorf("%s: unexpected kind %s/%s", n, head.APIVersion, head.Kind)
			}
			o := reflect.New(reflect.TypeOf(obj).Elem()).Interface()
			if err := yaml.UnmarshalStrict([]byte(doc), o); err != nil {
				return nil, fmt.Errorf("%s: %s: %v", n, head.Kind, err)
			}
			objs = append(objs, o)
		}
	}
	return objs, nil
}

var kinds = map[string]any{
	"v1/ConfigMap": &corev1.ConfigMap{}, "v1/Secret": &corev1.Secret{}, "v1/Service": &corev1.Service{},
	"apps/v1/Deployment": &appsv1.Deployment{}, "apps/v1/StatefulSet": &appsv1.StatefulSet{},
	"batch/v1/Job": &batchv1.Job{}, "policy/v1/PodDisruptionBudget": &policyv1.PodDisruptionBudget{},
	"autoscaling/v2/HorizontalPodAutoscaler":  &autoscalingv2.HorizontalPodAutoscaler{},
	"monitoring.coreos.com/v1/ServiceMonitor": &monitoringv1.ServiceMonitor{}, "monitoring.coreos.com/v1/PrometheusRule": &monitoringv1.PrometheusRule{},
}

// checkManifests lists what is wrong with the rendered objects; all: every
// optional part is expected.
func checkManifests(objs []any, all bool) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var deploy, dnsDeploy, apiDeploy *appsv1.Deployment
	var apiService *corev1.Service
	var job *batchv1.Job
	var agent *appsv1.StatefulSet
	var pdb *policyv1.PodDisruptionBudget
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	tipEnv := map[string]string{}
	configMaps := map[string]*corev1.ConfigMap{}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			switch {
			case strings.HasSuffix(o.Name, "-dns"):
				dnsDeploy = o
			case strings.HasSuffix(o.Name, "-api"):
				apiDeploy = o
			default:
				deploy = o
			}
		case *corev1.Service:
			if strings.HasSuffix(o.Name, "-api") {
				apiService = o
			}
		case *batchv1.Job:
			job = o
		case *appsv1.StatefulSet:
			agent = o
		case *policyv1.PodDisruptionBudget:
			pdb = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpa = o
		case *corev1.ConfigMap:
			configMaps[o.Name] = o
			if strings.HasSuffix(o.Name, "-env") {
				for k, v := range o.Data {
					tipEnv[k] = v
				}
			}
		case *corev1.Secret:
			for k, v := range o.StringData {
				tipEnv[k] = v
			}
		}
	}
	if deploy == nil || dnsDeploy == nil || apiDeploy == nil || apiService == nil || job == nil || pdb == nil {
		return []error{fmt.Errorf("want a worker Deployment, dns and api Deployments, the api's Service, a setup Job and a PodDisruptionBudget: %T", objs)}
	}
	errs = append(errs, checkAPIDeployment(apiDeploy, apiService, all)...)
	errs = append(errs, checkMonitoring(objs, all)...)
	// tip serve dns: devstack's command, its metrics address the probed port.
	d := dnsDeploy.Spec.Template.Spec.Containers[0]
	if !slices.Equal(d.Args, devstack.DNSArgs()) || len(d.Command) > 0 {
		fail("dns: args %q, want %q (what tip dev up --dns runs)", d.Args, devstack.DNSArgs())
	}
	if err := checkTipArgs(d.Args); err != nil {
		fail("dns: %v", err)
	}
	for _, e := range d.Env {
		if e.Name == "TIP_DNS_METRICS_ADDRESS" && (d.StartupProbe == nil || d.StartupProbe.HTTPGet == nil ||
			!strings.HasSuffix(e.Value, ":"+fmt.Sprint(portNamed(d.Ports, "metrics")))) {
			fail("dns: TIP_DNS_METRICS_ADDRESS %q is not the port its startup probe asks", e.Value)
		}
	}
	if all && (agent == nil || hpa == nil) {
		fail("all values: want the agent's StatefulSet and the workers' HorizontalPodAutoscaler")
	}

	// The worker: devstack's command, probes on its metrics address.
	w := deploy.Spec.Template.Spec.Containers[0]
	if !slices.Equal(w.Args, devstack.WorkerArgs()) || len(w.Command) > 0 {
		fail("worker: args %q, want %q (what tip dev up --worker runs)", w.Args, devstack.WorkerArgs())
	}
	metrics := ""
	for _, e := range w.Env {
		tipEnv[e.Name] = e.Value
		if e.Name == "TIP_WORKER_METRICS_ADDRESS" {
			metrics = e.Value
		}
	}
	var port int32
	for _, p := range w.Ports {
		if p.Name == "metrics" {
			port = p.ContainerPort
		}
	}
	if metrics != fmt.Sprintf("0.0.0.0:%d", port) {
		fail("worker: TIP_WORKER_METRICS_ADDRESS %q is not its metrics port %d on every address", metrics, port)
	}
	for name, p := range map[string]*corev1.Probe{"startup": w.StartupProbe, "readiness": w.ReadinessProbe, "liveness": w.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/metrics" || p.HTTPGet.Port.String() != "metrics" {
			fail("worker: its %s probe is not GET /metrics on the metrics port", name)
		}
	}
	if grace, err := time.ParseDuration(tipEnv["TIP_WORKER_SHUTDOWN_TIMEOUT"]); err != nil || deploy.Spec.Template.Spec.TerminationGracePeriodSeconds == nil ||
		time.Duration(*deploy.Spec.Template.Spec.TerminationGracePeriodSeconds)*time.Second <= grace {
		fail("worker: the pod's grace period does not outlast TIP_WORKER_SHUTDOWN_TIMEOUT %q", tipEnv["TIP_WORKER_SHUTDOWN_TIMEOUT"])
	}
	if !all && (deploy.Spec.Replicas == nil || *deploy.Spec.Replicas < 2) {
		fail("worker: want two or more replicas by default")
	}
	if err := checkTipArgs(w.Args); err != nil {
		fail("worker: %v", err)
	}
	if all {
		// With the chart's Secret, TIP's whole configuration is here: load it.
		if err := checkTipEnv(tipEnv); err != nil {
			fail("worker: %v", err)
		}
	} else {
		for k := range tipEnv {
			if !tipEnvNames()[k] {
				fail("%s is not one of TIP's environment variables", k)
			}
		}
	}
	catalogs := map[string]bool{}
	for _, m := range w.VolumeMounts {
		catalogs[m.MountPath] = true
	}
	for _, k := range []string{"TIP_BLACKLISTS_CATALOG", "TIP_SPAM_CATALOG"} {
		if !catalogs[filepath.Dir(tipEnv[k])] {
			fail("worker: %s %s is not in a mounted folder", k, tipEnv[k])
		}
	}
	for _, cm := range configMaps {
		if strings.HasSuffix(cm.Name, "-catalogs") && (!strings.Contains(cm.Data["sources.yaml"], "sources:") || !strings.Contains(cm.Data["spam.yaml"], "traps:") && !all) {
			fail("catalogs: the ConfigMap lacks a catalog: %v", cm.Data)
		}
	}

	// PodDisruptionBudget and HPA aim at the workers.
	if !labelsMatch(pdb.Spec.Selector.MatchLabels, deploy.Spec.Template.Labels) {
		fail("the PodDisruptionBudget selects %v, not the workers %v", pdb.Spec.Selector.MatchLabels, deploy.Spec.Template.Labels)
	}
	if hpa != nil && (hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != deploy.Name || deploy.Spec.Replicas != nil) {
		fail("the HorizontalPodAutoscaler does not own the workers' replicas")
	}

	// tip setup, as a Helm hook after install and upgrade.
	s := job.Spec.Template.Spec.Containers[0]
	if !slices.Equal(s.Args, []string{"setup"}) || job.Annotations["helm.sh/hook"] != "post-install,post-upgrade" {
		fail("setup: args %q, hook %q: want [setup] as a post-install,post-upgrade hook", s.Args, job.Annotations["helm.sh/hook"])
	}

	// The agent: devstack's command on its volume, its init a real tip command.
	if agent != nil {
		a := agent.Spec.Template.Spec.Containers[0]
		dir := ""
		for _, m := range a.VolumeMounts {
			if m.Name == "data" {
				dir = m.MountPath
			}
		}
		if !slices.Equal(a.Args, devstack.AgentArgs(dir)) {
			fail("agent: args %q, want %q (what tip dev up --lab runs, on its volume)", a.Args, devstack.AgentArgs(dir))
		}
		for _, c := range append(agent.Spec.Template.Spec.InitContainers, a) {
			if err := checkTipArgs(c.Args); err != nil {
				fail("agent %s: %v", c.Name, err)
			}
		}
	}
	return errs
}

// checkAPIDeployment: tip serve api runs devstack's command, listens and
// serves its metrics on the ports its probes and Service use, generates the
// MISP feed on a writable volume, and reads its certificate where it is
// mounted when TLS is on (all values).
func checkAPIDeployment(d *appsv1.Deployment, svc *corev1.Service, all bool) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, devstack.APIArgs()) || len(c.Command) > 0 {
		fail("api: args %q, want %q (what tip dev up --api runs)", c.Args, devstack.APIArgs())
	}
	if err := checkTipArgs(c.Args); err != nil {
		fail("api: %v", err)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if strings.HasPrefix(e.Name, "TIP_") && !tipEnvNames()[e.Name] {
			fail("api: %s is not one of TIP's environment variables", e.Name)
		}
	}
	if want := fmt.Sprintf("0.0.0.0:%d", portNamed(c.Ports, "api")); env["TIP_API_LISTEN"] != want {
		fail("api: TIP_API_LISTEN %q, want %s (its api port)", env["TIP_API_LISTEN"], want)
	}
	if want := fmt.Sprintf("0.0.0.0:%d", portNamed(c.Ports, "metrics")); env["TIP_API_METRICS_ADDRESS"] != want {
		fail("api: TIP_API_METRICS_ADDRESS %q, want %s (its metrics port)", env["TIP_API_METRICS_ADDRESS"], want)
	}
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			fail("api: no HTTP %s probe", name)
		}
	}
	if r := c.ReadinessProbe; r != nil && r.HTTPGet != nil {
		wantScheme := corev1.URISchemeHTTP
		if env["TIP_API_TLS_CERT"] != "" {
			wantScheme = corev1.URISchemeHTTPS
		}
		if r.HTTPGet.Port.String() != "api" || r.HTTPGet.Path != "/v1/openapi.json" || r.HTTPGet.Scheme != wantScheme {
			fail("api: the readiness probe asks %s %s on %s, want %s /v1/openapi.json on the api port", r.HTTPGet.Scheme, r.HTTPGet.Path, r.HTTPGet.Port.String(), wantScheme)
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	if mounts[env["TIP_API_MISP_CACHE"]] == "" {
		fail("api: TIP_API_MISP_CACHE %q is not a mounted volume (the root file system is read-only)", env["TIP_API_MISP_CACHE"])
	}
	if all {
		for _, k := range []string{"TIP_API_TLS_CERT", "TIP_API_TLS_KEY"} {
			if env[k] == "" || mounts[filepath.Dir(env[k])] == "" {
				fail("api: with api.tls.existingSecret, %s %q is not in a mounted folder", k, env[k])
			}
		}
	}
	if !labelsMatch(svc.Spec.Selector, d.Spec.Template.Labels) {
		fail("api: the Service selects %v, not the api's pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	for _, p := range svc.Spec.Ports {
		if portNamed(c.Ports, p.TargetPort.String()) == 0 {
			fail("api: the Service's port %s aims at %s, which the container lacks", p.Name, p.TargetPort.String())
		}
	}
	return errs
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// portNamed is the container port of that name, 0 when none.
func portNamed(ports []corev1.ContainerPort, name string) int32 {
	for _, p := range ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// checkMonitoring: by default the chart makes no monitoring objects (their CRDs
// may be missing); with all values, a ServiceMonitor for each Service with a
// metrics port, scraping that port, a PrometheusRule whose groups are
// deploy/prometheus/rules.yaml's, and the dashboard deploy/grafana/tip.json in
// a ConfigMap Grafana's sidecar picks up.
func checkMonitoring(objs []any, all bool) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var monitors []*monitoringv1.ServiceMonitor
	var rules []*monitoringv1.PrometheusRule
	var dashboards []*corev1.ConfigMap
	var services []*corev1.Service
	for _, o := range objs {
		switch o := o.(type) {
		case *monitoringv1.ServiceMonitor:
			monitors = append(monitors, o)
		case *monitoringv1.PrometheusRule:
			rules = append(rules, o)
		case *corev1.Service:
			services = append(services, o)
		case *corev1.ConfigMap:
			if _, ok := o.Labels["grafana_dashboard"]; ok || strings.Contains(o.Name, "dashboard") {
				dashboards = append(dashboards, o)
			}
		}
	}
	if !all {
		if len(monitors)+len(rules)+len(dashboards) > 0 {
			fail("by default: %d ServiceMonitors, %d PrometheusRules, %d dashboard ConfigMaps, want none", len(monitors), len(rules), len(dashboards))
		}
		return errs
	}

	// Each ServiceMonitor selects one Service, on a port it has; together they
	// cover every Service with a metrics port.
	covered := map[string]bool{}
	for _, m := range monitors {
		var selected []*corev1.Service
		for _, s := range services {
			if labelsMatch(m.Spec.Selector.MatchLabels, s.Labels) {
				selected = append(selected, s)
			}
		}
		if len(selected) != 1 {
			fail("ServiceMonitor %s selects %d Services, want one", m.Name, len(selected))
			continue
		}
		covered[selected[0].Name] = true
		if len(m.Spec.Endpoints) == 0 {
			fail("ServiceMonitor %s: no endpoints", m.Name)
		}
		for _, e := range m.Spec.Endpoints {
			if !slices.ContainsFunc(selected[0].Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port }) {
				fail("ServiceMonitor %s scrapes port %q, which Service %s lacks", m.Name, e.Port, selected[0].Name)
			}
			if e.Path != "/metrics" {
				fail("ServiceMonitor %s scrapes path %q, want /metrics", m.Name, e.Path)
			}
		}
		if m.Labels["release"] != "kube-prometheus-stack" {
			fail("ServiceMonitor %s: labels %v lack metrics.serviceMonitor.labels", m.Name, m.Labels)
		}
	}
	for _, s := range services {
		if slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "metrics" }) && !covered[s.Name] {
			fail("Service %s has a metrics port no ServiceMonitor scrapes", s.Name)
		}
	}

	// The PrometheusRule carries rules.yaml's groups, as they are.
	if len(rules) != 1 {
		fail("%d PrometheusRules, want one", len(rules))
	} else {
		want, err := os.ReadFile("../prometheus/rules.yaml")
		if err != nil {
			return append(errs, err)
		}
		var file struct {
			Groups []monitoringv1.RuleGroup `json:"groups"`
		}
		if err := yaml.UnmarshalStrict(want, &file); err != nil {
			fail("deploy/prometheus/rules.yaml is no PrometheusRule's groups: %v", err)
		}
		got, _ := yaml.Marshal(rules[0].Spec.Groups)
		wantGroups, _ := yaml.Marshal(file.Groups)
		if len(file.Groups) == 0 || string(got) != string(wantGroups) {
			fail("the PrometheusRule's groups differ from deploy/prometheus/rules.yaml's (run `go run ./deploy/gen`):\n%s", got)
		}
		if rules[0].Labels["release"] != "kube-prometheus-stack" {
			fail("PrometheusRule: labels %v lack metrics.prometheusRule.labels", rules[0].Labels)
		}
	}

	// The dashboard, for the sidecar.
	if len(dashboards) != 1 {
		fail("%d dashboard ConfigMaps, want one", len(dashboards))
	} else {
		d := dashboards[0]
		want, err := os.ReadFile("../grafana/tip.json")
		if err != nil {
			return append(errs, err)
		}
		if d.Labels["grafana_dashboard"] != "1" || d.Annotations["grafana_folder"] != "TIP" {
			fail("dashboard ConfigMap %s: labels %v, annotations %v: want grafana_dashboard \"1\" and the values' annotations", d.Name, d.Labels, d.Annotations)
		}
		if len(d.Data) != 1 || d.Data["tip.json"] != strings.TrimSuffix(string(want), "\n") {
			fail("dashboard ConfigMap %s: its tip.json is not deploy/grafana/tip.json (run `go run ./deploy/gen`)", d.Name)
		}
	}
	return errs
}
