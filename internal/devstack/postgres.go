package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgRunUser is who runs PostgreSQL when we are root: PostgreSQL refuses root.
func pgRunUser() string {
	if u := os.Getenv("TIP_PG_RUN_USER"); u != "" {
		return u
	}
	if _, err := user.Lookup("postgres"); err == nil {
		return "postgres"
	}
	return "nobody"
}

func (s *Stack) pgBin(name string) (string, error) {
	dirs := []string{s.PGBinDir, os.Getenv("TIP_PG_BIN"), "/usr/lib/postgresql/15/bin"}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("postgres: %s not found; run `make tools` (installs Debian's postgresql) or set TIP_PG_BIN to the folder holding initdb and pg_ctl", name)
}

func (s *Stack) pgData() string { return filepath.Join(s.dir(Postgres), "data") }

// pgCommand runs a PostgreSQL tool, as an unprivileged user when we are root.
func (s *Stack) pgCommand(ctx context.Context, name string, args ...string) (*exec.Cmd, error) {
	bin, err := s.pgBin(name)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", pgRunUser(), "--", bin}, args...)...), nil
	}
	return exec.CommandContext(ctx, bin, args...), nil
}

// chownForPostgres hands the folder to the run user and makes every parent
// folder traversable, since PostgreSQL must reach its data folder as that user.
func (s *Stack) chownForPostgres(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(pgRunUser())
	if err != nil {
		return fmt.Errorf("postgres: run user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		return fmt.Errorf("postgres: chown %s: %w", dir, err)
	}
	abs, _ := filepath.Abs(dir)
	for p := filepath.Dir(abs); p != "/" && p != "."; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("postgres: make %s traversable for %s: %w", p, u.Username, err)
			}
		}
	}
	return nil
}

func (s *Stack) startPostgres(ctx context.Context) error {
	if pid, ok := s.postgresPID(); ok {
		s.logf("already running", "service", Postgres, "pid", pid)
		return s.ensureDatabase(ctx)
	}
	if err := checkPortFree(Postgres, s.Host, s.PostgresPort); err != nil {
		return err
	}
	dir := s.dir(Postgres)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(s.pgData(), "PG_VERSION")); err != nil {
		if err := s.initdb(ctx); err != nil {
			return err
		}
	}
	if err := s.chownForPostgres(dir); err != nil {
		return err
	}
	opts := fmt.Sprintf("-c listen_addresses=%s -p %d -c unix_socket_directories=%s -c fsync=on", s.Host, s.PostgresPort, dir)
	cmd, err := s.pgCommand(ctx, "pg_ctl", "-D", s.pgData(), "-l", s.logFile(Postgres), "-w", "-t", "60", "-o", opts, "start")
	if err != nil {
		return err
	}
	// pg_ctl forks the server; it must not hold our session.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("postgres: pg_ctl start: %v: %s; see %s", err, strings.TrimSpace(string(out)), s.logFile(Postgres))
	}
	pid, _ := s.postgresPID()
	s.logf("started", "service", Postgres, "pid", pid, "address", fmt.Sprintf("%s:%d", s.Host, s.PostgresPort))
	return s.ensureDatabase(ctx)
}

func (s *Stack) initdb(ctx context.Context) error {
	dir := s.dir(Postgres)
	pw := filepath.Join(dir, "initdb.pw")
	if err := os.WriteFile(pw, []byte(s.PGPassword+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pw)
	if err := s.chownForPostgres(dir); err != nil {
		return err
	}
	cmd, err := s.pgCommand(ctx, "initdb", "-D", s.pgData(), "-U", s.PGUser, "--pwfile", pw,
		"--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8", "--locale=C")
	if err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("postgres: initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}
	s.logf("initialised cluster", "service", Postgres, "data", s.pgData())
	return nil
}

// ensureDatabase creates TIP's database in the cluster if it is missing.
func (s *Stack) ensureDatabase(ctx context.Context) error {
	dsn := fmt.Sprintf("postgres://%s:%s@%s:%d/postgres?sslmode=disable", s.PGUser, s.PGPassword, s.Host, s.PostgresPort)
	var conn *pgx.Conn
	err := s.waitFor(ctx, Postgres, 30*time.Second, nil, func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, dsn)
		conn = c
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", s.PGDatabase).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.PGDatabase}.Sanitize()); err != nil {
		return fmt.Errorf("postgres: create database %s: %w", s.PGDatabase, err)
	}
	return nil
}

// postgresPID reads postmaster.pid and checks that the process still runs.
func (s *Stack) postgresPID() (int, bool) {
	data, err := os.ReadFile(filepath.Join(s.pgData(), "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, false
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(comm)), "postgres") {
		return pid, false
	}
	return pid, true
}

func (s *Stack) stopPostgres(ctx context.Context) error {
	if _, ok := s.postgresPID(); !ok {
		return nil
	}
	s.logf("stopping", "service", Postgres)
	cmd, err := s.pgCommand(ctx, "pg_ctl", "-D", s.pgData(), "-m", "fast", "-w", "-t", "60", "stop")
	if err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return errors.New("postgres: pg_ctl stop: " + strings.TrimSpace(string(out)))
	}
	return nil
}
