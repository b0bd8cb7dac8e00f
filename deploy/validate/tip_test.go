package validate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tip-project/tip/config"
)

// tipBin is TIP's binary, built from the repository in TestMain: the commands the
// deployment files run are checked against its real command tree.
var tipBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tip-validate-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tipBin = filepath.Join(dir, "tip")
	if out, err := exec.Command("go", "-C", "../..", "build", "-o", tipBin, "./cmd/tip").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build tip: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// checkTipArgs runs `tip ARGS --help`: it fails on an unknown flag, and its usage
// line names the subcommand ARGS start with, so an unknown subcommand shows too.
func checkTipArgs(args []string) error {
	var path []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		path = append(path, a)
	}
	cmd := exec.Command(tipBin, append(slices.Clone(args), "--help")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("tip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if usage := "  tip " + strings.Join(path, " ") + " [flags]"; !strings.Contains(string(out), usage) {
		return fmt.Errorf("tip %s: not a command of tip (its help has no %q)", strings.Join(args, " "), usage)
	}
	return nil
}

// checkTipEnv loads TIP's configuration from env alone, as a container would
// (`tip config`), and refuses TIP_* variables TIP does not know and any setting
// that is the lab's (config/lab.tip.yaml), for a deployment runs on the real
// Internet.
func checkTipEnv(env map[string]string) error {
	known := tipEnvNames()
	vars := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		if strings.HasPrefix(k, "TIP_") && !known[k] {
			return fmt.Errorf("%s is not one of TIP's environment variables", k)
		}
		vars = append(vars, k+"="+v)
	}
	cmd := exec.Command(tipBin, "config")
	cmd.Env = vars
	cmd.Dir = os.TempDir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("tip config with the environment %v: %v\n%s", env, err, stderr.Bytes())
	}
	var cfg config.Config
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		return fmt.Errorf("tip config printed what it cannot read back: %v\n%s", err, out)
	}
	for _, l := range cfg.LabSettings() {
		err = errors.Join(err, fmt.Errorf("%s %s is the lab's (%s)", l.Key, l.Value, l.Why))
	}
	return err
}

// tipEnvNames are the env tags of the config package and the agent's folder.
func tipEnvNames() map[string]bool {
	names := map[string]bool{"TIP_AGENT_DIR": true, config.EnvFile: true}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Duration" {
				walk(f.Type)
			}
			if name := f.Tag.Get("env"); name != "" {
				names[name] = true
			}
		}
	}
	walk(reflect.TypeOf(config.Config{}))
	return names
}

func TestTipChecksCanFail(t *testing.T) {
	for _, args := range [][]string{{"work"}, {"worker", "--bogus"}, {"agent", "serv", "--dir", "/x"}} {
		if err := checkTipArgs(args); err == nil {
			t.Errorf("tip %q passed", args)
		}
	}
	if err := checkTipArgs([]string{"agent", "serve", "--dir", "/x"}); err != nil {
		t.Error(err)
	}
	for _, env := range []map[string]string{{"TIP_TEMPORAL_ADRESS": "x:7233"}, {"TIP_LOG_FORMAT": "xml"}, {"TIP_FLUX_TRIAGE_WAIT": "10s"},
		{"TIP_FLUX_RESOLVERS": "127.0.0.1:5354"}, {"TIP_BLACKLISTS_CATALOG": "/etc/tip/catalog/lab.yaml"}} {
		if err := checkTipEnv(env); err == nil {
			t.Errorf("environment %v passed", env)
		}
	}
}
