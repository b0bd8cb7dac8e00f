package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// DNSArgs are the arguments of the `tip` binary that serve the blacklists over
// DNS: what `tip dev up --dns` starts as DNS, and what deploy/ runs.
func DNSArgs() []string { return []string{"serve", "dns"} }

// APIArgs are the arguments of the `tip` binary that serve TIP's HTTP API: what
// `tip dev up --api` starts as API, and what deploy/ runs.
func APIArgs() []string { return []string{"serve", "api"} }

// WorkerArgs are the arguments of the `tip` binary that run a worker process:
// what `tip dev up --worker` starts as each WorkerService, and what deploy/ runs.
func WorkerArgs() []string { return []string{"worker"} }

// AgentArgs are the arguments of the `tip` binary that run a spamtrap agent from
// its folder dir: what `tip dev up --lab` starts as Agent, and what deploy/ runs.
func AgentArgs(dir string) []string { return []string{"agent", "serve", "--dir", dir} }

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
	if err := s.temporalSchema(ctx, sqlTool); err != nil {
		return err
	}
	if err := s.writeServerConfig(); err != nil {
		return err
	}
	pid, err := s.spawn(Temporal, nil, server, ServerArgs(s.dir(Temporal))...)
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

// SchemaParams say where the schema tool finds PostgreSQL and as whom.
type SchemaParams struct {
	Host           string
	Port           string // a string, so a deployment may pass "$POSTGRES_PORT"
	User, Password string
}

// SchemaStep is one run of the Temporal SQL schema tool (temporal-sql-tool) on
// one of the server's databases. OKIfExists: the step fails harmlessly, saying
// "already exists", on a database set up before.
type SchemaStep struct {
	Database   string
	Args       []string // the tool's arguments, without the tool itself
	OKIfExists bool
}

// SchemaSteps are the schema tool's runs that set up the server's two
// databases, in order, for each: create it unless it exists, lay down the
// versioning tables on a new one (setup-schema -v 0.0 fails on a database that has
// them, the sign it was set up before), and update the schema to the newest the
// tool embeds (nothing to do when it is current). The production-like stack runs
// them at every up; deploy/ runs the same (go run ./deploy/gen writes them).
func SchemaSteps(p SchemaParams) []SchemaStep {
	var steps []SchemaStep
	for _, db := range []struct{ name, schema string }{
		{TemporalDB, "postgresql/v12/temporal"}, {TemporalVisibilityDB, "postgresql/v12/visibility"},
	} {
		base := []string{"--plugin", "postgres12", "--endpoint", p.Host, "--port", p.Port,
			"--user", p.User, "--password", p.Password, "--database", db.name}
		with := func(args ...string) []string { return append(slices.Clip(base), args...) }
		steps = append(steps,
			SchemaStep{Database: db.name, Args: with("create-database"), OKIfExists: true},
			SchemaStep{Database: db.name, Args: with("setup-schema", "-v", "0.0"), OKIfExists: true},
			SchemaStep{Database: db.name, Args: with("update-schema", "--schema-name", db.schema)},
		)
	}
	return steps
}

// temporalSchema runs SchemaSteps with the schema tool against the stack's
// PostgreSQL, each logged to the server's log.
func (s *Stack) temporalSchema(ctx context.Context, tool string) error {
	for _, step := range SchemaSteps(SchemaParams{Host: s.Host, Port: strconv.Itoa(s.PostgresPort), User: s.PGUser, Password: s.PGPassword}) {
		out, err := exec.CommandContext(ctx, tool, step.Args...).CombinedOutput()
		if logf, lerr := os.OpenFile(s.logFile(Temporal), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); lerr == nil {
			fmt.Fprintf(logf, "$ temporal-sql-tool --database %s %s\n%s", step.Database, strings.Join(step.Command(), " "), out)
			logf.Close()
		}
		if err != nil && !(step.OKIfExists && strings.Contains(string(out), "already exists")) {
			return fmt.Errorf("temporal schema tool: %s on %s: %v\n%s", strings.Join(step.Command(), " "), step.Database, err, out)
		}
	}
	return nil
}

// Command is the step's subcommand and its flags, without the connection flags.
func (st SchemaStep) Command() []string {
	for i, a := range st.Args {
		if a == "--database" && i+2 <= len(st.Args) {
			return st.Args[i+2:]
		}
	}
	return st.Args
}

