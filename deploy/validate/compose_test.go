package validate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/tip-project/tip/internal/devstack"
)

const composeDir = "../compose"

// loadCompose loads compose.yaml with every profile, as `docker compose
// --profile agent --profile monitoring config` does: the compose
// specification's schema, then interpolation from the env files only (not this
// process's environment).
func loadCompose(dir string, envFiles ...string) (*types.Project, error) {
	return loadComposeProfiles(dir, []string{"agent", "monitoring"}, envFiles...)
}

func loadComposeProfiles(dir string, profiles []string, envFiles ...string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
		cli.WithWorkingDirectory(dir), cli.WithEnvFiles(envFiles...), cli.WithDotEnv,
		cli.WithProfiles(profiles))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// TestComposeFile: compose.yaml loads with .env.example, and runs what the
// production-like stack runs, in the right order.
func TestComposeFile(t *testing.T) {
	p, err := loadCompose(composeDir, filepath.Join(composeDir, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkCompose(p, composeDir) {
		t.Error(err)
	}
}

// TestComposeNeedsItsSecrets: without an env file the passwords are missing,
// and compose refuses to start rather than run with empty ones.
func TestComposeNeedsItsSecrets(t *testing.T) {
	_, err := loadCompose(composeDir)
	if err == nil || !strings.Contains(err.Error(), "POSTGRES_PASSWORD") {
		t.Fatalf("loaded without POSTGRES_PASSWORD: %v", err)
	}
}

// TestComposeRejectsBrokenCopies: the checks fail on a copy with an unknown
// field, a wrong worker command, a schema script that drifted, or a dependency
// on a job that is not waited for.
func TestComposeRejectsBrokenCopies(t *testing.T) {
	for _, c := range []struct {
		name, file, old, new, want string
		loadFails                  bool
	}{
		{"unknown field", "compose.yaml", "    command: [\"worker\"]\n", "    command: [\"worker\"]\n    replica_count: 2\n", "replica_count", true},
		{"wrong worker command", "compose.yaml", `command: ["worker"]`, `command: ["work"]`, "tip-worker", false},
		{"wrong api command", "compose.yaml", `command: ["serve", "api"]`, `command: ["serve", "http"]`, "tip-api", false},
		{"api on another port", "compose.yaml", "TIP_API_LISTEN: 0.0.0.0:8470", "TIP_API_LISTEN: 0.0.0.0:8471", "tip-api: TIP_API_LISTEN port 8471", false},
		{"wrong server arguments", "compose.yaml", `"--env", "tip"`, `"--env", "docker"`, "temporal-server", false},
		{"schema step changed", "temporal/schema.sh", "--schema-name postgresql/v12/visibility\n", "--schema-name postgresql/v12/temporal\n", "schema", false},
		{"setup not awaited", "compose.yaml", "      tip-setup:\n        condition: service_completed_successfully", "      tip-setup:\n        condition: service_started", "tip-worker: depends on tip-setup", false},
		{"unknown TIP variable", "compose.yaml", "TIP_S3_REGION:", "TIP_S3_REGOIN:", "TIP_S3_REGOIN", false},
		{"scraping the api on another port", "prometheus.yml", "port: 9470", "port: 9471", "tip-api", false},
		{"rules mounted elsewhere", "compose.yaml", ":/etc/prometheus/rules.yaml:ro", ":/etc/prometheus/alerts.yaml:ro", "rules.yaml", false},
		{"monitoring without its profile", "compose.yaml", "    image: prom/prometheus:v2.53.1\n    profiles: [monitoring]\n", "    image: prom/prometheus:v2.53.1\n", "prometheus: profiles", false},
		{"data source elsewhere", "../grafana/provisioning/datasources/prometheus.yaml", "url: http://prometheus:9090", "url: http://prometheus:9091", "data source", false},
		{"dashboard outside the provider's folder", "compose.yaml", ":/etc/grafana/dashboards/tip/tip.json:ro", ":/etc/grafana/dashboards/tip.json:ro", "dashboard", false},
		{"the lab's triage wait", "compose.yaml", "  TIP_LOG_FORMAT: json\n", "  TIP_LOG_FORMAT: json\n  TIP_FLUX_TRIAGE_WAIT: 10s\n", "flux.triage_wait 10s is the lab's", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyCompose(t)
			breakFile(t, filepath.Join(dir, c.file), c.old, c.new)
			p, err := loadCompose(dir, filepath.Join(dir, ".env.example"))
			if c.loadFails {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("loaded: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			errs := errors.Join(checkCompose(p, dir)...)
			if errs == nil || !strings.Contains(errs.Error(), c.want) {
				t.Fatalf("the checks did not catch it (want an error about %q): %v", c.want, errs)
			}
		})
	}
}

// copyCompose copies deploy/compose and the catalogs it mounts into a
// repository-like folder and returns the copy of deploy/compose.
func copyCompose(t *testing.T) string {
	root := t.TempDir()
	for _, f := range []string{"deploy/compose/compose.yaml", "deploy/compose/.env.example", "deploy/compose/temporal/schema.sh",
		"deploy/compose/temporal/config/tip.yaml", "deploy/compose/temporal/config/dynamic.yaml", "config/sources.yaml", "config/spam.yaml",
		"deploy/compose/prometheus.yml", "deploy/prometheus/rules.yaml", "deploy/grafana/tip.json",
		"deploy/grafana/provisioning/datasources/prometheus.yaml", "deploy/grafana/provisioning/dashboards/tip.yaml"} {
		data, err := os.ReadFile(filepath.Join("../..", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(root, "deploy/compose")
}

// checkCompose lists what is wrong with a loaded compose project whose files
// are in dir.
func checkCompose(p *types.Project, dir string) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	dir, _ = filepath.Abs(dir)
	svc := func(name string) types.ServiceConfig {
		s, ok := p.Services[name]
		if !ok {
			fail("service %s is missing", name)
		}
		return s
	}
	for _, name := range []string{"postgres", "temporal-schema", "temporal", "temporal-ui", "minio", "tip-setup", "tip-worker", "tip-dns", "tip-api", "tip-agent-init", "tip-agent"} {
		svc(name)
	}
	if len(errs) > 0 {
		return errs
	}

	// The Temporal images: the versions the local stack builds (deploy/local/tools.sh).
	server, ui := toolVersion("temporal-server"), toolVersion("temporal-ui-server")
	if want := "temporalio/server:" + server; p.Services["temporal"].Image != want {
		fail("temporal: image %s, want %s (the server of deploy/local/tools.sh)", p.Services["temporal"].Image, want)
	}
	if want := "temporalio/ui:" + ui; p.Services["temporal-ui"].Image != want {
		fail("temporal-ui: image %s, want %s", p.Services["temporal-ui"].Image, want)
	}
	if img := p.Services["temporal-schema"].Image; !strings.HasPrefix(img, "temporalio/admin-tools:"+server+"-") {
		fail("temporal-schema: image %s is not the admin tools of server %s", img, server)
	}

	// The server: devstack's arguments, with its configuration where --root says.
	temporal := p.Services["temporal"]
	confDir := mountOf(temporal, filepath.Join(dir, "temporal/config"))
	if confDir == "" {
		fail("temporal: temporal/config is not mounted")
	}
	if want := append([]string{"temporal-server"}, devstack.ServerArgs(filepath.Dir(confDir))...); !slices.Equal(temporal.Command, want) {
		fail("temporal: command %q, want devstack's temporal-server arguments %q", temporal.Command, want)
	}
	if !strings.Contains(strings.Join(temporal.Entrypoint, " "), "TEMPORAL_BROADCAST_ADDRESS") {
		fail("temporal: the entrypoint does not set TEMPORAL_BROADCAST_ADDRESS")
	}
	conf, err := os.ReadFile(filepath.Join(dir, "temporal/config/tip.yaml"))
	if err != nil {
		fail("temporal: %v", err)
	}
	for _, m := range regexp.MustCompile(`env "([A-Z_]+)"`).FindAllStringSubmatch(string(conf), -1) {
		if _, ok := temporal.Environment[m[1]]; !ok && m[1] != "TEMPORAL_BROADCAST_ADDRESS" {
			fail("temporal: its configuration reads %s, which the service does not set", m[1])
		}
	}

	// The schema job: the generated script, whose steps are devstack's.
	schema := p.Services["temporal-schema"]
	script := mountOf(schema, filepath.Join(dir, "temporal/schema.sh"))
	if want := []string{"sh", script}; script == "" || !slices.Equal(schema.Entrypoint, want) {
		fail("temporal-schema: entrypoint %q, want %q (temporal/schema.sh mounted)", schema.Entrypoint, want)
	}
	errs = append(errs, checkSchemaScript(filepath.Join(dir, "temporal/schema.sh"), env(schema))...)
	pg := env(p.Services["postgres"])
	for _, s := range []types.ServiceConfig{schema, temporal} {
		e := env(s)
		if e["POSTGRES_HOST"] != "postgres" || e["POSTGRES_PORT"] != "5432" || e["POSTGRES_USER"] != pg["POSTGRES_USER"] || e["POSTGRES_PASSWORD"] != pg["POSTGRES_PASSWORD"] {
			fail("%s: its PostgreSQL settings are not the postgres service's", s.Name)
		}
	}

	// TIP's commands: the production-like stack's, and real commands of tip.
	if c := p.Services["tip-worker"].Command; !slices.Equal(c, devstack.WorkerArgs()) {
		fail("tip-worker: command %q, want %q (what tip dev up --worker runs)", c, devstack.WorkerArgs())
	}
	if c := p.Services["tip-dns"].Command; !slices.Equal(c, devstack.DNSArgs()) {
		fail("tip-dns: command %q, want %q (what tip dev up --dns runs)", c, devstack.DNSArgs())
	}
	if c := p.Services["tip-api"].Command; !slices.Equal(c, devstack.APIArgs()) {
		fail("tip-api: command %q, want %q (what tip dev up --api runs)", c, devstack.APIArgs())
	}
	errs = append(errs, checkComposeAPI(p.Services["tip-api"])...)
	if c := p.Services["tip-setup"].Command; !slices.Equal(c, []string{"setup"}) {
		fail("tip-setup: command %q, want [setup]", c)
	}
	agentDir := mountOf(p.Services["tip-agent"], "agent-data")
	if c := p.Services["tip-agent"].Command; !slices.Equal(c, devstack.AgentArgs(agentDir)) {
		fail("tip-agent: command %q, want %q (what tip dev up --lab runs, on its volume)", c, devstack.AgentArgs(agentDir))
	}
	for _, name := range []string{"tip-setup", "tip-worker", "tip-dns", "tip-api", "tip-agent-init", "tip-agent"} {
		if err := checkTipArgs(p.Services[name].Command); err != nil {
			fail("%s: %v", name, err)
		}
	}
	for _, name := range []string{"tip-setup", "tip-worker", "tip-dns", "tip-api"} {
		if err := checkTipEnv(env(p.Services[name])); err != nil {
			fail("%s: %v", name, err)
		}
		if dsn := env(p.Services[name])["TIP_POSTGRES_DSN"]; !strings.Contains(dsn, ":"+pg["POSTGRES_PASSWORD"]+"@postgres:5432/"+pg["POSTGRES_DB"]+"?") {
			fail("%s: TIP_POSTGRES_DSN %q is not the postgres service's database", name, dsn)
		}
	}
	if w := p.Services["tip-worker"]; w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas < 2 || w.ContainerName != "" || len(w.Ports) > 0 {
		fail("tip-worker: want two or more replicas by default, and no container name or host port (they would stop --scale)")
	}

	// Order: each waits for what it needs, healthy or completed.
	for _, d := range []struct{ svc, on, cond string }{
		{"temporal-schema", "postgres", types.ServiceConditionHealthy},
		{"temporal", "temporal-schema", types.ServiceConditionCompletedSuccessfully},
		{"temporal-ui", "temporal", types.ServiceConditionHealthy},
		{"tip-setup", "postgres", types.ServiceConditionHealthy},
		{"tip-setup", "minio", types.ServiceConditionHealthy},
		{"tip-setup", "temporal", types.ServiceConditionHealthy},
		{"tip-worker", "tip-setup", types.ServiceConditionCompletedSuccessfully},
		{"tip-dns", "tip-setup", types.ServiceConditionCompletedSuccessfully},
		{"tip-api", "tip-setup", types.ServiceConditionCompletedSuccessfully},
		{"tip-agent", "tip-agent-init", types.ServiceConditionCompletedSuccessfully},
	} {
		if got := p.Services[d.svc].DependsOn[d.on].Condition; got != d.cond {
			fail("%s: depends on %s with condition %q, want %s", d.svc, d.on, got, d.cond)
		}
	}
	for name, s := range p.Services {
		for on, dep := range s.DependsOn {
			target := p.Services[on]
			switch dep.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0 {
					fail("%s: waits for %s to be healthy, which has no healthcheck", name, on)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if target.Restart != "" && target.Restart != types.RestartPolicyNo {
					fail("%s: waits for %s to complete, which restarts (%s)", name, on, target.Restart)
				}
			}
		}
	}
	for name, c := range p.Configs {
		if _, err := os.Stat(c.File); err != nil {
			fail("config %s: %v", name, err)
		}
	}
	return append(errs, checkComposeMonitoring(p, dir)...)
}

// checkComposeAPI checks the API's service: it listens on the port it
// publishes and its healthcheck asks, and serves its metrics.
func checkComposeAPI(s types.ServiceConfig) []error {
	var errs []error
	e := env(s)
	_, port, err := net.SplitHostPort(e["TIP_API_LISTEN"])
	if err != nil || !strings.HasPrefix(e["TIP_API_LISTEN"], "0.0.0.0:") {
		errs = append(errs, fmt.Errorf("tip-api: TIP_API_LISTEN %q: want every address of the container", e["TIP_API_LISTEN"]))
	}
	published := false
	for _, p := range s.Ports {
		published = published || fmt.Sprint(p.Target) == port
	}
	if !published {
		errs = append(errs, fmt.Errorf("tip-api: TIP_API_LISTEN port %s is not published", port))
	}
	if s.HealthCheck == nil || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), "127.0.0.1:"+port+"/") {
		errs = append(errs, fmt.Errorf("tip-api: the healthcheck does not ask the API's port %s", port))
	}
	if e["TIP_API_METRICS_ADDRESS"] == "" {
		errs = append(errs, errors.New("tip-api: no TIP_API_METRICS_ADDRESS"))
	}
	return errs
}

// mountOf is where service s mounts source (a host path or a volume's name), or "".
func mountOf(s types.ServiceConfig, source string) string {
	for _, v := range s.Volumes {
		if v.Source == source {
			return v.Target
		}
	}
	return ""
}

func env(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// checkSchemaScript reads the generated schema script's temporal-sql-tool runs
// with the job's environment and compares them with devstack's SchemaSteps for it.
func checkSchemaScript(path string, env map[string]string) []error {
	data, err := os.ReadFile(path)
	if err != nil {
		return []error{err}
	}
	var got []devstack.SchemaStep
	for line := range strings.SplitSeq(string(data), "\n") {
		words := strings.Fields(line)
		if len(words) < 2 || words[0] != "run" {
			continue
		}
		st := devstack.SchemaStep{OKIfExists: words[1] == "yes"}
		for _, w := range words[2:] {
			if v, ok := strings.CutPrefix(strings.Trim(w, `"`), "$"); ok {
				w = env[v]
			}
			st.Args = append(st.Args, w)
		}
		if i := slices.Index(st.Args, "--database"); i >= 0 && i+1 < len(st.Args) {
			st.Database = st.Args[i+1]
		}
		got = append(got, st)
	}
	want := devstack.SchemaSteps(devstack.SchemaParams{Host: env["POSTGRES_HOST"], Port: env["POSTGRES_PORT"], User: env["POSTGRES_USER"], Password: env["POSTGRES_PASSWORD"]})
	if !slices.EqualFunc(got, want, func(a, b devstack.SchemaStep) bool {
		return a.Database == b.Database && a.OKIfExists == b.OKIfExists && slices.Equal(a.Args, b.Args)
	}) {
		return []error{fmt.Errorf("temporal-schema: the schema script runs %+v, devstack's steps are %+v", got, want)}
	}
	return nil
}

// toolVersion is the version deploy/local/tools.sh pins for a tool, without its v.
func toolVersion(name string) string {
	data, err := os.ReadFile("../local/tools.sh")
	if err != nil {
		return "(" + err.Error() + ")"
	}
	m := regexp.MustCompile(`"` + regexp.QuoteMeta(name) + ` \S+ v(\S+)"`).FindSubmatch(data)
	if m == nil {
		return "(not in tools.sh)"
	}
	return string(m[1])
}

// breakFile replaces the first old in a copied file with new, failing when the
// file has no old (the negative test would then prove nothing).
func breakFile(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s has no %q", filepath.Base(path), old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}
