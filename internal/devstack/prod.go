package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TemporalUI is the standalone Web UI (temporalio/ui-server) of a production-like
// stack; the dev server serves its own.
const TemporalUI Service = "temporal-ui"

// Databases of the Temporal server on PostgreSQL: its persistence and its
// visibility store, each set up and upgraded by its SQL schema tool.
const (
	TemporalDB           = "temporal"
	TemporalVisibilityDB = "temporal_visibility"
)

// ServerPorts are the Temporal server's own ports besides the frontend's: the
// gRPC ports of its history, matching and worker services and the membership
// (ringpop) ports of all four.
type ServerPorts struct {
	History, Matching, Worker                                                   int
	FrontendMembership, HistoryMembership, MatchingMembership, WorkerMembership int
}

// Production turns the stack into the production-like one of `make up-prod`: the
// Temporal server and schema tool built from go.temporal.io/server, with its
// persistence and visibility in the stack's PostgreSQL, and the standalone Web
// UI, instead of the dev server on SQLite. Clients see the same addresses.
func (s *Stack) Production() error {
	s.TemporalOnPostgres = true
	if !s.movablePorts {
		s.Server = ServerPorts{History: 7234, Matching: 7235, Worker: 7239,
			FrontendMembership: 6933, HistoryMembership: 6934, MatchingMembership: 6935, WorkerMembership: 6939}
		return nil
	}
	return s.pickServerPorts()
}

func (s *Stack) pickServerPorts() error {
	ports, err := lowFreePorts(7) // membership ports are stored as smallints
	if err != nil {
		return err
	}
	s.Server = ServerPorts{History: ports[0], Matching: ports[1], Worker: ports[2],
		FrontendMembership: ports[3], HistoryMembership: ports[4], MatchingMembership: ports[5], WorkerMembership: ports[6]}
	return nil
}

// WorkerService names the n-th worker process of the stack (from 1): "worker",
// then "worker-2", "worker-3"…
func WorkerService(n int) Service {
	if n <= 1 {
		return Worker
	}
	return Service(fmt.Sprintf("%s-%d", Worker, n))
}

// workerServices lists the worker processes this stack has folders for.
func (s *Stack) workerServices() []Service {
	out := []Service{Worker}
	for n := 2; ; n++ {
		if _, err := os.Stat(s.dir(WorkerService(n))); err != nil {
			return out
		}
		out = append(out, WorkerService(n))
	}
}

// services lists the stack's services in start order.
func (s *Stack) services() []Service {
	if s.TemporalOnPostgres {
		return []Service{Postgres, MinIO, Temporal, TemporalUI}
	}
	return All
}

// startTemporalServer sets up the server's two databases with its schema tool
// (created when missing, upgraded to the binary's schema every time), writes its
// configuration, starts it and registers the stack's namespace.
func (s *Stack) startTemporalServer(ctx context.Context) error {
	if pid, ok := s.processAlive(Temporal); ok {
		s.logf("already running", "service", Temporal, "pid", pid)
		return nil
	}
	server, err := s.tool("temporal-server")
	if err != nil {
		return err
	}
	sqlTool, err := s.tool("temporal-sql-tool")
	if err != nil {
		return err
	}
	for _, p := range []int{s.TemporalPort, s.TemporalHTTPPort, s.TemporalMetricPort, s.Server.History, s.Server.Matching, s.Server.Worker,
		s.Server.FrontendMembership, s.Server.HistoryMembership, s.Server.MatchingMembership, s.Server.WorkerMembership} {
		if err := checkPortFree(Temporal, s.Host, p); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(s.dir(Temporal), "config"), 0o755); err != nil {
		return err
	}
	for _, db := range []struct{ name, schema string }{
		{TemporalDB, "postgresql/v12/temporal"}, {TemporalVisibilityDB, "postgresql/v12/visibility"},
	} {
		if err := s.temporalSchema(ctx, sqlTool, db.name, db.schema); err != nil {
			return err
		}
	}
	if err := s.writeServerConfig(); err != nil {
		return err
	}
	pid, err := s.spawn(Temporal, nil, server, "--root", s.dir(Temporal), "--config", "config", "--env", "tip", "--allow-no-auth", "start")
	if err != nil {
		return err
	}
	alive := func() bool { _, ok := s.processAlive(Temporal); return ok }
	if err := s.waitFor(ctx, Temporal, 120*time.Second, alive, func(ctx context.Context) error {
		return s.registerNamespace(ctx)
	}); err != nil {
		return err
	}
	s.logf("started", "service", Temporal, "pid", pid, "address", s.TemporalAddress(), "persistence", "postgres "+s.postgresAddr())
	return nil
}