// ServerArgs are the Temporal server's arguments (after the temporal-server
// binary) with its configuration in root/config/tip.yaml (ServerConfig).
func ServerArgs(root string) []string {
	return []string{"--root", root, "--config", "config", "--env", "tip", "--allow-no-auth", "start"}
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
	conf, err := ServerConfig(s.serverConfigParams())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tip.yaml"), conf, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "dynamic.yaml"), []byte(DynamicConfig), 0o644)
}

// serverConfigParams: the stack's server on loopback, its configuration in its folder.
func (s *Stack) serverConfigParams() ServerConfigParams {
	return ServerConfigParams{
		Comment: "Written by TIP's devstack at every start: edit the code, not this file.",
		BindIP:  s.Host, BroadcastAddress: s.Host, FrontendHost: s.Host,
		Postgres: s.postgresAddr(), PGUser: s.PGUser, PGPassword: s.PGPassword,
		FrontendPort: s.TemporalPort, FrontendHTTPPort: s.TemporalHTTPPort, MetricsPort: s.TemporalMetricPort,
		Ports: s.Server, DynamicConfig: filepath.Join(s.dir(Temporal), "config", "dynamic.yaml"),
	}
}

// ServerConfigParams are what the Temporal server's configuration depends on.
// On loopback every address is the stack's host; in a container the server binds
// 0.0.0.0 and broadcasts the container's own address to its peers.
type ServerConfigParams struct {
	Comment          string // the file's first line, after "# "
	BindIP           string // every service's gRPC, membership and metrics listeners
	BroadcastAddress string // the IP the server's services reach each other on
	FrontendHost     string // the frontend's host in the cluster metadata
	Postgres         string // host:port of PostgreSQL
	PGUser           string
	PGPassword       string
	FrontendPort     int
	FrontendHTTPPort int
	MetricsPort      int
	Ports            ServerPorts
	DynamicConfig    string // path of the dynamic configuration (DynamicConfig)
}

// ServerConfig is the Temporal server's static configuration (its --env file).
func ServerConfig(p ServerConfigParams) ([]byte, error) {
	var b bytes.Buffer
	if err := serverConfig.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("temporal server config: %w", err)
	}
	return b.Bytes(), nil
}

// serverConfig is the Temporal server's configuration on PostgreSQL. Four history
// shards suit one machine; a cluster sets more before its first start (they
// cannot change later).
var serverConfig = template.Must(template.New("server").Parse(`# {{.Comment}}
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
        connectAddr: "{{.Postgres}}"
        connectProtocol: tcp
        user: "{{.PGUser}}"
        password: "{{.PGPassword}}"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "{{.Postgres}}"
        connectProtocol: tcp
        user: "{{.PGUser}}"
        password: "{{.PGPassword}}"
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "{{.BroadcastAddress}}"
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "{{.BindIP}}:{{.MetricsPort}}"
services:
  frontend:
    rpc:
      grpcPort: {{.FrontendPort}}
      membershipPort: {{.Ports.FrontendMembership}}
      bindOnIP: "{{.BindIP}}"
      httpPort: {{.FrontendHTTPPort}}
  history:
    rpc:
      grpcPort: {{.Ports.History}}
      membershipPort: {{.Ports.HistoryMembership}}
      bindOnIP: "{{.BindIP}}"
  matching:
    rpc:
      grpcPort: {{.Ports.Matching}}
      membershipPort: {{.Ports.MatchingMembership}}
      bindOnIP: "{{.BindIP}}"
  worker:
    rpc:
      grpcPort: {{.Ports.Worker}}
      membershipPort: {{.Ports.WorkerMembership}}
      bindOnIP: "{{.BindIP}}"
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
      rpcAddress: "{{.FrontendHost}}:{{.FrontendPort}}"
      httpAddress: "{{.FrontendHost}}:{{.FrontendHTTPPort}}"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: "{{.DynamicConfig}}"
  pollInterval: 10s
`))

// DynamicConfig is the Temporal server's dynamic configuration: search
// attributes registered by `tip setup` are usable at once (as on the dev server)
// rather than after the cache's refresh.
const DynamicConfig = `system.forceSearchAttributesCacheRefreshOnRead:
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
