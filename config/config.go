// Package config loads TIP's configuration: one YAML file plus TIP_* environment
// overrides. The defaults are a real deployment's on one machine: its services on
// loopback at the local stack's addresses (`make up`), the real feeds, spam
// archive and ASN table, fetched at intervals their publishers accept. The lab's
// settings are a file of their own, config/lab.tip.yaml (LabFile), which
// `make demo` and the test harness pass.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is everything a TIP process needs to reach its services.
type Config struct {
	Temporal   Temporal   `yaml:"temporal"`
	Postgres   Postgres   `yaml:"postgres"`
	S3         S3         `yaml:"s3"`
	Worker     Worker     `yaml:"worker"`
	Blacklists Blacklists `yaml:"blacklists"`
	Spam       Spam       `yaml:"spam"`
	Flux       Flux       `yaml:"flux"`
	Upstream   Upstream   `yaml:"upstream"`
	DNS        DNS        `yaml:"dns"`
	API        API        `yaml:"api"`
	Metrics    Metrics    `yaml:"metrics"`
	Log        Log        `yaml:"log"`
	Retention  Retention  `yaml:"retention"`
}

// Retention configures the data lifecycle (the data-retention module, `tip
// data prune`): how long what is kept. A zero keeps it for ever.
type Retention struct {
	// FluxFullDays is how many days flux observations (every check with its
	// answers) are kept at full resolution; older ones are summarised per
	// domain and hour, which the timelines draw, and removed. The passive DNS
	// of the checks (first and last seen of every answer) is kept for ever.
	FluxFullDays int `yaml:"flux_full_days" env:"TIP_RETENTION_FLUX_FULL_DAYS"`
	// SourceRunsDays is how many days a source run's row is kept (each
	// source's latest always is).
	SourceRunsDays int `yaml:"source_runs_days" env:"TIP_RETENTION_SOURCE_RUNS_DAYS"`
	// SnapshotsDays is how many days S3 keeps a raw feed snapshot (an S3
	// lifecycle rule on the bucket, set by tip setup and the worker's start).
	SnapshotsDays int `yaml:"snapshots_days" env:"TIP_RETENTION_SNAPSHOTS_DAYS"`
	// Interval is the delay from the end of one retention run to the next.
	Interval time.Duration `yaml:"interval" env:"TIP_RETENTION_INTERVAL"`
}

// FluxFull and SourceRuns are the windows as durations (0: for ever).
func (r Retention) FluxFull() time.Duration { return time.Duration(r.FluxFullDays) * 24 * time.Hour }
func (r Retention) SourceRuns() time.Duration {
	return time.Duration(r.SourceRunsDays) * 24 * time.Hour
}

// Metrics configures `tip serve metrics`: TIP's operations metrics (its
// sources' health, spam collectors, flux monitors, core and workers) for
// Prometheus, for a deployment without `tip serve api`, which serves them on
// api.metrics_address.
type Metrics struct {
	// Listen is where /metrics answers (host:port).
	Listen string `yaml:"listen" env:"TIP_METRICS_LISTEN"`
	// MinInterval is how long one reading of PostgreSQL and Temporal serves
	// scrapes, so that scrapers cannot multiply its cost.
	MinInterval time.Duration `yaml:"min_interval" env:"TIP_METRICS_MIN_INTERVAL"`
}

