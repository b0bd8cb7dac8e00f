package devstack_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/internal/testenv"
)

func newStack(t *testing.T) *devstack.Stack {
	if testing.Short() {
		t.Skip("starts real services")
	}
	dir, err := os.MkdirTemp("", "tip-devstack-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	s, err := devstack.Ephemeral(dir, testenv.ToolsDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Log = slog.New(slog.DiscardHandler)
	t.Cleanup(func() {
		_ = s.Down(context.Background())
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("stack state kept in %s", dir)
		}
	})
	return s
}

func pids(s *devstack.Stack) map[devstack.Service]int {
	out := map[devstack.Service]int{}
	for _, st := range s.Status(context.Background()) {
		if st.Running {
			out[st.Service] = st.PID
		}
	}
	return out
}

// TestUpTwiceDownKeepsDataWipeRemovesIt walks the local stack's life cycle: up, up
// again (harmless), data written, down (everything stopped), up (data still there).
func TestUpTwiceDownKeepsDataWipeRemovesIt(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	if err := s.Up(ctx); err != nil {
		t.Fatal(err)
	}
	first := pids(s)
	for _, svc := range devstack.All {
		if first[svc] == 0 {
			t.Fatalf("%s not running after Up: %+v", svc, s.Status(ctx))
		}
	}
	if err := s.Up(ctx); err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if again := pids(s); len(again) != len(first) || again[devstack.Postgres] != first[devstack.Postgres] ||
		again[devstack.MinIO] != first[devstack.MinIO] || again[devstack.Temporal] != first[devstack.Temporal] {
		t.Fatalf("second Up restarted services: %v then %v", first, again)
	}

	conn, err := pgx.Connect(ctx, s.PostgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	mc, err := minio.New(s.S3Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(s.S3AccessKey, s.S3SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.MakeBucket(ctx, "kept", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, "kept", "obj", bytes.NewReader([]byte("raw")), 3, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := s.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if left := pids(s); len(left) != 0 {
		t.Fatalf("still running after Down: %v", left)
	}
	for _, port := range []int{s.PostgresPort, s.MinIOPort, s.TemporalPort} {
		if c, err := net.Dial("tcp", net.JoinHostPort(s.Host, strconv.Itoa(port))); err == nil {
			c.Close()
			t.Fatalf("port %d still answers after Down", port)
		}
	}
	if err := s.Down(ctx); err != nil {
		t.Fatalf("second Down: %v", err)
	}

	if err := s.Up(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, s.PostgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("row after restart: %q, %v", v, err)
	}
	conn.Close(ctx)
	obj, err := mc.GetObject(ctx, "kept", "obj", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj)
	if err != nil || string(data) != "raw" {
		t.Fatalf("object after restart: %q, %v", data, err)
	}

	if err := s.Wipe(ctx); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("Wipe while running = %v", err)
	}
	if err := s.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Wipe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.StateDir); !os.IsNotExist(err) {
		t.Fatalf("state folder after wipe: %v", err)
	}
}

// The local stack has fixed ports: one held by another program is refused by name.
func TestUpRefusesAPortHeldByAnotherProgram(t *testing.T) {
	ctx := context.Background()
	e := newStack(t)
	s := devstack.Local(e.StateDir, e.ToolsDir)
	s.Log, s.MinIOPort, s.MinIOConsolePort = e.Log, e.MinIOPort, 0
	l, err := net.Listen("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.MinIOPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = s.Start(ctx, devstack.MinIO)
	if err == nil || !strings.Contains(err.Error(), "taken by another program") || !strings.Contains(err.Error(), strconv.Itoa(s.MinIOPort)) {
		t.Fatalf("Start with a taken port = %v", err)
	}
}

// An ephemeral (test) stack moves to fresh ports instead: free ports are picked
// before they are bound, and a busy machine may take one in between.
func TestEphemeralStackMovesOffATakenPort(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	taken := s.MinIOPort
	l, err := net.Listen("tcp", net.JoinHostPort(s.Host, strconv.Itoa(taken)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := s.Start(ctx, devstack.MinIO); err != nil {
		t.Fatalf("Start with a taken port: %v", err)
	}
	if s.MinIOPort == taken {
		t.Fatalf("still on the taken port %d", taken)
	}
}

func TestMissingToolSaysHowToBuildIt(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	s.ToolsDir = t.TempDir()
	err := s.Start(ctx, devstack.Temporal)
	if err == nil || !strings.Contains(err.Error(), "run `make tools`") {
		t.Fatalf("Start without the temporal binary = %v", err)
	}
	// The production-like stack's server is built by its own target.
	if err := s.Production(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, devstack.Temporal); err == nil || !strings.Contains(err.Error(), "temporal-server binary not found") ||
		!strings.Contains(err.Error(), "run `make tools-prod`") {
		t.Fatalf("Start without the temporal-server binary = %v", err)
	}
}
