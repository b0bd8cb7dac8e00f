package validate

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/tip-project/tip/internal/devstack"
)

// TestTemporalChartValues: the values for Temporal's chart run the server and
// Web UI versions the local stack builds, on PostgreSQL with devstack's
// databases and dynamic configuration. (The chart itself cannot be fetched here.)
func TestTemporalChartValues(t *testing.T) {
	data, err := os.ReadFile("../helm/temporal-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Server struct {
			Image  struct{ Repository, Tag string }
			Config struct {
				NumHistoryShards int `json:"numHistoryShards"`
				Persistence      struct {
					DefaultStore string `json:"defaultStore"`
					Default      struct {
						Driver string
						SQL    struct{ Driver, Database string } `json:"sql"`
					}
					Visibility struct {
						Driver string
						SQL    struct{ Driver, Database string } `json:"sql"`
					}
				}
			}
			DynamicConfig any `json:"dynamicConfig"`
		}
		Admintools struct{ Image struct{ Tag string } }
		Web        struct {
			Image struct{ Repository, Tag string }
		}
	}
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	server, ui := toolVersion("temporal-server"), toolVersion("temporal-ui-server")
	p := v.Server.Config.Persistence
	for _, c := range []struct{ what, got, want string }{
		{"server image", v.Server.Image.Repository + ":" + v.Server.Image.Tag, "temporalio/server:" + server},
		{"web image", v.Web.Image.Repository + ":" + v.Web.Image.Tag, "temporalio/ui:" + ui},
		{"persistence", p.Default.Driver + " " + p.Default.SQL.Driver + " " + p.Default.SQL.Database, "sql postgres12 " + devstack.TemporalDB},
		{"visibility", p.Visibility.Driver + " " + p.Visibility.SQL.Driver + " " + p.Visibility.SQL.Database, "sql postgres12 " + devstack.TemporalVisibilityDB},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.what, c.got, c.want)
		}
	}
	if !strings.HasPrefix(v.Admintools.Image.Tag, server+"-") {
		t.Errorf("admin tools %s are not server %s's", v.Admintools.Image.Tag, server)
	}
	var dyn any
	if err := yaml.Unmarshal([]byte(devstack.DynamicConfig), &dyn); err != nil {
		t.Fatal(err)
	}
	if got, want := mustJSON(t, v.Server.DynamicConfig), mustJSON(t, dyn); got != want {
		t.Errorf("dynamic config %s, devstack's %s", got, want)
	}
	if v.Server.Config.NumHistoryShards < 4 {
		t.Errorf("numHistoryShards %d", v.Server.Config.NumHistoryShards)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDockerfile: the image builds cmd/tip with go.mod's Go, runs tip, and
// carries busybox's wget, which the compose healthchecks of the workers use.
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("../docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	for _, want := range []string{
		"ARG GO_VERSION=" + string(goVersion[1]) + "\n",
		"FROM golang:${GO_VERSION} AS build\n",
		" ./cmd/tip\n",
		"FROM alpine:",
		"COPY config/ /etc/tip/\n",
		`ENTRYPOINT ["tip"]`,
		"USER tip\n",
	} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile: no %q", want)
		}
	}
	for _, path := range []string{"../../cmd/tip", "../../config/sources.yaml", "../../config/spam.yaml"} {
		if _, err := os.Stat(path); err != nil {
			t.Error(err)
		}
	}
}

// TestSystemdUnits: each unit of deploy/systemd runs devstack's command of
// its server with real arguments of tip, sets only TIP's variables, and runs
// as a dynamic user with no capability but binding a low port. A unit that
// drifted (a wrong command, an unknown variable) fails.
func TestSystemdUnits(t *testing.T) {
	units := map[string][]string{"tip-serve-dns.service": devstack.DNSArgs(), "tip-serve-api.service": devstack.APIArgs()}
	for name, args := range units {
		data, err := os.ReadFile("../systemd/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkUnit(string(data), args); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	api, _ := os.ReadFile("../systemd/tip-serve-api.service")
	for _, broken := range []struct{ old, new string }{
		{"ExecStart=/usr/local/bin/tip serve api", "ExecStart=/usr/local/bin/tip serve http"},
		{"Environment=TIP_API_MISP_CACHE=", "Environment=TIP_API_MISP_DIR="},
		{"DynamicUser=yes", "DynamicUser=no"},
	} {
		if !strings.Contains(string(api), broken.old) {
			t.Fatalf("tip-serve-api.service has no %q", broken.old)
		}
		if checkUnit(strings.Replace(string(api), broken.old, broken.new, 1), devstack.APIArgs()) == nil {
			t.Errorf("the checks pass a unit with %q", broken.new)
		}
	}
}

// checkUnit checks a systemd unit of a server run as `tip ARGS`.
func checkUnit(unit string, args []string) error {
	keys := map[string][]string{}
	for line := range strings.SplitSeq(unit, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	exec := strings.Fields(strings.Join(keys["ExecStart"], " "))
	if len(exec) == 0 || exec[0] != "/usr/local/bin/tip" || !slices.Equal(exec[1:], args) {
		return fmt.Errorf("ExecStart %q, want /usr/local/bin/tip %s", exec, strings.Join(args, " "))
	}
	if err := checkTipArgs(exec[1:]); err != nil {
		return err
	}
	known := tipEnvNames()
	for _, env := range keys["Environment"] {
		for _, kv := range strings.Fields(env) {
			if k, _, _ := strings.Cut(kv, "="); !known[k] {
				return fmt.Errorf("Environment sets %s, which is not one of TIP's variables", k)
			}
		}
	}
	for k, want := range map[string]string{"DynamicUser": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE", "ProtectSystem": "strict"} {
		if got := strings.Join(keys[k], " "); got != want {
			return fmt.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	return nil
}