// API configures `tip serve api`: lookups, exports, the MISP feed and the
// sources' health over HTTP(S) to holders of a token (`tip api token add`).
type API struct {
	// Listen is where it answers HTTP/1.1 and HTTP/2 (host:port).
	Listen string `yaml:"listen" env:"TIP_API_LISTEN"`
	// TLSCert and TLSKey are PEM files; with both set it answers HTTPS only.
	TLSCert string `yaml:"tls_cert" env:"TIP_API_TLS_CERT"`
	TLSKey  string `yaml:"tls_key" env:"TIP_API_TLS_KEY"`
	// MetricsAddress serves Prometheus /metrics; empty disables it.
	MetricsAddress string `yaml:"metrics_address" env:"TIP_API_METRICS_ADDRESS"`
	// MaxConns bounds the open connections, MaxConnsPerClient those of one
	// client address; past them a new connection is closed at once. 0: no bound.
	MaxConns          int `yaml:"max_conns" env:"TIP_API_MAX_CONNS"`
	MaxConnsPerClient int `yaml:"max_conns_per_client" env:"TIP_API_MAX_CONNS_PER_CLIENT"`
	// RatePerToken is the requests a second one token may make on average,
	// Burst how many it may make at once; past them it is answered 429.
	// A rate of 0: no bound.
	RatePerToken float64 `yaml:"rate_per_token" env:"TIP_API_RATE_PER_TOKEN"`
	Burst        int     `yaml:"burst" env:"TIP_API_BURST"`
	// MaxBodyBytes bounds a request's body (POST /v1/lookup).
	MaxBodyBytes int `yaml:"max_body_bytes" env:"TIP_API_MAX_BODY_BYTES"`
	// MaxLookupValues bounds the values of one lookup request.
	MaxLookupValues int `yaml:"max_lookup_values" env:"TIP_API_MAX_LOOKUP_VALUES"`
	// ReadHeaderTimeout and ReadTimeout bound reading a request's head and the
	// whole request; WriteTimeout bounds writing a response, and each write of
	// a streamed export; IdleTimeout closes a kept-alive connection left unused.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout" env:"TIP_API_READ_HEADER_TIMEOUT"`
	ReadTimeout       time.Duration `yaml:"read_timeout" env:"TIP_API_READ_TIMEOUT"`
	WriteTimeout      time.Duration `yaml:"write_timeout" env:"TIP_API_WRITE_TIMEOUT"`
	IdleTimeout       time.Duration `yaml:"idle_timeout" env:"TIP_API_IDLE_TIMEOUT"`
	// MinScore is the exports' min_score when a request names none, and the
	// MISP feed's.
	MinScore float64 `yaml:"min_score" env:"TIP_API_MIN_SCORE"`
	// MISPCache is the folder the MISP feed is written to; empty: a temporary
	// folder of the process.
	MISPCache string `yaml:"misp_cache" env:"TIP_API_MISP_CACHE"`
	// Poll looks for listing changes this often besides PostgreSQL's
	// notifications (and sees analysts' overrides expire).
	Poll time.Duration `yaml:"poll" env:"TIP_API_POLL"`
}

// DNS configures `tip serve dns`: TIP's blacklists served live as Response
// Policy Zones (for resolvers, by zone transfer) and DNSBL zones (for mail
// servers).
type DNS struct {
	// Listen is where it answers, UDP and TCP (host:port).
	Listen string `yaml:"listen" env:"TIP_DNS_LISTEN"`
	// MetricsAddress serves Prometheus /metrics; empty disables it.
	MetricsAddress string `yaml:"metrics_address" env:"TIP_DNS_METRICS_ADDRESS"`
	// NS and Hostmaster name the zones' name server and contact (their SOA).
	NS         string `yaml:"ns" env:"TIP_DNS_NS"`
	Hostmaster string `yaml:"hostmaster" env:"TIP_DNS_HOSTMASTER"`
	// TTL of the records; NegativeTTL, how long a cache keeps "not listed".
	TTL         time.Duration `yaml:"ttl" env:"TIP_DNS_TTL"`
	NegativeTTL time.Duration `yaml:"negative_ttl" env:"TIP_DNS_NEGATIVE_TTL"`
	// JournalKeep is how long an RPZ zone's changes stay for IXFR.
	JournalKeep time.Duration `yaml:"journal_keep" env:"TIP_DNS_JOURNAL_KEEP"`
	// Poll looks for listing changes this often besides PostgreSQL's
	// notifications.
	Poll time.Duration `yaml:"poll" env:"TIP_DNS_POLL"`
	// RatePerClient bounds the queries a second of one client address; 0: no bound.
	RatePerClient float64 `yaml:"rate_per_client" env:"TIP_DNS_RATE_PER_CLIENT"`
	// TransferAllow are the networks (CIDRs, comma-separated) whose resolvers
	// may transfer the RPZ zones.
	TransferAllow string `yaml:"transfer_allow" env:"TIP_DNS_TRANSFER_ALLOW"`
	// Notify are the secondaries (host:port, comma-separated) sent a NOTIFY at
	// every new serial.
	Notify string `yaml:"notify" env:"TIP_DNS_NOTIFY"`
	// TSIG are the keys a zone transfer must be signed with; none: the ACL alone.
	TSIG  []TSIGKey   `yaml:"tsig"`
	RPZ   []RPZZone   `yaml:"rpz"`
	DNSBL []DNSBLZone `yaml:"dnsbl"`
}

