package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/starter"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func runTip(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestHelpListsEveryCommandWithADescription(t *testing.T) {
	t.Chdir(t.TempDir())
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Short == "" {
			t.Errorf("command %q has no one-line description", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
	out, err := runTip(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"worker", "dev", "doctor", "migrate", "setup", "version", "config"} {
		if !strings.Contains(out, "  "+name+" ") {
			t.Errorf("tip --help does not list %s:\n%s", name, out)
		}
	}
	out, err = runTip(t, "version")
	if err != nil || !strings.HasPrefix(out, "tip ") {
		t.Fatalf("tip version = %q, %v", out, err)
	}
}

func setEnv(t *testing.T, cfg config.Config) {
	t.Chdir(t.TempDir())
	t.Setenv("TIP_TEMPORAL_ADDRESS", cfg.Temporal.Address)
	t.Setenv("TIP_TEMPORAL_NAMESPACE", cfg.Temporal.Namespace)
	t.Setenv("TIP_TEMPORAL_TASK_QUEUE", cfg.Temporal.TaskQueue)
	t.Setenv("TIP_POSTGRES_DSN", cfg.Postgres.DSN)
	t.Setenv("TIP_S3_ENDPOINT", cfg.S3.Endpoint)
	t.Setenv("TIP_S3_ACCESS_KEY", cfg.S3.AccessKey)
	t.Setenv("TIP_S3_SECRET_KEY", cfg.S3.SecretKey)
	t.Setenv("TIP_S3_BUCKET", cfg.S3.Bucket)
	t.Setenv("TIP_LOG_LEVEL", "error")
}

func TestDoctorOnAHealthyStackWarnsOnlyAboutTheMissingWorker(t *testing.T) {
	cfg := testenv.NewBucket(t, testenv.Config(t))
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	setEnv(t, cfg)
	out, err := runTip(t, "doctor")
	if err == nil {
		t.Fatalf("doctor passed before setup:\n%s", out)
	}
	if !strings.Contains(out, "run `tip migrate`") || !strings.Contains(out, "has no bucket") {
		t.Errorf("doctor before setup does not say how to fix it:\n%s", out)
	}
	if err := starter.Setup(context.Background(), cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	out, err = runTip(t, "doctor")
	if err != nil {
		t.Fatalf("doctor failed on a set-up stack: %v\n%s", err, out)
	}
	if strings.Contains(out, "FAIL") || !strings.Contains(out, "[warn] worker") || !strings.Contains(out, "tip worker") {
		t.Fatalf("doctor output:\n%s", out)
	}
}

func TestDoctorNamesEachBrokenServiceAndTheFix(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = strings.Replace(cfg.Postgres.DSN, "tip:tip@", "tip:wrong@", 1)
	cfg.S3.SecretKey = "wrong-secret"
	cfg.Temporal.Namespace = "absent"
	setEnv(t, cfg)
	out, err := runTip(t, "doctor")
	var exit exitError
	if !errors.As(err, &exit) || exit != 1 {
		t.Fatalf("doctor exit = %v, want status 1\n%s", err, out)
	}
	for _, want := range []string{
		`[FAIL] postgres  postgres at 127.0.0.1:`, `rejected user "tip"`,
		"[FAIL] s3", "rejected the credentials",
		"[FAIL] temporal", `no namespace "absent"`, "tip setup",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "wrong") {
		t.Errorf("doctor output leaks a password:\n%s", out)
	}
}

func TestMigrateCommand(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	setEnv(t, cfg)
	if out, err := runTip(t, "migrate", "--status"); err == nil || !strings.Contains(out, "version 0") {
		t.Fatalf("migrate --status on an empty database = %v\n%s", err, out)
	}
	out, err := runTip(t, "migrate")
	if err != nil || !strings.Contains(out, "applied 0001_blobs") {
		t.Fatalf("migrate = %v\n%s", err, out)
	}
	out, err = runTip(t, "migrate")
	if err != nil || !strings.Contains(out, "(0 applied now)") {
		t.Fatalf("second migrate = %v\n%s", err, out)
	}
	if out, err := runTip(t, "migrate", "--status"); err != nil {
		t.Fatalf("migrate --status after migrating = %v\n%s", err, out)
	}
}
