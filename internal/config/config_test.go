package config

import (
	"os"
	"path/filepath"
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
		c.Worker.WorkflowCache != 25000 || c.Flux.QPS != 1500.5 {
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
	c, err := Load(filepath.Join("..", "..", "config", "tip.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c != Default() {
		t.Fatalf("example file:\n%+v\ndefaults:\n%+v", c, Default())
	}
}