// TSIGKey is a TSIG key (RFC 8945) of zone transfers: its name, and its secret
// (base64) in the environment variable SecretEnv (or, in a test, Secret).
type TSIGKey struct {
	Name      string `yaml:"name"`
	Secret    string `yaml:"secret"`
	SecretEnv string `yaml:"secret_env"`
}

// RPZZone is a Response Policy Zone: the listings it holds and its action
// (nxdomain, nodata, passthru, drop, or local:ADDRESS|NAME).
type RPZZone struct {
	Name     string   `yaml:"name"`
	Action   string   `yaml:"action"`
	MinScore float64  `yaml:"min_score"`
	Sources  []string `yaml:"sources"` // only these sources' listings; empty: all
	Types    []string `yaml:"types"`   // domain, ipv4, ipv6, cidr, url; empty: all but url
}

// DNSBLZone is a DNSBL zone and its lists, each answering 127.0.0.CODE.
type DNSBLZone struct {
	Name  string      `yaml:"name"`
	Lists []DNSBLList `yaml:"lists"`
}

// DNSBLList is one list of a DNSBL zone.
type DNSBLList struct {
	Code     int      `yaml:"code"`
	Name     string   `yaml:"name"`
	MinScore float64  `yaml:"min_score"`
	Sources  []string `yaml:"sources"`
	Types    []string `yaml:"types"`
}

// Upstream bounds what TIP's workers together ask of one outside server, so that
// adding workers does not hammer a feed's host (the DNS servers' bound is
// flux.qps, shared the same way).
type Upstream struct {
	// FetchesPerHost is the most downloads (blacklist feeds, allowlists, spam
	// archives) in flight to one host at once, counted across every worker of
	// the database; 0: no bound.
	FetchesPerHost int `yaml:"fetches_per_host" env:"TIP_UPSTREAM_FETCHES_PER_HOST"`
}

// Spam configures the spamtrap module.
type Spam struct {
	// Catalog is the spamtrap catalog (YAML): traps, archives, IMAP mailboxes.
	// config/spam.yaml is for the real Internet, config/spam-lab.yaml the lab's.
	Catalog string `yaml:"catalog" env:"TIP_SPAM_CATALOG"`
	// Interval is the delay from the end of one collection to the start of the next.
	Interval time.Duration `yaml:"interval" env:"TIP_SPAM_INTERVAL"`
}

