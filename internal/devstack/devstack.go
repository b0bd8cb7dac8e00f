// Package devstack starts and stops TIP's real local services — a private
// PostgreSQL cluster, MinIO and the Temporal dev server — on loopback ports, with
// their state under one folder. `tip dev up` uses it with the fixed ports of the
// local stack; the integration-test harness uses it with free ports and a
// temporary folder, so the tests exercise the very code that `make up` runs.
package devstack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stack describes one set of local services and where their state lives.
type Stack struct {
	StateDir string // data, logs and pid files of every service
	ToolsDir string // folder holding the temporal and minio binaries
	PGBinDir string // folder holding initdb, pg_ctl and postgres; empty: search

	Host               string // loopback address every service binds to
	PostgresPort       int
	MinIOPort          int
	MinIOConsolePort   int // 0: console off
	TemporalPort       int
	TemporalUIPort     int // 0: headless
	TemporalHTTPPort   int
	TemporalMetricPort int
	// The lab and its spamtrap agent (`tip dev up --lab`). A lab port of 0 is the
	// lab's default; the agent's port is fixed when the agent is set up.
	LabHTTPPort, LabDNSPort, LabIMAPPort int
	AgentPort                            int
	// DNSAddress is where `tip serve dns` answers (dns.listen), for the status.
	DNSAddress string
	// APIAddress is where `tip serve api` answers (api.listen), for the status.
	APIAddress string

	PGUser, PGPassword, PGDatabase string
	S3AccessKey, S3SecretKey       string
	Namespace                      string // created by the dev server at start

	// TemporalOnPostgres: the production-like stack (see Production), whose
	// Temporal server listens on Server's ports besides the frontend's.
	TemporalOnPostgres bool
	Server             ServerPorts

	// TipEnv is added to the environment of every tip process StartTip starts,
	// before the process's own: `tip dev up` names its configuration file here,
	// by absolute path, for processes that run in folders of their own.
	TipEnv []string

	Log *slog.Logger

	movablePorts bool // ephemeral: ports may be re-picked when taken at start-up
}

// Local returns the stack that `make up` runs: fixed well-known ports and the
// credentials that config.Default expects.
func Local(stateDir, toolsDir string) *Stack {
	if abs, err := filepath.Abs(stateDir); err == nil {
		stateDir = abs
	}
	if abs, err := filepath.Abs(toolsDir); err == nil {
		toolsDir = abs
	}
	return &Stack{
		StateDir:           stateDir,
		ToolsDir:           toolsDir,
		Host:               "127.0.0.1",
		PostgresPort:       5433,
		MinIOPort:          9000,
		MinIOConsolePort:   9001,
		TemporalPort:       7233,
		TemporalUIPort:     8233,
		TemporalHTTPPort:   7243,
		TemporalMetricPort: 7244,
		AgentPort:          8443,
		PGUser:             "tip",
		PGPassword:         "tip",
		PGDatabase:         "tip",
		S3AccessKey:        "tipadmin",
		S3SecretKey:        "tipadmin-secret",
		Namespace:          "tip",
		Log:                slog.Default(),
	}
}

// Ephemeral returns a stack on free loopback ports under stateDir, headless, for tests.
func Ephemeral(stateDir, toolsDir string) (*Stack, error) {
	s := Local(stateDir, toolsDir)
	ports, err := FreePorts(10)
	if err != nil {
		return nil, err
	}
	s.PostgresPort, s.MinIOPort, s.TemporalPort = ports[0], ports[1], ports[2]
	s.TemporalHTTPPort, s.TemporalMetricPort = ports[3], ports[4]
	s.TemporalUIPort = ports[5]
	s.LabHTTPPort, s.LabDNSPort, s.LabIMAPPort, s.AgentPort = ports[6], ports[7], ports[8], ports[9]
	s.MinIOConsolePort = 0
	s.movablePorts = true
	return s, nil
}

// repickPorts gives a service fresh free ports (ephemeral stacks only).
func (s *Stack) repickPorts(svc Service) error {
	ports, err := FreePorts(4)
	if err != nil {
		return err
	}
	switch svc {
	case Postgres:
		s.PostgresPort = ports[0]
	case MinIO:
		s.MinIOPort = ports[0]
	case Temporal:
		s.TemporalPort, s.TemporalHTTPPort, s.TemporalMetricPort = ports[0], ports[1], ports[2]
		if s.TemporalOnPostgres {
			return s.pickServerPorts()
		}
		s.TemporalUIPort = ports[3]
	case TemporalUI:
		s.TemporalUIPort = ports[0]
	}
	return nil
}

