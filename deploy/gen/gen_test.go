package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/tip-project/tip/internal/devstack"
)

// TestGeneratedFilesAreCurrent: every file gen writes is committed as gen writes
// it now, so a change to internal/devstack's builders reaches deploy/ or fails
// here. Run `go run ./deploy/gen` from the repository's root to update them.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	root = "../.."
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v (run `go run ./deploy/gen`)", path, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what `go run ./deploy/gen` writes now: run it and commit the result", path)
		}
	}
}

// TestServerConfigRendersAsDevstacks: the generated server configuration, once
// the server has filled in its env calls, is the configuration devstack builds
// for the same values.
func TestServerConfigRendersAsDevstacks(t *testing.T) {
	root = "../.."
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"POSTGRES_HOST": "postgres", "POSTGRES_PORT": "5432", "POSTGRES_USER": "tip",
		"POSTGRES_PASSWORD": "s3cret", "TEMPORAL_BROADCAST_ADDRESS": "172.18.0.5"}
	generated := string(files["deploy/compose/temporal/config/tip.yaml"])
	if !strings.Contains(generated[:min(len(generated), 1024)], "enable-template") {
		t.Fatal("the server renders the file only with enable-template in a comment of its first kilobyte")
	}
	// The server's loader: text/template with sprig's functions, of which the file uses env.
	tpl, err := template.New("tip.yaml").Funcs(template.FuncMap{"env": func(k string) string { return env[k] }}).Parse(generated)
	if err != nil {
		t.Fatal(err)
	}
	var rendered bytes.Buffer
	if err := tpl.Execute(&rendered, nil); err != nil {
		t.Fatal(err)
	}
	local := devstack.Local("", "")
	if err := local.Production(); err != nil {
		t.Fatal(err)
	}
	want, err := devstack.ServerConfig(devstack.ServerConfigParams{
		Comment: header + "\n# enable-template: the server fills in the env calls from its environment at start.",
		BindIP:  "0.0.0.0", BroadcastAddress: "172.18.0.5", FrontendHost: "172.18.0.5",
		Postgres: "postgres:5432", PGUser: "tip", PGPassword: "s3cret",
		FrontendPort: 7233, FrontendHTTPPort: 7243, MetricsPort: 7244, Ports: local.Server,
		DynamicConfig: "/etc/temporal/config/dynamic.yaml",
	})
	if err != nil {
		t.Fatal(err)
	}
	if rendered.String() != string(want) {
		t.Fatalf("rendered:\n%s\nwant:\n%s", rendered.String(), want)
	}
}

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{
		"$POSTGRES_HOST": `"$POSTGRES_HOST"`, "postgresql/v12/temporal": "postgresql/v12/temporal",
		"0.0": "0.0", "p w": "'p w'", "it's": `'it'\''s'`, "$(id)": `'$(id)'`,
	} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}