// Flux configures the fast-flux module: triage of the domains other modules find,
// and the monitors of the fluxy ones.
type Flux struct {
	// Resolvers are the recursive resolvers to ask (host:port, comma-separated);
	// empty resolves iteratively from Roots.
	Resolvers string `yaml:"resolvers" env:"TIP_FLUX_RESOLVERS"`
	// Roots are the servers iterative resolution starts from (host:port,
	// comma-separated); empty: the Internet's root servers.
	Roots string `yaml:"roots" env:"TIP_FLUX_ROOTS"`
	// QPS is the most queries per second sent to one DNS server by all the
	// workers of the task queue together: each takes an equal share (qps / the
	// live workers, as they record themselves in PostgreSQL).
	QPS float64 `yaml:"qps" env:"TIP_FLUX_QPS"`
	// ASNTable is the iptoasn.com table (URL) that attributes addresses to ASNs.
	ASNTable string `yaml:"asn_table" env:"TIP_FLUX_ASN_TABLE"`
	// ASNTableAllowPrivate lets the ASN tables (this one and a spam catalog's
	// asn_table) be downloaded from loopback and private addresses, as the
	// lab's is; other downloads are allowed so by their catalog (allow_private).
	ASNTableAllowPrivate bool `yaml:"asn_table_allow_private" env:"TIP_FLUX_ASN_TABLE_ALLOW_PRIVATE"`
	// Allowlist is an optional file of CDN ASNs, prefixes and domain suffixes never
	// called flux; the CIDR allowlists of the blacklist catalog apply too.
	Allowlist string `yaml:"allowlist" env:"TIP_FLUX_ALLOWLIST"`
	// Interval is the delay from the end of one triage run to the next.
	Interval time.Duration `yaml:"interval" env:"TIP_FLUX_INTERVAL"`
	// NetworksInterval is the delay from the end of one grouping of the monitored
	// domains into flux networks (and listing their addresses) to the next.
	NetworksInterval time.Duration `yaml:"networks_interval" env:"TIP_FLUX_NETWORKS_INTERVAL"`
	// TriageWait bounds how long triage's second resolution waits for the first
	// answers' TTLs to pass: past a TTL a caching resolver answers anew.
	TriageWait time.Duration `yaml:"triage_wait" env:"TIP_FLUX_TRIAGE_WAIT"`
	// CoolDown: a benign domain is triaged again only when seen after this long.
	CoolDown time.Duration `yaml:"cooldown" env:"TIP_FLUX_COOLDOWN"`
	// MinCheck and MaxCheck bound a monitor's cadence (its TTLs set it between).
	MinCheck time.Duration `yaml:"min_check" env:"TIP_FLUX_MIN_CHECK"`
	MaxCheck time.Duration `yaml:"max_check" env:"TIP_FLUX_MAX_CHECK"`
	// Lifetime ends a monitor after this long; NXDomainFor after this long of
	// NXDOMAIN answers (the domain was taken down).
	Lifetime    time.Duration `yaml:"lifetime" env:"TIP_FLUX_LIFETIME"`
	NXDomainFor time.Duration `yaml:"nxdomain_for" env:"TIP_FLUX_NXDOMAIN_FOR"`
	// Probers is how many shards the monitored domains' checks are split into,
	// one FluxProber workflow each (flux-prober/<task queue>/<n>), run by any
	// worker: a divisor of 4096. Changing it needs the probers restarted.
	Probers int `yaml:"probers" env:"TIP_FLUX_PROBERS"`
	// SummaryInterval: a monitor hears from its prober (its summary, search
	// attributes and state query brought up to date) at least this often, and at
	// once when its state changes.
	SummaryInterval time.Duration `yaml:"summary_interval" env:"TIP_FLUX_SUMMARY_INTERVAL"`
}

// Blacklists configures the blacklist module.
type Blacklists struct {
	// Catalog is the source catalog (YAML) the worker reads: config/sources.yaml
	// lists the real feeds, config/lab.yaml the lab's.
	Catalog string `yaml:"catalog" env:"TIP_BLACKLISTS_CATALOG"`
	// Interval is the delay from the end of one refresh to the start of the next.
	Interval time.Duration `yaml:"interval" env:"TIP_BLACKLISTS_INTERVAL"`
}

// Temporal says where the Temporal frontend is and which namespace TIP uses.
type Temporal struct {
	Address   string        `yaml:"address" env:"TIP_TEMPORAL_ADDRESS"`
	Namespace string        `yaml:"namespace" env:"TIP_TEMPORAL_NAMESPACE"`
	TaskQueue string        `yaml:"task_queue" env:"TIP_TEMPORAL_TASK_QUEUE"`
	Retention time.Duration `yaml:"retention" env:"TIP_TEMPORAL_RETENTION"`
}

// Postgres holds the connection string of TIP's database.
type Postgres struct {
	DSN string `yaml:"dsn" env:"TIP_POSTGRES_DSN"`
}

// S3 describes the S3-compatible store that keeps raw feeds and raw mail.
type S3 struct {
	Endpoint  string `yaml:"endpoint" env:"TIP_S3_ENDPOINT"`
	AccessKey string `yaml:"access_key" env:"TIP_S3_ACCESS_KEY"`
	SecretKey string `yaml:"secret_key" env:"TIP_S3_SECRET_KEY"`
	Bucket    string `yaml:"bucket" env:"TIP_S3_BUCKET"`
	Region    string `yaml:"region" env:"TIP_S3_REGION"`
	Secure    bool   `yaml:"secure" env:"TIP_S3_SECURE"`
}

