package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/config"
)

// BuildTip builds the tip binary into the test's temporary folder.
func BuildTip(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tip")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tip-project/tip/cmd/tip").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/tip: %v\n%s", err, out)
	}
	return bin
}

// WorkerProcess is a `tip worker` running as an OS process of its own.
type WorkerProcess struct {
	cmd      *exec.Cmd
	exited   chan struct{}
	Identity string // the worker's Temporal identity
}

// StartWorker runs `tip worker` (bin) configured through TIP_* variables only, and
// kills it when the test ends; its log is shown if the test failed.
func StartWorker(t testing.TB, bin string, cfg config.Config) *WorkerProcess {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "worker.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "worker")
	cmd.Dir = t.TempDir() // no tip.yaml to pick up
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TIP_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"TIP_TEMPORAL_ADDRESS="+cfg.Temporal.Address,
		"TIP_TEMPORAL_NAMESPACE="+cfg.Temporal.Namespace,
		"TIP_TEMPORAL_TASK_QUEUE="+cfg.Temporal.TaskQueue,
		"TIP_POSTGRES_DSN="+cfg.Postgres.DSN,
		"TIP_S3_ENDPOINT="+cfg.S3.Endpoint,
		"TIP_S3_ACCESS_KEY="+cfg.S3.AccessKey,
		"TIP_S3_SECRET_KEY="+cfg.S3.SecretKey,
		"TIP_S3_BUCKET="+cfg.S3.Bucket,
		"TIP_WORKER_METRICS_ADDRESS=",
		"TIP_BLACKLISTS_CATALOG="+cfg.Blacklists.Catalog,
		"TIP_SPAM_CATALOG="+cfg.Spam.Catalog,
		"TIP_LOG_LEVEL=warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	w := &WorkerProcess{cmd: cmd, exited: make(chan struct{}), Identity: fmt.Sprintf("%d@%s", cmd.Process.Pid, host)}
	go func() {
		_ = cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.exited
		if t.Failed() {
			if log, err := os.ReadFile(logPath); err == nil && len(log) > 0 {
				t.Logf("log of worker %s:\n%s", w.Identity, log)
			}
		}
	})
	return w
}

// Kill sends SIGKILL, as the OOM killer or a lost machine would, and waits for
// the process to die.
func (w *WorkerProcess) Kill(t testing.TB) {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker survived SIGKILL for 10 s")
	}
}

// PeakRSS is the most resident memory the running worker has used so far, in
// bytes (VmHWM of /proc/PID/status).
func (w *WorkerProcess) PeakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmHWM", w.cmd.Process.Pid)
}
