package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultsMatchTheLocalStackAndValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Temporal.Address != "127.0.0.1:7233" || c.S3.Endpoint != "127.0.0.1:9000" || !strings.Contains(c.Postgres.DSN, "127.0.0.1:5433") {
		t.Fatalf("defaults do not point at the local stack: %+v", c)
	}
	if c.Temporal.Retention < 30*24*time.Hour {
		t.Fatalf("retention %s: finished runs must stay inspectable for 30 days", c.Temporal.Retention)
	}
}

func write(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "tip.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFileThenEnvironment(t *testing.T) {
	p := write(t, `
temporal:
  address: temporal.internal:7233
  retention: 1080h
s3:
  bucket: raw
  secure: true
`)
	t.Setenv("TIP_S3_BUCKET", "from-env")
	t.Setenv("TIP_POSTGRES_DSN", "postgres://u:p@db:5432/tip")
	t.Setenv("TIP_WORKER_SHUTDOWN_TIMEOUT", "2m")
	t.Setenv("TIP_WORKER_WORKFLOW_CACHE", "25000")
	t.Setenv("TIP_FLUX_QPS", "1500.5")
	t.Setenv("TIP_API_RATE_PER_TOKEN", "12.5")
	t.Setenv("TIP_API_MAX_LOOKUP_VALUES", "50")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Temporal.Address != "temporal.internal:7233" || c.Temporal.Retention != 1080*time.Hour {
		t.Errorf("file values not applied: %+v", c.Temporal)
	}
	if c.Temporal.Namespace != "tip" {
		t.Errorf("a key missing from the file lost its default: %q", c.Temporal.Namespace)
	}
	if c.S3.Bucket != "from-env" || !c.S3.Secure || c.Postgres.DSN != "postgres://u:p@db:5432/tip" || c.Worker.ShutdownTimeout != 2*time.Minute ||
		c.Worker.WorkflowCache != 25000 || c.Flux.QPS != 1500.5 || c.API.RatePerToken != 12.5 || c.API.MaxLookupValues != 50 {
		t.Errorf("environment did not override: %+v", c)
	}
}