// Worker configures `tip worker`.
type Worker struct {
	// MetricsAddress serves Prometheus /metrics; empty disables it.
	MetricsAddress string `yaml:"metrics_address" env:"TIP_WORKER_METRICS_ADDRESS"`
	// ShutdownTimeout bounds how long running activities get to finish on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"TIP_WORKER_SHUTDOWN_TIMEOUT"`
	// WorkflowCache is how many workflow executions the worker keeps in memory
	// between their tasks (the SDK's sticky cache; one worker process has one).
	// A flux monitor evicted from it replays its history at its next check, so
	// a worker running more monitors than this spends CPU on replays; each
	// cached monitor costs some kilobytes.
	WorkflowCache int `yaml:"workflow_cache" env:"TIP_WORKER_WORKFLOW_CACHE"`
	// GCPercent is the Go garbage collector's target (GOGC, which it overrides):
	// the heap may grow this many percent over what is live before a collection.
	// A worker holding thousands of flux monitors keeps a large heap that lives
	// long and allocates little: 10 keeps it near what is live for a few
	// percent of a core (the flux benchmark). Go's default, 100, suits workers
	// that load blacklists and ingest spam, which allocate fast.
	GCPercent int `yaml:"gc_percent" env:"TIP_WORKER_GC_PERCENT"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level" env:"TIP_LOG_LEVEL"`   // debug, info, warn, error
	Format string `yaml:"format" env:"TIP_LOG_FORMAT"` // text or json
}

// LabFile is the configuration of the lab (`tip lab serve`, `make demo`), from
// the repository's root: its catalogs, DNS server and ASN table, and intervals
// and waits for its clock, which runs 720 times faster than the real one.
const LabFile = "config/lab.tip.yaml"

// Default returns the configuration of a real deployment whose services are
// those of the local stack (`make up`).
func Default() Config {
	return Config{
		Temporal: Temporal{
			Address:   "127.0.0.1:7233",
			Namespace: "tip",
			TaskQueue: "tip",
			Retention: 30 * 24 * time.Hour,
		},
		Postgres: Postgres{DSN: "postgres://tip:tip@127.0.0.1:5433/tip?sslmode=disable"},
		S3: S3{
			Endpoint:  "127.0.0.1:9000",
			AccessKey: "tipadmin",
			SecretKey: "tipadmin-secret",
			Bucket:    "tip",
			Region:    "us-east-1",
		},
		Worker: Worker{MetricsAddress: "127.0.0.1:9464", ShutdownTimeout: 30 * time.Second, WorkflowCache: 10000, GCPercent: 100},
		// The feeds and archives keep intervals of their own in their catalogs
		// (a publisher's fair-use rule): these only say how often TIP looks.
		Blacklists: Blacklists{Catalog: "config/sources.yaml", Interval: time.Hour},
		Spam:       Spam{Catalog: "config/spam.yaml", Interval: 5 * time.Minute},
		// No resolver: TIP resolves iteratively from the root servers, so every
		// answer comes from the authoritative servers, no cache between.
		Flux: Flux{QPS: 200, ASNTable: "https://iptoasn.com/data/ip2asn-combined.tsv.gz",
			// Flux TTLs run to 300 s (Holz et al.), so a second resolution
			// waits minutes for the first answers to expire in a cache.
			Interval: 10 * time.Minute, NetworksInterval: time.Hour, TriageWait: 10 * time.Minute, CoolDown: 24 * time.Hour, MinCheck: time.Minute, MaxCheck: time.Hour,
			Lifetime: 90 * 24 * time.Hour, NXDomainFor: 3 * 24 * time.Hour, Probers: 8, SummaryInterval: time.Hour},
		Upstream: Upstream{FetchesPerHost: 2},
		DNS: DNS{Listen: "127.0.0.1:5300", MetricsAddress: "127.0.0.1:9465", NS: "localhost.", TTL: 5 * time.Minute,
			NegativeTTL: time.Minute, JournalKeep: 24 * time.Hour, Poll: 30 * time.Second, RatePerClient: 5000,
			TransferAllow: "127.0.0.0/8,::1/128",
			// Above 0.5 a listing is more likely right than wrong by its sources' weights.
			RPZ: []RPZZone{{Name: "rpz.tip.", Action: "nxdomain", MinScore: 0.5}},
			DNSBL: []DNSBLZone{{Name: "bl.tip.", Lists: []DNSBLList{
				{Code: 2, Name: "aggregate", MinScore: 0.5},
				{Code: 3, Name: "spamtrap senders", Sources: []string{"tip-spamtrap-senders"}},
				{Code: 4, Name: "flux agents", Sources: []string{"tip-flux-agents"}},
			}}}},
		API: API{Listen: "127.0.0.1:8470", MetricsAddress: "127.0.0.1:9470", MaxConns: 1024, MaxConnsPerClient: 64,
			RatePerToken: 50, Burst: 100, MaxBodyBytes: 1 << 20, MaxLookupValues: 1000,
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
			// As the RPZ zone and the aggregate DNSBL list: above 0.5 a listing is
			// more likely right than wrong.
			MinScore: 0.5, Poll: 30 * time.Second},
		Metrics: Metrics{Listen: "127.0.0.1:9471", MinInterval: 10 * time.Second},
		Log:     Log{Level: "info", Format: "text"},
		// A month of checks at full resolution draws a monitor's recent weeks
		// check by check; hourly summaries keep its whole life for a tenth of
		// the bytes at a 5-minute cadence. Source runs: half a year of health.
		Retention: Retention{FluxFullDays: 30, SourceRunsDays: 180, SnapshotsDays: 365, Interval: time.Hour},
	}
}