// Service is one of the stack's processes.
type Service string

const (
	Postgres Service = "postgres"
	MinIO    Service = "minio"
	Temporal Service = "temporal"
	Worker   Service = "worker" // a `tip worker` process, started on request after set-up
	Lab      Service = "lab"    // `tip lab serve`, the simulated Internet
	Agent    Service = "agent"  // `tip agent serve` on the lab's agent trap
	DNS      Service = "dns"    // `tip serve dns`: the blacklists as RPZ and DNSBL zones
	API      Service = "api"    // `tip serve api`: lookups, exports, the MISP feed over HTTP
)

// All lists the services in start order.
var All = []Service{Postgres, MinIO, Temporal}

// Status is what `tip dev status` prints for a service.
type Status struct {
	Service Service
	Running bool
	PID     int
	Address string
	Detail  string
}

// PostgresDSN is the connection string of the stack's database.
func (s *Stack) PostgresDSN() string {
	return fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", s.PGUser, s.PGPassword, s.Host, s.PostgresPort, s.PGDatabase)
}

// S3Endpoint is MinIO's host:port.
func (s *Stack) S3Endpoint() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.MinIOPort)) }

// TemporalAddress is the Temporal frontend's host:port.
func (s *Stack) TemporalAddress() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.TemporalPort))
}

// TemporalUI is the Web UI's address, or "" when headless.
func (s *Stack) TemporalUI() string {
	if s.TemporalUIPort == 0 {
		return ""
	}
	return "http://" + net.JoinHostPort(s.Host, strconv.Itoa(s.TemporalUIPort))
}

// Up starts every service that is not already running and waits until each answers.
// Running it twice is harmless.
func (s *Stack) Up(ctx context.Context) error {
	if err := os.MkdirAll(s.StateDir, 0o755); err != nil {
		return fmt.Errorf("state folder: %w", err)
	}
	for _, svc := range s.services() {
		if err := s.Start(ctx, svc); err != nil {
			return err
		}
	}
	return nil
}

// Start starts one service unless it is already running.
//
// Free ports are picked before a server binds them, so on a busy machine another
// process may take one first; an ephemeral stack then retries on fresh ports.
func (s *Stack) Start(ctx context.Context, svc Service) error {
	for attempt := 1; ; attempt++ {
		logStart := fileSize(s.logFile(svc))
		err := s.start(ctx, svc)
		if err == nil || !s.movablePorts || attempt == 3 || !s.portConflict(svc, err, logStart) {
			return err
		}
		s.logf("port taken during start-up, retrying on fresh ports", "service", svc, "attempt", attempt)
		if err := s.repickPorts(svc); err != nil {
			return err
		}
	}
}

func (s *Stack) start(ctx context.Context, svc Service) error {
	switch svc {
	case Postgres:
		return s.startPostgres(ctx)
	case MinIO:
		return s.startMinIO(ctx)
	case Temporal:
		if s.TemporalOnPostgres {
			return s.startTemporalServer(ctx)
		}
		return s.startTemporal(ctx)
	case TemporalUI:
		return s.startTemporalUI(ctx)
	}
	return fmt.Errorf("unknown service %q", svc)
}

