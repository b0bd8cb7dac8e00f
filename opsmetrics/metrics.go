package opsmetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sourceStates are the values of tip_source_state's label: a source never
// run yet is in none of them (and not up).
var sourceStates = []string{"ok", "failing", "dead"}

// monitorStates are the values of tip_flux_monitors' label.
var monitorStates = []string{"watching", "stable", "paused", "stopped"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// metricDescs describe every metric a reading makes, by the names the alert
// rules and the dashboard use.
type metricDescs struct {
	sourceUp, sourceState, sourceLastSuccess, sourceFailures, sourceInterval, sourceListings, sourceWeight,
	sourceRuns, sourceBytes, sourceLastRun,
	spamMails, spamLastMail, spamLastRun, spamInterval,
	fluxMonitors, fluxChecks, fluxLateness, fluxInterval, fluxNetworks, fluxAgents,
	coreRunning, moduleLastRun, moduleNextRun, moduleOutcome, workers,
	took *prometheus.Desc
}

var descs = metricDescs{
	sourceUp:          desc("tip_source_up", "1 when the source's health is ok (as `tip status` says), else 0. The tip_source_* series are those of the catalog's enabled sources and TIP's own.", "source"),
	sourceState:       desc("tip_source_state", "1 for the source's health (ok, failing or dead), 0 for the others; all 0 before its first run.", "source", "state"),
	sourceLastSuccess: desc("tip_source_last_success_timestamp_seconds", "When the source was last loaded successfully (absent: never).", "source"),
	sourceFailures:    desc("tip_source_consecutive_failures", "The source's failed runs in a row.", "source"),
	sourceInterval:    desc("tip_source_interval_seconds", "The interval the source is fetched at: its catalog's (TIP's own sources: their module's).", "source"),
	sourceListings:    desc("tip_source_listings", "The source's active listings, by indicator type.", "source", "type"),
	sourceWeight:      desc("tip_source_weight", "The source's weight (0..1) at the last metrics computation.", "source"),
	sourceRuns:        desc("tip_source_runs_total", "The source's recorded runs, by status as stored (loaded, unchanged, dead, malformed, failed).", "source", "status"),
	sourceBytes:       desc("tip_source_fetched_bytes_total", "Bytes the source's recorded runs fetched.", "source"),
	sourceLastRun:     desc("tip_source_last_run_duration_seconds", "How long the source's last run took.", "source"),

	spamMails:    desc("tip_spam_mails_total", "Mails recorded from the spam collector (the spam catalog's enabled ones).", "collector"),
	spamLastMail: desc("tip_spam_last_mail_timestamp_seconds", "When a mail of the spam collector was last recorded.", "collector"),
	spamLastRun:  desc("tip_spam_last_good_run_timestamp_seconds", "When the spam collector's last run that did not fail started; 0 when none did.", "collector"),
	spamInterval: desc("tip_spam_collector_interval_seconds", "The spam collector's catalog interval.", "collector"),

	fluxMonitors: desc("tip_flux_monitors", "Flux monitors by state.", "state"),
	fluxChecks:   desc("tip_flux_checks_total", "Checks the flux monitors recorded."),
	fluxLateness: desc("tip_flux_check_lateness_seconds", "How long after it was due each flux check ran, over the checks recorded since the process started (and the hour before)."),
	fluxInterval: desc("tip_flux_check_interval_seconds", "The configured flux interval (flux.interval)."),
	fluxNetworks: desc("tip_flux_networks", "Flux networks, as the last grouping found them."),
	fluxAgents:   desc("tip_flux_agents_listed", "Active listings of tip-flux-agents."),

	coreRunning:   desc("tip_core_running", "1 when the core workflow (tip-core) runs."),
	moduleLastRun: desc("tip_core_module_last_run_timestamp_seconds", "When the module's last run ended.", "module"),
	moduleNextRun: desc("tip_core_module_next_run_timestamp_seconds", "When the module's next run is due (absent while it runs, or paused or disabled).", "module"),
	moduleOutcome: desc("tip_core_module_last_outcome", "1 for how the module's last run ended (ok, failed), 0 for the other outcomes seen.", "module", "outcome"),
	workers:       desc("tip_workers_polling", "Workers polling the task queue in the last two minutes, as `tip status` counts them."),

	took: desc("tip_ops_scrape_duration_seconds", "How long the last reading of the operations metrics took."),
}

func (d *metricDescs) all() []*prometheus.Desc {
	return []*prometheus.Desc{d.sourceUp, d.sourceState, d.sourceLastSuccess, d.sourceFailures, d.sourceInterval, d.sourceListings,
		d.sourceWeight, d.sourceRuns, d.sourceBytes, d.sourceLastRun,
		d.spamMails, d.spamLastMail, d.spamLastRun, d.spamInterval,
		d.fluxMonitors, d.fluxChecks, d.fluxLateness, d.fluxInterval, d.fluxNetworks, d.fluxAgents,
		d.coreRunning, d.moduleLastRun, d.moduleNextRun, d.moduleOutcome, d.workers, d.took}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func timestamp(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// emit sends the reading's metrics: the parts read, and the lateness
// histogram and the flux interval, which the process holds.
func (r *reading) emit(ch chan<- prometheus.Metric, fluxInterval time.Duration) {
	if r.sourcesOK {
		for _, s := range r.sources {
			gauge(ch, descs.sourceUp, bool01(s.Health == "ok"), s.Name)
			for _, st := range sourceStates {
				gauge(ch, descs.sourceState, bool01(s.Health == st), s.Name, st)
			}
			if s.LastSuccess != nil {
				gauge(ch, descs.sourceLastSuccess, timestamp(*s.LastSuccess), s.Name)
			}
			gauge(ch, descs.sourceFailures, float64(s.ConsecutiveFailures), s.Name)
			if d, ok := r.intervals[s.Name]; ok {
				gauge(ch, descs.sourceInterval, d.Seconds(), s.Name)
			}
			for typ, n := range s.Listings {
				gauge(ch, descs.sourceListings, float64(n), s.Name, typ)
			}
			if s.Weight != nil {
				gauge(ch, descs.sourceWeight, *s.Weight, s.Name)
			}
			for status, n := range s.Runs {
				counter(ch, descs.sourceRuns, float64(n), s.Name, status)
			}
			counter(ch, descs.sourceBytes, float64(s.FetchedBytes), s.Name)
			if s.LastRunDuration != nil {
				gauge(ch, descs.sourceLastRun, s.LastRunDuration.Seconds(), s.Name)
			}
		}
	}
	if r.spamOK {
		for _, c := range r.spam {
			counter(ch, descs.spamMails, float64(c.Mails), c.Name)
			if c.LastMail != nil {
				gauge(ch, descs.spamLastMail, timestamp(*c.LastMail), c.Name)
			}
			// A collector that never ran well reads as last run at 0 (1970):
			// its age grows as a failing one's does, and the silence alert
			// catches one that has failed from its first run.
			lastRun := 0.0
			if c.LastRun != nil {
				lastRun = timestamp(*c.LastRun)
			}
			gauge(ch, descs.spamLastRun, lastRun, c.Name)
			if c.interval > 0 {
				gauge(ch, descs.spamInterval, c.interval.Seconds(), c.Name)
			}
		}
	}
	if f := r.flux; f != nil {
		for i, n := range []int64{f.Watching, f.Stable, f.Paused, f.Stopped} {
			gauge(ch, descs.fluxMonitors, float64(n), monitorStates[i])
		}
		counter(ch, descs.fluxChecks, float64(r.checks))
		gauge(ch, descs.fluxNetworks, float64(f.Networks))
		gauge(ch, descs.fluxAgents, float64(f.AgentsListed))
	}
	ch <- prometheus.MustNewConstHistogram(descs.fluxLateness, r.lateness.count, r.lateness.sum, r.lateness.buckets())
	gauge(ch, descs.fluxInterval, fluxInterval.Seconds())
	if r.running != nil {
		gauge(ch, descs.coreRunning, bool01(*r.running))
	}
	for _, m := range r.modules {
		if l := m.Last; l != nil {
			gauge(ch, descs.moduleLastRun, timestamp(l.Finished), m.Name)
			for _, o := range r.outcomes {
				gauge(ch, descs.moduleOutcome, bool01(o == outcome(l)), m.Name, o)
			}
		}
		if m.Running == "" && !m.Next.IsZero() && m.Enabled && !m.Paused {
			gauge(ch, descs.moduleNextRun, timestamp(m.Next), m.Name)
		}
	}
	if r.pollers != nil {
		gauge(ch, descs.workers, float64(*r.pollers))
	}
	gauge(ch, descs.took, r.took.Seconds())
}