// EnvFile names the environment variable that points at the YAML file.
const EnvFile = "TIP_CONFIG"

// Load reads the YAML file Path(path) names, lays it over the defaults, then
// applies TIP_* environment variables. Unknown keys are errors, so a typo never
// silently falls back to a default.
func Load(path string) (Config, error) {
	cfg := Default()
	if path = Path(path); path != "" {
		var err error
		if cfg, err = File(path); err != nil {
			return cfg, err
		}
	}
	if err := applyEnv(&cfg, os.LookupEnv); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Path is the file Load reads: path, else $TIP_CONFIG, else ./tip.yaml when it
// exists; empty: none, the defaults.
func Path(path string) string {
	if path == "" {
		path = os.Getenv(EnvFile)
	}
	if path == "" {
		if _, err := os.Stat("tip.yaml"); err == nil {
			path = "tip.yaml"
		}
	}
	return path
}

// File is the YAML file at path laid over the defaults, without the environment
// and unvalidated: what Load starts from.
func File(path string) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := decodeYAML(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func decodeYAML(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) { // empty file: defaults
		return err
	}
	return nil
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Temporal.Address == "":
		return errors.New("config: temporal.address is empty")
	case c.Temporal.Namespace == "":
		return errors.New("config: temporal.namespace is empty")
	case c.Temporal.TaskQueue == "":
		return errors.New("config: temporal.task_queue is empty")
	case c.Temporal.Retention < 24*time.Hour:
		return fmt.Errorf("config: temporal.retention %s is shorter than one day", c.Temporal.Retention)
	case c.Postgres.DSN == "":
		return errors.New("config: postgres.dsn is empty")
	case c.S3.Endpoint == "":
		return errors.New("config: s3.endpoint is empty")
	case strings.Contains(c.S3.Endpoint, "://"):
		return fmt.Errorf("config: s3.endpoint %q must be host:port without a scheme (set s3.secure for TLS)", c.S3.Endpoint)
	case c.S3.Bucket == "":
		return errors.New("config: s3.bucket is empty")
	case c.Spam.Interval < 10*time.Second:
		return fmt.Errorf("config: spam.interval %s is shorter than 10s", c.Spam.Interval)
	case c.Blacklists.Interval < time.Minute:
		return fmt.Errorf("config: blacklists.interval %s is shorter than a minute", c.Blacklists.Interval)
	case c.Flux.Interval < 10*time.Second:
		return fmt.Errorf("config: flux.interval %s is shorter than 10s", c.Flux.Interval)
	case c.Flux.NetworksInterval < time.Minute:
		return fmt.Errorf("config: flux.networks_interval %s is shorter than a minute", c.Flux.NetworksInterval)
	case c.Flux.MinCheck < time.Second || c.Flux.MaxCheck < c.Flux.MinCheck:
		return fmt.Errorf("config: flux.min_check %s and max_check %s: want 1s <= min_check <= max_check", c.Flux.MinCheck, c.Flux.MaxCheck)
	case c.Flux.TriageWait < time.Second:
		return fmt.Errorf("config: flux.triage_wait %s is shorter than a second", c.Flux.TriageWait)
	case c.Retention.FluxFullDays < 0 || c.Retention.SourceRunsDays < 0 || c.Retention.SnapshotsDays < 0:
		return fmt.Errorf("config: retention days %d, %d, %d: want 0 (for ever) or more", c.Retention.FluxFullDays, c.Retention.SourceRunsDays, c.Retention.SnapshotsDays)
	case c.Retention.Interval < time.Minute:
		return fmt.Errorf("config: retention.interval %s is shorter than a minute", c.Retention.Interval)
	case c.Worker.WorkflowCache < 0:
		return fmt.Errorf("config: worker.workflow_cache %d: want 0 (no cache) or more", c.Worker.WorkflowCache)
	case c.Worker.GCPercent < 10 || c.Worker.GCPercent > 1000:
		return fmt.Errorf("config: worker.gc_percent %d: want 10 to 1000 (Go's default is 100)", c.Worker.GCPercent)
	case c.Upstream.FetchesPerHost < 0:
		return fmt.Errorf("config: upstream.fetches_per_host %d: want 0 (no bound) or more", c.Upstream.FetchesPerHost)
	case c.Flux.QPS <= 0:
		return fmt.Errorf("config: flux.qps %v: want more than 0", c.Flux.QPS)
	case c.Flux.Probers < 1 || c.Flux.Probers > 256 || 4096%c.Flux.Probers != 0:
		return fmt.Errorf("config: flux.probers %d: want a divisor of 4096 from 1 to 256 (1, 2, 4, … 256)", c.Flux.Probers)
	case c.Flux.SummaryInterval < 10*time.Second:
		return fmt.Errorf("config: flux.summary_interval %s: want at least 10s", c.Flux.SummaryInterval)
	case c.Flux.Lifetime <= 0 || c.Flux.NXDomainFor <= 0:
		return errors.New("config: flux.lifetime and flux.nxdomain_for must be positive")
	case c.Metrics.MinInterval < time.Second:
		return fmt.Errorf("config: metrics.min_interval %s is shorter than a second", c.Metrics.MinInterval)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log.level %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("config: log.format %q is not text or json", c.Log.Format)
	}
	return nil
}

