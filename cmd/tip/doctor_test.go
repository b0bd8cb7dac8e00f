package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/config"
)

// TestDoctorWarnsOfSettingsThatDoNotFitWhereTIPRuns: the lab's settings are
// quiet in the lab (loopback services, the lab's catalogs) and in a real
// deployment that has none of them; each is a warning, naming the setting, in a
// deployment (a service elsewhere, or the real catalogs beside the lab's DNS or
// ASN table); worker metrics open to other hosts are a warning everywhere.
func TestDoctorWarnsOfSettingsThatDoNotFitWhereTIPRuns(t *testing.T) {
	lab, err := config.File(filepath.Join("..", "..", config.LabFile))
	if err != nil {
		t.Fatal(err)
	}
	remote := func(c *config.Config) {
		c.Temporal.Address = "temporal.cert.example:7233"
		c.Postgres.DSN = "postgres://tip:secret@db.cert.example:5432/tip"
		c.S3.Endpoint = "s3.cert.example:9000"
	}
	labKeys := []string{"blacklists.catalog", "spam.catalog", "flux.resolvers", "flux.asn_table", "flux.asn_table_allow_private", "flux.triage_wait"}
	cases := []struct {
		name string
		cfg  config.Config
		edit func(*config.Config)
		want []string // each a warning's start, in order; none: no warning
	}{
		{"the lab (make demo)", lab, func(*config.Config) {}, nil},
		{"the production-like lab stack", lab, func(c *config.Config) { c.Spam.Catalog = "state/prod/spam-lab.yaml" }, nil},
		{"the defaults on the local stack", config.Default(), func(*config.Config) {}, nil},
		{"the defaults on remote services", config.Default(), remote, nil},
		{"Unix socket and IPv6 loopback are local", lab, func(c *config.Config) {
			c.Postgres.DSN = "host=/var/run/postgresql dbname=tip"
			c.Temporal.Address = "[::1]:7233"
			c.S3.Endpoint = "localhost:9000"
		}, nil},
		{"the lab's file on remote services", lab, remote, labKeys},
		{"only PostgreSQL remote", lab, func(c *config.Config) { c.Postgres.DSN = "host=10.1.2.3 port=5432 dbname=tip" }, labKeys},
		{"real catalogs with the lab's DNS and ASN table", config.Default(), func(c *config.Config) {
			c.Flux.Resolvers = "127.0.0.1:5354"
			c.Flux.ASNTable = "http://127.0.0.1:8480/iptoasn/ip2asn-combined.tsv.gz"
		}, []string{"flux.resolvers", "flux.asn_table"}},
		{"the lab's spam catalog beside the real feeds", config.Default(), func(c *config.Config) { c.Spam.Catalog = "config/spam-lab.yaml" },
			[]string{"spam.catalog"}},
		{"a triage wait of seconds on remote services", config.Default(), func(c *config.Config) {
			remote(c)
			c.Flux.TriageWait = 10 * time.Second
		}, []string{"flux.triage_wait"}},
		{"metrics on every address", config.Default(), func(c *config.Config) { c.Worker.MetricsAddress = ":9464" }, []string{"worker.metrics_address"}},
		{"metrics on a routable address", lab, func(c *config.Config) { c.Worker.MetricsAddress = "192.0.2.10:9464" }, []string{"worker.metrics_address"}},
		{"metrics off", config.Default(), func(c *config.Config) { c.Worker.MetricsAddress = "" }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			tc.edit(&cfg)
			got := checkSettings(cfg)
			if len(got) != len(tc.want) {
				t.Fatalf("%d warnings, want %d (%q):\n%s", len(got), len(tc.want), tc.want, doctorText(got))
			}
			for i, r := range got {
				if r.verdict != warn || r.service != "config" || !strings.HasPrefix(r.detail, tc.want[i]+" ") {
					t.Errorf("warning %d, want one about %s: %+v", i, tc.want[i], r)
				}
			}
			if strings.Contains(doctorText(got), "secret") {
				t.Errorf("a warning shows the password:\n%s", doctorText(got))
			}
		})
	}
}

func doctorText(results []checkResult) string {
	var b strings.Builder
	printDoctor(&b, results)
	return b.String()
}