// temporalSchema runs the schema tool on one database: create it unless it
// exists, lay down the versioning tables on a new one, and update the schema to
// the newest the tool embeds (nothing to do when it is current).
func (s *Stack) temporalSchema(ctx context.Context, tool, db, schema string) error {
	run := func(args ...string) (string, error) {
		base := []string{"--plugin", "postgres12", "--endpoint", s.Host, "--port", strconv.Itoa(s.PostgresPort),
			"--user", s.PGUser, "--password", s.PGPassword, "--database", db}
		cmd := exec.CommandContext(ctx, tool, append(base, args...)...)
		out, err := cmd.CombinedOutput()
		if logf, lerr := os.OpenFile(s.logFile(Temporal), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); lerr == nil {
			fmt.Fprintf(logf, "$ temporal-sql-tool --database %s %s\n%s", db, strings.Join(args, " "), out)
			logf.Close()
		}
		return string(out), err
	}
	if out, err := run("create-database"); err != nil && !strings.Contains(out, "already exists") {
		return fmt.Errorf("temporal schema tool: create database %s: %v\n%s", db, err, out)
	}
	// setup-schema -v 0.0 creates the versioning tables; on a database that has
	// them it fails, which is the sign it was set up before.
	if out, err := run("setup-schema", "-v", "0.0"); err != nil && !strings.Contains(out, "already exists") {
		return fmt.Errorf("temporal schema tool: set up %s: %v\n%s", db, err, out)
	}
	if out, err := run("update-schema", "--schema-name", schema); err != nil {
		return fmt.Errorf("temporal schema tool: update %s to %s: %v\n%s", db, schema, err, out)
	}
	return nil
}

func (s *Stack) postgresAddr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.PostgresPort)) }

// registerNamespace creates the stack's namespace (one day of retention, as the
// dev server's; `tip setup` sets TIP's) unless it exists, and succeeds once the
// frontend describes it.
func (s *Stack) registerNamespace(ctx context.Context) error {
	c, err := client.Dial(client.Options{HostPort: s.TemporalAddress(), Namespace: s.Namespace, Logger: quietLogger{}})
	if err != nil {
		return err
	}
	defer c.Close()
	svc := c.WorkflowService()
	_, err = svc.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.Namespace})
	var notFound *serviceerror.NamespaceNotFound
	if errors.As(err, &notFound) {
		_, err = svc.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{Namespace: s.Namespace,
			WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)})
		var exists *serviceerror.NamespaceAlreadyExists
		if err == nil || errors.As(err, &exists) {
			return errors.New("namespace registered; waiting for the frontend to see it")
		}
	}
	if err != nil {
		return err
	}
	// Describe reads the database; the other calls read the namespace cache,
	// which learns of a new namespace at its next refresh.
	_, err = svc.CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: s.Namespace})
	return err
}

// writeServerConfig writes the server's static configuration (config/tip.yaml)
// and dynamic configuration (config/dynamic.yaml) into its folder.
func (s *Stack) writeServerConfig() error {
	dir := filepath.Join(s.dir(Temporal), "config")
	f, err := os.Create(filepath.Join(dir, "tip.yaml"))
	if err != nil {
		return err
	}
	err = serverConfig.Execute(f, map[string]any{"S": s, "PG": s.postgresAddr(), "Dynamic": filepath.Join(dir, "dynamic.yaml")})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "dynamic.yaml"), []byte(dynamicConfig), 0o644)
}