// applyEnv sets every field whose `env` variable is present.
func applyEnv(cfg *Config, lookup func(string) (string, bool)) error {
	return eachEnv(reflect.ValueOf(cfg).Elem(), func(name string, fv reflect.Value) error {
		raw, ok := lookup(name)
		if !ok {
			return nil
		}
		if err := setField(fv, raw); err != nil {
			return fmt.Errorf("config: environment %s=%q: %w", name, raw, err)
		}
		return nil
	})
}

// Env is c as TIP_* environment variables, NAME=value, one for every setting:
// a process given them (and no file) loads c.
func (c Config) Env() []string {
	var env []string
	_ = eachEnv(reflect.ValueOf(c), func(name string, fv reflect.Value) error {
		env = append(env, name+"="+formatField(fv))
		return nil
	})
	return env
}

// eachEnv calls fn for every field of the struct v that has an `env` tag.
func eachEnv(v reflect.Value, fn func(name string, fv reflect.Value) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			if err := eachEnv(fv, fn); err != nil {
				return err
			}
			continue
		}
		if name := f.Tag.Get("env"); name != "" {
			if err := fn(name, fv); err != nil {
				return err
			}
		}
	}
	return nil
}

// formatField writes a field as setField reads it back.
func formatField(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

func setField(v reflect.Value, raw string) error {
	switch v.Interface().(type) {
	case string:
		v.SetString(raw)
	case bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("want true or false")
		}
		v.SetBool(b)
	case int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return errors.New("want a whole number")
		}
		v.SetInt(int64(n))
	case float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return errors.New("want a number")
		}
		v.SetFloat(f)
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return errors.New("want a duration such as 720h or 30s")
		}
		v.SetInt(int64(d))
	default:
		return fmt.Errorf("unsupported field type %s", v.Type())
	}
	return nil
}

// Redacted returns a copy safe to print: secrets and DSN passwords are masked.
func (c Config) Redacted() Config {
	if c.S3.SecretKey != "" {
		c.S3.SecretKey = "****"
	}
	c.Postgres.DSN = RedactDSN(c.Postgres.DSN)
	return c
}

// RedactDSN masks the password of a postgres:// URL or a key=value DSN.
func RedactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		at := strings.Index(rest, "@")
		if at < 0 {
			return dsn
		}
		userinfo := rest[:at]
		if colon := strings.Index(userinfo, ":"); colon >= 0 {
			return dsn[:i+3] + userinfo[:colon] + ":****" + rest[at:]
		}
		return dsn
	}
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if strings.HasPrefix(f, "password=") {
			fields[i] = "password=****"
		}
	}
	return strings.Join(fields, " ")
}
