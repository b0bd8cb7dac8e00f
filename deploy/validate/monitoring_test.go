package validate

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// monitoringServices run only with `docker compose --profile monitoring`.
var monitoringServices = []string{"prometheus", "grafana"}

// TestComposeMonitoringProfile: Prometheus and Grafana start only with the
// profile monitoring, and no service of TIP waits for them.
func TestComposeMonitoringProfile(t *testing.T) {
	env := filepath.Join(composeDir, ".env.example")
	without, err := loadComposeProfiles(composeDir, nil, env)
	if err != nil {
		t.Fatal(err)
	}
	with, err := loadComposeProfiles(composeDir, []string{"monitoring"}, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range monitoringServices {
		if _, ok := without.Services[name]; ok {
			t.Errorf("%s runs without --profile monitoring", name)
		}
		if _, ok := without.DisabledServices[name]; !ok {
			t.Errorf("%s is not a service of compose.yaml", name)
		}
		if _, ok := with.Services[name]; !ok {
			t.Errorf("%s does not run with --profile monitoring", name)
		}
	}
	for name, s := range without.Services {
		for on := range s.DependsOn {
			if slices.Contains(monitoringServices, on) {
				t.Errorf("%s depends on %s, which runs only with --profile monitoring", name, on)
			}
		}
	}
}

// TestComposeNeedsGrafanasPassword: Grafana never starts with a default
// administrator password; compose refuses to load without GRAFANA_ADMIN_PASSWORD
// (compose interpolates every service, so an .env written before the profile
// existed needs it too).
func TestComposeNeedsGrafanasPassword(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(composeDir, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if !strings.HasPrefix(line, "GRAFANA_ADMIN_PASSWORD=") {
			kept = append(kept, line)
		}
	}
	envFile := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(envFile, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadComposeProfiles(composeDir, []string{"monitoring"}, envFile)
	if err == nil || !strings.Contains(err.Error(), "GRAFANA_ADMIN_PASSWORD") {
		t.Fatalf("loaded without GRAFANA_ADMIN_PASSWORD: %v", err)
	}
}

// checkComposeMonitoring checks the profile monitoring of a project loaded with
// it: every file the two services mount exists; Prometheus's configuration
// loads with promtool from the files as the container sees them (its rules
// found) and scrapes every replica of tip-api, tip-dns and tip-worker on the
// port each one's metrics address sets; Grafana's data source is that
// Prometheus, and its dashboard provider reads the folder tip.json is mounted in.
func checkComposeMonitoring(p *types.Project, dir string) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, name := range monitoringServices {
		s, ok := p.Services[name]
		if !ok {
			fail("service %s is missing", name)
			continue
		}
		if !slices.Equal(s.Profiles, []string{"monitoring"}) {
			fail("%s: profiles %q, want [monitoring]: it is not part of TIP's deployment", name, s.Profiles)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					fail("%s: mounts %s, which does not exist", name, v.Source)
				}
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}

	// Prometheus: its configuration and rules, as mounted.
	prom := p.Services["prometheus"]
	configFile := flagValue(prom.Command, "--config.file")
	configSource := sourceOf(prom, configFile)
	if configFile == "" || configSource == "" {
		return append(errs, fmt.Errorf("prometheus: --config.file %q is not a file it mounts", configFile))
	}
	if err := promtoolCheckConfig(prom, configFile); err != nil {
		fail("prometheus: %v", err)
	}
	var cfg struct {
		Global struct {
			ScrapeInterval string `json:"scrape_interval"`
		} `json:"global"`
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName      string `json:"job_name"`
			DNSSDConfigs []struct {
				Names []string `json:"names"`
				Type  string   `json:"type"`
				Port  int      `json:"port"`
			} `json:"dns_sd_configs"`
		} `json:"scrape_configs"`
	}
	if err := readYAML(configSource, &cfg); err != nil {
		return append(errs, err)
	}
	for _, r := range cfg.RuleFiles {
		if filepath.IsAbs(r) {
			fail("prometheus: rule file %s: want a path beside the configuration, so the check above finds it", r)
		}
	}
	for svc, variable := range map[string]string{"tip-api": "TIP_API_METRICS_ADDRESS", "tip-dns": "TIP_DNS_METRICS_ADDRESS", "tip-worker": "TIP_WORKER_METRICS_ADDRESS"} {
		_, port, err := net.SplitHostPort(env(p.Services[svc])[variable])
		if err != nil {
			fail("%s: %s: %v", svc, variable, err)
			continue
		}
		found := false
		for _, sc := range cfg.ScrapeConfigs {
			for _, d := range sc.DNSSDConfigs {
				if !slices.Contains(d.Names, svc) {
					continue
				}
				found = true
				if fmt.Sprint(d.Port) != port || d.Type != "A" {
					fail("prometheus: job %s scrapes %s on port %d (DNS %s), but its %s is port %s (want its A records: every replica)", sc.JobName, svc, d.Port, d.Type, variable, port)
				}
			}
		}
		if !found {
			fail("prometheus: no job scrapes %s", svc)
		}
	}

	// Grafana: the data source and the dashboard.
	graf := p.Services["grafana"]
	var ds struct {
		Datasources []struct {
			Name, Type, URL, UID string
			IsDefault            bool `json:"isDefault"`
			JSONData             struct {
				TimeInterval string `json:"timeInterval"`
			} `json:"jsonData"`
		} `json:"datasources"`
	}
	var providers struct {
		Providers []struct {
			Name, Type string
			Options    struct{ Path string } `json:"options"`
		} `json:"providers"`
	}
	dsDir, dashDir := sourceOf(graf, "/etc/grafana/provisioning/datasources"), sourceOf(graf, "/etc/grafana/provisioning/dashboards")
	if dsDir == "" || dashDir == "" {
		return append(errs, fmt.Errorf("grafana: mounts no provisioning of data sources (%q) or dashboards (%q)", dsDir, dashDir))
	}
	if err := readYAML(filepath.Join(dsDir, "prometheus.yaml"), &ds); err != nil {
		return append(errs, err)
	}
	if err := readYAML(filepath.Join(dashDir, "tip.yaml"), &providers); err != nil {
		return append(errs, err)
	}
	promURL := "http://prometheus:" + listenPort(prom)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != promURL || !ds.Datasources[0].IsDefault {
		fail("grafana: the data source is %+v, want the default one, of type prometheus at %s (the prometheus service)", ds.Datasources, promURL)
	} else if ds.Datasources[0].JSONData.TimeInterval != cfg.Global.ScrapeInterval {
		fail("grafana: the data source's timeInterval %s is not Prometheus's scrape_interval %s", ds.Datasources[0].JSONData.TimeInterval, cfg.Global.ScrapeInterval)
	}
	dashboard := filepath.Join(dir, "../grafana/tip.json")
	target := mountOf(graf, dashboard)
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" || target == "" || filepath.Dir(target) != providers.Providers[0].Options.Path {
		fail("grafana: the dashboard provider %+v does not read the folder deploy/grafana/tip.json is mounted in (%q)", providers.Providers, target)
	}
	if home := env(graf)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != target {
		fail("grafana: the home dashboard %q is not where tip.json is mounted (%q)", home, target)
	}
	var d struct{ UID string }
	if data, err := os.ReadFile(dashboard); err != nil || json.Unmarshal(data, &d) != nil || d.UID == "" {
		fail("grafana: %s is no dashboard with a uid", dashboard)
	}
	return errs
}

