package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tip-project/tip/config"
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

// StartWorker runs `tip worker` (bin) configured through TIP_* variables only (all
// of cfg's, no file), and
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
	// Every setting of cfg, so nothing falls back to a default the test did not choose.
	cmd.Env = append(append(cmd.Env, cfg.Env()...), "TIP_LOG_LEVEL=warn")
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

// Stop sends SIGTERM, as a rolling restart does, and waits for the worker to
// drain and exit.
func (w *WorkerProcess) Stop(t testing.TB) {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("the worker did not stop within 60 s of SIGTERM")
	}
}

// Usage is what the worker process uses now: resident memory (VmRSS) and the CPU
// time it has spent, user and system.
func (w *WorkerProcess) Usage() (rss int64, cpu time.Duration, err error) {
	return ProcessUsage(w.cmd.Process.Pid)
}

// Pid is the worker process's id.
func (w *WorkerProcess) Pid() int { return w.cmd.Process.Pid }

// ProcessUsage is a process's resident memory and CPU time (user and system,
// its own and that of the children it has waited for) from /proc.
func ProcessUsage(pid int) (rss int64, cpu time.Duration, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name, in parentheses, may hold spaces: the fields follow its ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// After the name: state(3) ... utime(14) stime(15) cutime(16) cstime(17) ... rss(24).
	if len(f) < 22 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var ticks int64
	for _, k := range []int{11, 12, 13, 14} {
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	pages, err := strconv.ParseInt(f[21], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	// The kernel counts CPU time in USER_HZ ticks, 100 a second on Linux.
	return pages * int64(os.Getpagesize()), time.Duration(ticks) * (time.Second / 100), nil
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