func TestLoadErrorsSayWhere(t *testing.T) {
	cases := map[string]struct {
		file string
		env  map[string]string
		want string
	}{
		"unknown key":      {file: "temporal:\n  adress: x:1\n", want: "line 2"},
		"bad type":         {file: "s3:\n  secure: maybe\n", want: "line 2"},
		"bad env duration": {env: map[string]string{"TIP_TEMPORAL_RETENTION": "thirty days"}, want: "TIP_TEMPORAL_RETENTION"},
		"bad env bool":     {env: map[string]string{"TIP_S3_SECURE": "sure"}, want: "TIP_S3_SECURE"},
		"bad env int":      {env: map[string]string{"TIP_WORKER_WORKFLOW_CACHE": "10k"}, want: "TIP_WORKER_WORKFLOW_CACHE"},
		"bad env number":   {env: map[string]string{"TIP_FLUX_QPS": "fast"}, want: "TIP_FLUX_QPS"},
		"short networks":   {env: map[string]string{"TIP_FLUX_NETWORKS_INTERVAL": "30s"}, want: "flux.networks_interval"},
		"negative cache":   {env: map[string]string{"TIP_WORKER_WORKFLOW_CACHE": "-1"}, want: "worker.workflow_cache"},
		"scheme endpoint":  {env: map[string]string{"TIP_S3_ENDPOINT": "http://minio:9000"}, want: "without a scheme"},
		"short retention":  {env: map[string]string{"TIP_TEMPORAL_RETENTION": "1h"}, want: "shorter than one day"},
		"bad log level":    {env: map[string]string{"TIP_LOG_LEVEL": "loud"}, want: "log.level"},
		"metrics too fast": {env: map[string]string{"TIP_METRICS_MIN_INTERVAL": "100ms"}, want: "metrics.min_interval"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := ""
			if c.file != "" {
				path = write(t, c.file)
			} else {
				t.Chdir(t.TempDir()) // no ./tip.yaml
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load = %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

func TestLoadFindsFileByEnvThenWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("tip.yaml", []byte("temporal:\n  namespace: from-cwd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load("")
	if err != nil || c.Temporal.Namespace != "from-cwd" {
		t.Fatalf("./tip.yaml: %q, %v", c.Temporal.Namespace, err)
	}
	t.Setenv(EnvFile, write(t, "temporal:\n  namespace: from-env-file\n"))
	c, err = Load("")
	if err != nil || c.Temporal.Namespace != "from-env-file" {
		t.Fatalf("$TIP_CONFIG: %q, %v", c.Temporal.Namespace, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("a named file that does not exist loaded")
	}
	empty := write(t, "")
	if c, err := Load(empty); err != nil || c.Temporal.Address != Default().Temporal.Address {
		t.Fatalf("empty file: %v", err)
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	c := Default()
	c.Postgres.DSN = "postgres://tip:hunter2@db:5432/tip"
	r := c.Redacted()
	if strings.Contains(r.Postgres.DSN, "hunter2") || r.S3.SecretKey != "****" || c.S3.SecretKey == "****" {
		t.Fatalf("redacted = %+v", r)
	}
	if got := RedactDSN("host=db user=tip password=hunter2 dbname=tip"); strings.Contains(got, "hunter2") {
		t.Fatalf("key=value DSN: %q", got)
	}
}

// The example file documents every key with its default; it must load and equal Default.
func TestExampleFileLoadsToTheDefaults(t *testing.T) {
	c, err := Load("tip.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("example file:\n%+v\ndefaults:\n%+v", c, Default())
	}
}

// TestDefaultsAreTheRealInternets: the built-in defaults hold no value of the
// lab's: the real catalogs, the real ASN table on a public address, no lab DNS
// server, a triage wait past real flux TTLs, intervals the publishers accept.
func TestDefaultsAreTheRealInternets(t *testing.T) {
	c := Default()
	if lab := c.LabSettings(); len(lab) > 0 {
		t.Errorf("lab settings among the defaults: %+v", lab)
	}
	for _, kv := range c.Env() {
		for _, labValue := range []string{"127.0.0.1:8480", ":5354", "lab.yaml", "spam-lab.yaml", "/iptoasn/"} {
			if strings.Contains(kv, labValue) {
				t.Errorf("default %s holds the lab's %q", kv, labValue)
			}
		}
	}
	if c.Blacklists.Catalog != "config/sources.yaml" || c.Spam.Catalog != "config/spam.yaml" {
		t.Errorf("catalogs %q, %q: want the real ones", c.Blacklists.Catalog, c.Spam.Catalog)
	}
	if c.Flux.ASNTable != "https://iptoasn.com/data/ip2asn-combined.tsv.gz" || c.Flux.ASNTableAllowPrivate {
		t.Errorf("ASN table %q (allow_private %v): want iptoasn.com's, public addresses only", c.Flux.ASNTable, c.Flux.ASNTableAllowPrivate)
	}
	if c.Flux.Resolvers != "" {
		t.Errorf("flux.resolvers %q: want iterative resolution", c.Flux.Resolvers)
	}
	// Holz et al. saw flux TTLs of 0 to 300 s: the wait must reach past them.
	if c.Flux.TriageWait < 5*time.Minute {
		t.Errorf("flux.triage_wait %s is shorter than real flux TTLs", c.Flux.TriageWait)
	}
	for name, d := range map[string]time.Duration{"blacklists.interval": c.Blacklists.Interval, "spam.interval": c.Spam.Interval,
		"flux.interval": c.Flux.Interval, "flux.networks_interval": c.Flux.NetworksInterval} {
		if d < 5*time.Minute {
			t.Errorf("%s %s: the lab's pace, not a publisher's", name, d)
		}
	}
}

// oldDefaults are the built-in defaults TIP had while they were the lab's:
// config/lab.tip.yaml must give exactly these, so the lab runs as it did.
func oldDefaults() Config {
	return Config{
		Temporal:   Temporal{Address: "127.0.0.1:7233", Namespace: "tip", TaskQueue: "tip", Retention: 30 * 24 * time.Hour},
		Postgres:   Postgres{DSN: "postgres://tip:tip@127.0.0.1:5433/tip?sslmode=disable"},
		S3:         S3{Endpoint: "127.0.0.1:9000", AccessKey: "tipadmin", SecretKey: "tipadmin-secret", Bucket: "tip", Region: "us-east-1"},
		Worker:     Worker{MetricsAddress: "127.0.0.1:9464", ShutdownTimeout: 30 * time.Second, WorkflowCache: 10000, GCPercent: 100},
		Blacklists: Blacklists{Catalog: "config/lab.yaml", Interval: 2 * time.Minute},
		Spam:       Spam{Catalog: "config/spam-lab.yaml", Interval: time.Minute},
		Flux: Flux{Resolvers: "127.0.0.1:5354", QPS: 200, ASNTable: "http://127.0.0.1:8480/iptoasn/ip2asn-combined.tsv.gz", ASNTableAllowPrivate: true,
			Interval: time.Minute, NetworksInterval: 3 * time.Minute, TriageWait: 10 * time.Second, CoolDown: 24 * time.Hour, MinCheck: time.Minute, MaxCheck: time.Hour,
			Lifetime: 90 * 24 * time.Hour, NXDomainFor: 3 * 24 * time.Hour,
			Probers: 8, SummaryInterval: time.Minute}, // the probers came after the lab's old defaults
		Upstream: Upstream{FetchesPerHost: 2},
		DNS:      Default().DNS, // came after the lab's old defaults: the lab serves with the real ones
		API:      Default().API, // likewise
		Metrics:  Default().Metrics,
		Log:      Log{Level: "info", Format: "text"},
		// came after the lab's old defaults: the real windows, run more often
		Retention: Retention{FluxFullDays: 30, SourceRunsDays: 180, SnapshotsDays: 365, Interval: 10 * time.Minute},
	}
}

// TestLabFileIsTheLabsOldDefaults: config/lab.tip.yaml over the defaults gives
// every setting the lab ran with, and each of its own is recognised as the lab's.
func TestLabFileIsTheLabsOldDefaults(t *testing.T) {
	c, err := File(filepath.Join("..", LabFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := oldDefaults()
	got, exp := reflect.ValueOf(c), reflect.ValueOf(want)
	for i := 0; i < got.NumField(); i++ {
		if !reflect.DeepEqual(got.Field(i).Interface(), exp.Field(i).Interface()) {
			t.Errorf("%s: lab file %+v, the lab's %+v", got.Type().Field(i).Name, got.Field(i).Interface(), exp.Field(i).Interface())
		}
	}
	var keys []string
	for _, l := range c.LabSettings() {
		keys = append(keys, l.Key)
	}
	if want := "blacklists.catalog spam.catalog flux.resolvers flux.asn_table flux.asn_table_allow_private flux.triage_wait"; strings.Join(keys, " ") != want {
		t.Errorf("lab settings found %q, want %q", keys, want)
	}
}

func TestLabSettingsTellTheLabFromADeployment(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string // the key found, "" for none
	}{
		{"prod stack's copy of the lab spam catalog", func(c *Config) { c.Spam.Catalog = "state/prod/spam-lab.yaml" }, "spam.catalog"},
		{"own spam catalog", func(c *Config) { c.Spam.Catalog = "/etc/tip/spam.yaml" }, ""},
		{"lab DNS among others", func(c *Config) { c.Flux.Resolvers = "10.0.0.53:53, 127.0.0.1:5354" }, "flux.resolvers"},
		{"a local caching resolver", func(c *Config) { c.Flux.Resolvers = "127.0.0.1:53" }, ""},
		{"the lab's ASN table on another port", func(c *Config) { c.Flux.ASNTable = "http://127.0.0.1:40123/iptoasn/ip2asn-combined.tsv.gz" }, "flux.asn_table"},
		{"an ASN table mirror", func(c *Config) { c.Flux.ASNTable = "https://mirror.example.org/ip2asn-combined.tsv.gz" }, ""},
		{"no ASN table", func(c *Config) { c.Flux.ASNTable = "" }, ""},
		{"a wait of seconds", func(c *Config) { c.Flux.TriageWait = 30 * time.Second }, "flux.triage_wait"},
		{"a wait of minutes", func(c *Config) { c.Flux.TriageWait = 5 * time.Minute }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c)
			var got string
			for _, l := range c.LabSettings() {
				got += l.Key
			}
			if got != tc.want {
				t.Errorf("lab settings %q, want %q", got, tc.want)
			}
		})
	}
}

// TestEnvLoadsBackTheSameConfig: a process started with Env alone (as the test
// harness starts workers) runs with every setting of the configuration.
func TestEnvLoadsBackTheSameConfig(t *testing.T) {
	c, err := File(filepath.Join("..", LabFile))
	if err != nil {
		t.Fatal(err)
	}
	c.S3.Secure, c.Flux.QPS, c.Flux.Roots, c.Worker.MetricsAddress = true, 12.5, "198.41.0.4:53", ""
	env := map[string]string{}
	for _, kv := range c.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	got := Default()
	if err := applyEnv(&got, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("from Env:\n%+v\nwant:\n%+v", got, c)
	}
}
