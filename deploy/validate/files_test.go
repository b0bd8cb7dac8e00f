package validate

import (
	"os"
	"regexp"
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
