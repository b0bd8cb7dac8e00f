// Package metricnames lists the operations metrics TIP's collector (package
// opsmetrics) serves, by name and kind: what the alert rules
// (deploy/prometheus) and the dashboard (deploy/grafana) may read, in one
// place for their tests. deploy/grafana's TestCollectorNames holds the list
// to the names package opsmetrics defines, both ways.
package metricnames

// Kind is what a metric is: it decides the series Prometheus stores for it.
type Kind int

const (
	Gauge     Kind = iota
	Counter        // NAME (monotonic)
	Histogram      // NAME_bucket, NAME_sum, NAME_count
)

// Collector are the operations collector's metrics.
var Collector = map[string]Kind{
	"tip_source_up":    Gauge,
	"tip_source_state": Gauge,
	"tip_source_last_success_timestamp_seconds": Gauge,
	"tip_source_consecutive_failures":           Gauge,
	"tip_source_interval_seconds":               Gauge,
	"tip_source_listings":                       Gauge,
	"tip_source_weight":                         Gauge,
	"tip_source_runs_total":                     Counter,
	"tip_source_fetched_bytes_total":            Counter,
	"tip_source_last_run_duration_seconds":      Gauge,

	"tip_spam_mails_total":                     Counter,
	"tip_spam_last_mail_timestamp_seconds":     Gauge,
	"tip_spam_last_good_run_timestamp_seconds": Gauge,
	"tip_spam_collector_interval_seconds":      Gauge,

	"tip_flux_monitors":               Gauge,
	"tip_flux_checks_total":           Counter,
	"tip_flux_check_lateness_seconds": Histogram,
	"tip_flux_check_interval_seconds": Gauge,
	"tip_flux_networks":               Gauge,
	"tip_flux_agents_listed":          Gauge,

	"tip_core_running":                           Gauge,
	"tip_core_module_last_run_timestamp_seconds": Gauge,
	"tip_core_module_next_run_timestamp_seconds": Gauge,
	"tip_core_module_last_outcome":               Gauge,
	"tip_workers_polling":                        Gauge,

	"tip_ops_scrape_duration_seconds": Gauge,
	"tip_ops_scrape_errors_total":     Counter,
}
