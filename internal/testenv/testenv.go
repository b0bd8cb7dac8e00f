// Package testenv is the integration-test harness: a package's TestMain calls Main,
// which starts real PostgreSQL, MinIO and Temporal dev-server processes on free
// loopback ports in a temporary folder (through devstack, the code behind
// `make up`), runs the tests and stops the services. With TIP_TEST_STACK=prod the
// stack is the production-like one: the Temporal server on PostgreSQL. In -short mode nothing starts
// and integration tests skip; otherwise a missing tool fails the run instead of
// silently skipping tests. Tests run with the lab's settings (config/lab.tip.yaml),
// as `make demo` does: Config starts from them, and Main names the file in
// $TIP_CONFIG for the tip commands the tests run.
package testenv

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/devstack"
)

var stack *devstack.Stack

// Main runs the package's tests around a fresh stack and exits.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if err := os.Setenv(config.EnvFile, LabConfigFile()); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	if testing.Short() || fuzzing() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "tip-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	// PostgreSQL runs as an unprivileged user that must reach its data folder.
	_ = os.Chmod(dir, 0o755)
	s, err := devstack.Ephemeral(dir, ToolsDir())
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	if Production() {
		if err := s.Production(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
			return 1
		}
	}
	s.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := s.Up(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: starting the test stack failed: %v\n(state and logs kept in %s)\n", err, dir)
		_ = s.Down(context.Background())
		return 1
	}
	stack = s
	code := m.Run()
	if err := s.Down(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: stopping the test stack:", err)
	}
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "testenv: test stack state and logs kept in %s\n", dir)
	}
	return code
}

// Production says whether the tests run on the production-like stack (the
// Temporal server on PostgreSQL, devstack.Production) rather than the dev server:
// TIP_TEST_STACK=prod, as `make test-faults` sets it.
func Production() bool { return os.Getenv("TIP_TEST_STACK") == "prod" }

// ToolsDir is where `make tools` put the temporal and minio binaries:
// $TIP_TOOLS_DIR, else .tools/bin at the module root.
func ToolsDir() string {
	if d := os.Getenv("TIP_TOOLS_DIR"); d != "" {
		return d
	}
	return filepath.Join(moduleRoot, ".tools", "bin")
}

// LabConfigFile is the lab's configuration, config/lab.tip.yaml, by absolute path.
func LabConfigFile() string { return filepath.Join(moduleRoot, config.LabFile) }

// moduleRoot is the folder of TIP's go.mod, found from the working directory the
// test binary starts in (its package's folder), before a test changes it.
var moduleRoot = findModuleRoot()

func findModuleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// Stack returns the running test stack, skipping the test in -short mode.
func Stack(t testing.TB) *devstack.Stack {
	t.Helper()
	if stack == nil {
		if testing.Short() {
			t.Skip("integration test: needs the real services (run without -short)")
		}
		t.Fatal("testenv: no stack; the package's TestMain must call testenv.Main")
	}
	return stack
}

// Config returns the lab's TIP configuration pointing at the test stack. Each call
// gets its own task queue so tests never steal each other's tasks.
func Config(t testing.TB) config.Config {
	s := Stack(t)
	cfg, err := config.File(LabConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Temporal.Address = s.TemporalAddress()
	cfg.Temporal.Namespace = s.Namespace
	cfg.Temporal.TaskQueue = fmt.Sprintf("test-%s-%d", sanitize(t.Name()), seq.Add(1))
	cfg.Postgres.DSN = s.PostgresDSN()
	cfg.S3.Endpoint = s.S3Endpoint()
	cfg.S3.AccessKey, cfg.S3.SecretKey = s.S3AccessKey, s.S3SecretKey
	cfg.Worker.MetricsAddress = ""
	return cfg
}

var seq atomic.Int64

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name)
}

// NewDatabase creates an empty database in the test cluster and returns its DSN; it
// is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	s := Stack(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.PostgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("t%d_%d", time.Now().UnixNano(), seq.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, s.PostgresDSN())
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return strings.Replace(s.PostgresDSN(), "/"+s.PGDatabase+"?", "/"+name+"?", 1)
}

// NewBucket returns a configuration whose bucket name is fresh for this test.
func NewBucket(t testing.TB, cfg config.Config) config.Config {
	cfg.S3.Bucket = fmt.Sprintf("t-%d-%d", time.Now().UnixNano()%1e9, seq.Add(1))
	return cfg
}

// fuzzing says whether the binary fuzzes (go test -fuzz) or is one of the
// fuzzer's workers: it runs fuzz targets only, which need no stack, and each
// worker process would otherwise start one of its own.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}