// Down stops the services this stack started (found by their pid files and data
// folder), newest first, and keeps their data.
func (s *Stack) Down(ctx context.Context) error {
	var errs []error
	for _, w := range s.workerServices() {
		errs = append(errs, s.Stop(ctx, w))
	}
	errs = append(errs, s.Stop(ctx, API), s.Stop(ctx, DNS), s.Stop(ctx, Agent), s.Stop(ctx, Lab))
	all := s.services()
	for i := len(all) - 1; i >= 0; i-- {
		if err := s.Stop(ctx, all[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stop stops one service if it runs.
func (s *Stack) Stop(ctx context.Context, svc Service) error {
	if svc == Postgres {
		return s.stopPostgres(ctx)
	}
	return s.stopProcess(svc)
}

// StartTip runs a long-lived `tip` subcommand (the worker, the lab, the agent) as
// a managed service: in its own folder, logging to its log file, stopped by Down.
// A service that serves on a port of the stack (the agent) is refused by name when
// another program holds it.
func (s *Stack) StartTip(ctx context.Context, svc Service, tipBinary string, env []string, args ...string) error {
	if pid, ok := s.processAlive(svc); ok {
		s.logf("already running", "service", svc, "pid", pid)
		return nil
	}
	if svc == Agent {
		if err := checkPortFree(svc, s.Host, s.AgentPort); err != nil {
			return err
		}
	}
	pid, err := s.spawn(svc, append(slices.Clone(s.TipEnv), env...), tipBinary, args...)
	if err != nil {
		return err
	}
	// Give it a moment to fail early (a taken port, a missing service).
	time.Sleep(2 * time.Second)
	if _, ok := s.processAlive(svc); !ok {
		return fmt.Errorf("%s exited during start-up; see %s", svc, s.logFile(svc))
	}
	s.logf("started", "service", svc, "pid", pid, "log", s.logFile(svc))
	return nil
}

// Running says whether a service the stack started runs now.
func (s *Stack) Running(svc Service) bool {
	_, ok := s.processAlive(svc)
	return ok
}

// Dir is the folder a service keeps its state in.
func (s *Stack) Dir(svc Service) string { return s.dir(svc) }

// Status reports each service.
func (s *Stack) Status(ctx context.Context) []Status {
	all := s.services()
	out := make([]Status, 0, len(all)+3)
	for _, svc := range append(append(all[:len(all):len(all)], Lab, Agent, DNS, API), s.workerServices()...) {
		st := Status{Service: svc}
		switch svc {
		case Postgres:
			st.Address = net.JoinHostPort(s.Host, strconv.Itoa(s.PostgresPort))
			st.PID, st.Running = s.postgresPID()
		case MinIO:
			st.Address = "http://" + s.S3Endpoint()
			st.PID, st.Running = s.processAlive(svc)
			if s.MinIOConsolePort != 0 {
				st.Detail = "console http://" + net.JoinHostPort(s.Host, strconv.Itoa(s.MinIOConsolePort))
			}
		case Lab:
			st.PID, st.Running = s.processAlive(svc)
			st.Detail = "log " + s.logFile(svc)
		case TemporalUI:
			st.Address = s.TemporalUI()
			st.PID, st.Running = s.processAlive(svc)
			st.Detail = "log " + s.logFile(svc)
		case DNS:
			st.Address = s.DNSAddress
			st.PID, st.Running = s.processAlive(svc)
			st.Detail = "log " + s.logFile(svc)
		case API:
			st.Address = s.APIAddress
			st.PID, st.Running = s.processAlive(svc)
			st.Detail = "log " + s.logFile(svc)
		case Agent:
			st.Address = "https://" + net.JoinHostPort(s.Host, strconv.Itoa(s.AgentPort))
			st.PID, st.Running = s.processAlive(svc)
			st.Detail = "log " + s.logFile(svc)
		case Temporal:
			st.Address = s.TemporalAddress()
			st.PID, st.Running = s.processAlive(svc)
			switch ui := s.TemporalUI(); {
			case s.TemporalOnPostgres:
				st.Detail = "server on PostgreSQL (databases " + TemporalDB + ", " + TemporalVisibilityDB + ")"
			case ui != "":
				st.Detail = "Web UI " + ui
			}
		default: // the workers
			st.PID, st.Running = s.processAlive(svc)
			st.Detail = "log " + s.logFile(svc)
		}
		if st.Running && st.Address != "" && !portOpen(st.Address) {
			st.Detail = strings.TrimSpace("not answering yet; " + st.Detail)
		}
		out = append(out, st)
	}
	return out
}

// PID is the process id of one of the stack's services, if it runs.
func (s *Stack) PID(ctx context.Context, svc Service) (int, bool) {
	for _, st := range s.Status(ctx) {
		if st.Service == svc && st.Running {
			return st.PID, true
		}
	}
	return 0, false
}

// Wipe removes the state folder; every service must be stopped first.
func (s *Stack) Wipe(ctx context.Context) error {
	for _, st := range s.Status(ctx) {
		if st.Running {
			return fmt.Errorf("%s is still running (pid %d); run `make down` first", st.Service, st.PID)
		}
	}
	return os.RemoveAll(s.StateDir)
}

func (s *Stack) logf(msg string, args ...any) {
	if s.Log != nil {
		s.Log.Info(msg, args...)
	}
}

func (s *Stack) dir(svc Service) string     { return filepath.Join(s.StateDir, string(svc)) }
func (s *Stack) pidFile(svc Service) string { return filepath.Join(s.dir(svc), string(svc)+".pid") }
func (s *Stack) logFile(svc Service) string { return filepath.Join(s.dir(svc), string(svc)+".log") }

// tool finds a binary built into the tools folder.
func (s *Stack) tool(name string) (string, error) {
	p := filepath.Join(s.ToolsDir, name)
	if _, err := os.Stat(p); err != nil {
		target := "make tools"
		if strings.HasPrefix(name, "temporal-") { // the production-like stack's
			target = "make tools-prod"
		}
		return "", fmt.Errorf("%s binary not found at %s: run `%s` (builds it once into the tools folder)", name, p, target)
	}
	return p, nil
}

// spawn starts a long-running process in its own session, so it outlives the
// command that started it, with output appended to its log file.
func (s *Stack) spawn(svc Service, env []string, bin string, args ...string) (int, error) {
	if err := os.MkdirAll(s.dir(svc), 0o755); err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(s.logFile(svc), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.dir(svc)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", svc, err)
	}
	pid := cmd.Process.Pid
	// Reap the child if it exits while we still run, so it never lingers as a zombie.
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(s.pidFile(svc), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return pid, err
	}
	return pid, nil
}

// processAlive reads the pid file and checks that the process is still the one
// this stack started.
func (s *Stack) processAlive(svc Service) (int, bool) {
	data, err := os.ReadFile(s.pidFile(svc))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	// Every spawned process runs in its service folder; a reused pid does not.
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil || cwd != s.dir(svc) {
		return pid, false
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
			return pid, false
		}
	}
	return pid, true
}

func (s *Stack) stopProcess(svc Service) error {
	pid, alive := s.processAlive(svc)
	if !alive {
		_ = os.Remove(s.pidFile(svc))
		return nil
	}
	s.logf("stopping", "service", svc, "pid", pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(45 * time.Second) // a worker drains its activities first
	for time.Now().Before(deadline) {
		if _, alive := s.processAlive(svc); !alive {
			_ = os.Remove(s.pidFile(svc))
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = os.Remove(s.pidFile(svc))
	return nil
}

// checkPortFree fails with a clear message when another program holds the port.
func checkPortFree(svc Service, host string, port int) error {
	if port == 0 {
		return nil
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: port %s is taken by another program (not started by this stack); stop it, or run the stack on other ports", svc, addr)
	}
	return l.Close()
}

// waitFor polls ready until it succeeds, the process dies or the timeout passes.
func (s *Stack) waitFor(ctx context.Context, svc Service, timeout time.Duration, alive func() bool, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = ready(ctx); last == nil {
			return nil
		}
		if alive != nil && !alive() {
			return fmt.Errorf("%s exited during start-up: %v; see %s", svc, last, s.logFile(svc))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not become ready within %s: %v; see %s", svc, timeout, last, s.logFile(svc))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func portOpen(addr string) bool {
	if a, ok := strings.CutPrefix(addr, "https://"); ok {
		// A finished handshake, so the server does not log a broken one. Only
		// whether it answers matters here, not who it is.
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: &tls.Config{InsecureSkipVerify: true}}
		c, err := d.Dial("tcp", a)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "http://"), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// FreePorts returns n distinct loopback TCP ports that were free a moment ago.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// lowFreePorts is FreePorts below 32768, outside the kernel's ephemeral range:
// the Temporal server records its membership ports as PostgreSQL smallints.
func lowFreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for p := 20000 + rand.IntN(10000); len(ports) < n && p < 32768; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("free port: fewer than %d free below 32768", n)
	}
	return ports, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// portConflict reports whether a failed start was about a port: taken before we
// started, or lost to another process while the service bound it (its log says so).
func (s *Stack) portConflict(svc Service, err error, logOffset int64) bool {
	if strings.Contains(err.Error(), "taken by another program") {
		return true
	}
	f, ferr := os.Open(s.logFile(svc))
	if ferr != nil {
		return false
	}
	defer f.Close()
	if _, ferr := f.Seek(logOffset, io.SeekStart); ferr != nil {
		return false
	}
	data, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	text := strings.ToLower(string(data))
	return strings.Contains(text, "address already in use") || strings.Contains(text, "port is already in use")
}