// promtoolCheckConfig lays the service's bind mounts out in a folder as the
// container sees them and runs `promtool check config` on the configuration,
// which also loads the rule files it names.
func promtoolCheckConfig(s types.ServiceConfig, configFile string) error {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		promtool = "/usr/bin/promtool"
	}
	if _, err := os.Stat(promtool); err != nil {
		if testing.Short() {
			return nil
		}
		return fmt.Errorf("promtool is not installed: run deploy/local/tools.sh (make tools), which installs Debian's prometheus package")
	}
	root, err := os.MkdirTemp("", "tip-prometheus-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		to := filepath.Join(root, v.Target)
		if fi, err := os.Stat(v.Source); err == nil && fi.IsDir() {
			err = os.CopyFS(to, os.DirFS(v.Source))
		} else if data, err := os.ReadFile(v.Source); err == nil {
			if err = os.MkdirAll(filepath.Dir(to), 0o755); err == nil {
				err = os.WriteFile(to, data, 0o644)
			}
		}
		if err != nil {
			return err
		}
	}
	if out, err := exec.Command(promtool, "check", "config", filepath.Join(root, configFile)).CombinedOutput(); err != nil {
		return fmt.Errorf("promtool check config %s, with the files the service mounts: %v\n%s", configFile, err, out)
	}
	return nil
}

// flagValue is the value of --name=VALUE or --name VALUE in args, or "".
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// sourceOf is what service s mounts at target, or "".
func sourceOf(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v.Source
		}
	}
	return ""
}

// listenPort is the port Prometheus listens on: --web.listen-address's, 9090 by default.
func listenPort(s types.ServiceConfig) string {
	if _, port, err := net.SplitHostPort(flagValue(s.Command, "--web.listen-address")); err == nil {
		return port
	}
	return "9090"
}

func readYAML(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}