// serverConfig is the Temporal server's configuration on the stack's PostgreSQL.
// Four history shards suit one machine; a cluster sets more before its first
// start (they cannot change later).
var serverConfig = template.Must(template.New("server").Parse(`# Written by TIP's devstack at every start: edit the code, not this file.
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "{{.PG}}"
        connectProtocol: tcp
        user: "{{.S.PGUser}}"
        password: "{{.S.PGPassword}}"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "{{.PG}}"
        connectProtocol: tcp
        user: "{{.S.PGUser}}"
        password: "{{.S.PGPassword}}"
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "{{.S.Host}}"
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "{{.S.Host}}:{{.S.TemporalMetricPort}}"
services:
  frontend:
    rpc:
      grpcPort: {{.S.TemporalPort}}
      membershipPort: {{.S.Server.FrontendMembership}}
      bindOnIP: "{{.S.Host}}"
      httpPort: {{.S.TemporalHTTPPort}}
  history:
    rpc:
      grpcPort: {{.S.Server.History}}
      membershipPort: {{.S.Server.HistoryMembership}}
      bindOnIP: "{{.S.Host}}"
  matching:
    rpc:
      grpcPort: {{.S.Server.Matching}}
      membershipPort: {{.S.Server.MatchingMembership}}
      bindOnIP: "{{.S.Host}}"
  worker:
    rpc:
      grpcPort: {{.S.Server.Worker}}
      membershipPort: {{.S.Server.WorkerMembership}}
      bindOnIP: "{{.S.Host}}"
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "{{.S.Host}}:{{.S.TemporalPort}}"
      httpAddress: "{{.S.Host}}:{{.S.TemporalHTTPPort}}"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: "{{.Dynamic}}"
  pollInterval: 10s
`))

// dynamicConfig: search attributes registered by `tip setup` are usable at once
// (as on the dev server) rather than after the cache's refresh.
const dynamicConfig = `system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
`

// startTemporalUI starts the standalone Web UI against the frontend.
func (s *Stack) startTemporalUI(ctx context.Context) error {
	if s.TemporalUIPort == 0 {
		return nil
	}
	if pid, ok := s.processAlive(TemporalUI); ok {
		s.logf("already running", "service", TemporalUI, "pid", pid)
		return nil
	}
	bin, err := s.tool("temporal-ui-server")
	if err != nil {
		return err
	}
	if err := checkPortFree(TemporalUI, s.Host, s.TemporalUIPort); err != nil {
		return err
	}
	dir := filepath.Join(s.dir(TemporalUI), "config")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf(`# Written by TIP's devstack at every start.
temporalGrpcAddress: %s
host: %s
port: %d
enableUi: true
defaultNamespace: %s
refreshInterval: 1m
notifyOnNewVersion: false
cors:
  cookieInsecure: true
  allowOrigins: ["http://%s"]
auth:
  enabled: false
`, s.TemporalAddress(), s.Host, s.TemporalUIPort, s.Namespace, net.JoinHostPort(s.Host, strconv.Itoa(s.TemporalUIPort)))
	if err := os.WriteFile(filepath.Join(dir, "tip.yaml"), []byte(conf), 0o644); err != nil {
		return err
	}
	pid, err := s.spawn(TemporalUI, nil, bin, "--root", s.dir(TemporalUI), "--config", "config", "--env", "tip", "start")
	if err != nil {
		return err
	}
	alive := func() bool { _, ok := s.processAlive(TemporalUI); return ok }
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.TemporalUIPort))
	if err := s.waitFor(ctx, TemporalUI, 30*time.Second, alive, func(context.Context) error {
		if !portOpen(addr) {
			return errors.New("not listening yet")
		}
		return nil
	}); err != nil {
		return err
	}
	s.logf("started", "service", TemporalUI, "pid", pid, "address", s.TemporalUI())
	return nil
}
