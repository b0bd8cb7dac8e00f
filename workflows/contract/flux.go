package contract

import (
	"fmt"
	"hash/fnv"
	"time"

	"github.com/tip-project/tip/flux"
)

// The flux module: FluxTriage judges the domains other modules found and starts a
// FluxMonitor for each fluxy one; FluxNetworks groups the monitored domains into
// networks and lists their agents.

// MonitorWorkflowID is the workflow ID of a domain's monitor: one per domain.
func MonitorWorkflowID(domain string) string { return "flux/" + domain }

// A monitor's states, as its row in flux_domains (monitor), its FluxState search
// attribute and its state query say.
const (
	MonitorWatching = "watching" // checked at the cadence its TTLs call for
	MonitorStable   = "stable"   // nothing new for a while: checked at the slowest cadence
	MonitorPaused   = "paused"
	MonitorStopped  = "stopped" // ended: taken down, its lifetime over, or stopped by hand
)

// Signals and the query of a flux monitor.
const (
	// SignalFluxWatch (a WatchRequest) is what triage and `tip flux watch` send
	// with Signal-With-Start: the monitor starts if it does not run.
	SignalFluxWatch       = "watch"
	SignalFluxPause       = "pause"
	SignalFluxResume      = "resume"
	SignalFluxStop        = "stop"         // a reason (string), optional
	SignalFluxSetInterval = "set-interval" // a time.Duration; 0 returns to the TTL-driven cadence
	QueryFluxState        = "state"        // returns MonitorStatus
)

// MonitorConfig bounds a flux monitor: its cadence and when it ends itself.
type MonitorConfig struct {
	MinCheck    time.Duration `json:"min_check"`
	MaxCheck    time.Duration `json:"max_check"`
	Lifetime    time.Duration `json:"lifetime"`
	NXDomainFor time.Duration `json:"nxdomain_for"`
	TaskQueue   string        `json:"task_queue,omitempty"` // where monitors run
}

// WatchRequest is the payload of the watch signal (and the reason a monitor
// started): who asked, and triage's assessment when it was triage.
type WatchRequest struct {
	Origin     string           `json:"origin"`
	Assessment *flux.Assessment `json:"assessment,omitempty"`
}

// TriagePlan is what a triage run works on: the domains due, and how long the
// second resolution may wait for the first answers' TTLs to pass.
type TriagePlan struct {
	Due     []string      `json:"due"`
	MaxWait time.Duration `json:"max_wait"`
}

// AssessInput is a triage batch's resolutions, pairwise by index: two of every
// domain, and a third of those a first assessment left for one.
type AssessInput struct {
	Origin string             `json:"origin"`
	First  []flux.Observation `json:"first"`
	Second []flux.Observation `json:"second"`
	// Third, when set, is a third resolution of every domain, taken once the
	// second answers' TTLs ran out.
	Third []flux.Observation `json:"third,omitempty"`
	// LookAgainWithin, when above 0, leaves unjudged the domains a third
	// resolution at most this long after the second may judge otherwise
	// (flux.LookAgain): TriageOutcome.Again names them.
	LookAgainWithin time.Duration `json:"look_again_within,omitempty"`
}

// TriageOutcome counts a batch's verdicts and names the domains whose monitors
// were started (or already ran), and those left for a third resolution.
type TriageOutcome struct {
	Verdicts map[flux.Verdict]int `json:"verdicts"`
	Watched  []string             `json:"watched"`
	// Again indexes the input's domains left unjudged for a third resolution
	// (AssessInput.LookAgainWithin), in order.
	Again []int `json:"again,omitempty"`
}

// CheckInput is one monitor check: the domain, when the check was due (for the
// lateness measured), and the monitor's state and summary to record with it.
type CheckInput struct {
	Domain  string        `json:"domain"`
	Due     time.Time     `json:"due"`
	State   string        `json:"state,omitempty"`
	Summary *flux.Summary `json:"summary,omitempty"`
}

// FluxAgentsSource is TIP's own blacklist source of the addresses seen in flux
// networks: the bots (flux agents) behind the monitored domains.
const FluxAgentsSource = "tip-flux-agents"

// NetworksResult is what a networks run found and listed.
type NetworksResult struct {
	Networks int        `json:"networks"`
	Largest  []string   `json:"largest,omitempty"` // "name (n domains, m IPs)", the largest few
	Listed   LoadResult `json:"listed"`
}

// MonitorInput starts a monitor (State nil) and carries it across
// continue-as-new (State set).
type MonitorInput struct {
	Domain string        `json:"domain"`
	Config MonitorConfig `json:"config"`
	State  *MonitorState `json:"state,omitempty"`
}

// MonitorState is what a monitor carries across continue-as-new: compact and
// bounded (flux.Metrics bounds its sets and windows).
type MonitorState struct {
	Origin   string        `json:"origin"`
	Started  time.Time     `json:"started"`
	Metrics  flux.Metrics  `json:"metrics"`
	Paused   bool          `json:"paused,omitempty"`
	Interval time.Duration `json:"interval,omitempty"` // set-interval; 0: TTL-driven
	Stable   int           `json:"stable,omitempty"`   // checks in a row without a new address
	Checks   int           `json:"checks"`
	Next     time.Time     `json:"next,omitzero"`      // the next check is due
	State    string        `json:"state"`              // MonitorWatching or MonitorStable; a pause is Paused
	Recorded string        `json:"recorded,omitempty"` // the state last recorded in PostgreSQL
	// Probed: a prober checks the domain (the monitor registered it); Metrics
	// then stays empty, and Summary and Cadence are the last report's.
	Probed  bool          `json:"probed,omitempty"`
	Summary *flux.Summary `json:"summary,omitempty"`
	Cadence time.Duration `json:"cadence,omitempty"`
}

// MonitorStatus answers the state query.
type MonitorStatus struct {
	Domain   string        `json:"domain"`
	State    string        `json:"state"`
	Origin   string        `json:"origin,omitempty"`
	Started  time.Time     `json:"started"`
	Checks   int           `json:"checks"`
	Next     time.Time     `json:"next,omitzero"`
	Interval time.Duration `json:"interval"`         // the cadence now
	Pinned   bool          `json:"pinned,omitempty"` // set by set-interval
	Summary  flux.Summary  `json:"summary"`
}

// MonitorResult is how a monitor ended.
type MonitorResult struct {
	Domain  string       `json:"domain"`
	Reason  string       `json:"reason"`
	Summary flux.Summary `json:"summary"`
}

// The flux module's activities, by their registered names. CheckDomain runs as
// a local activity of the monitor.
const (
	PlanTriageActivity         = "PlanTriage"
	ResolveDomainsActivity     = "ResolveDomains"
	AssessDomainsActivity      = "AssessDomains"
	CheckDomainActivity        = "CheckDomain"
	SetMonitorStateActivity    = "SetMonitorState"
	UpdateFluxNetworksActivity = "UpdateFluxNetworks"
)

// The flux probers. A monitor started by this release does not check its domain
// itself: it registers it (RegisterMonitor), and the prober that owns the domain's
// shard checks it at its cadence, records every check, and wakes the monitor
// with a report signal only when something changes its state (it turns stable
// or watching again, it answers NXDOMAIN or again after a takedown, its
// NXDOMAIN lasts past NXDomainFor) and at least every summary interval. Each
// shard is one FluxProber workflow (ID flux-prober/<shard>) running one
// long-lived, heartbeating RunProber activity: a worker that dies loses the
// activity to another worker after its heartbeat timeout, which reloads the
// shard from PostgreSQL.
const (
	FluxProberWorkflow      = "FluxProber"
	RegisterMonitorActivity = "RegisterMonitor"
	RunProberActivity       = "RunProber"
	// SignalFluxReport (a MonitorReport) is the prober's wake-up of a monitor.
	SignalFluxReport = "report"
	// SignalFluxUpgrade asks a monitor that still checks its domain itself (a
	// run started before the probers) to continue as new, as one the probers
	// check.
	SignalFluxUpgrade = "upgrade"
)

// ProberWorkflowID is the workflow ID of the prober of shard on taskQueue
// (where the monitors it checks run).
func ProberWorkflowID(taskQueue string, shard int) string {
	return fmt.Sprintf("flux-prober/%s/%d", taskQueue, shard)
}

// MonitorBuckets is how many buckets the monitored domains hash into (MonitorBucket);
// prober k of n owns the buckets b with b % n == k, so n divides into it evenly
// for any n that divides 4096.
const MonitorBuckets = 4096

// MonitorBucket is the bucket of domain: FNV-1a of its name, modulo MonitorBuckets.
func MonitorBucket(domain string) int {
	h := fnv.New32a()
	h.Write([]byte(domain))
	return int(h.Sum32() % MonitorBuckets)
}

// ProberInput is one shard's prober: shard of Shards, how often at least each
// domain's monitor hears of it (Summary), and how long one RunProber activity
// runs before the workflow starts the next (Run; the workflow continues as new
// every few runs).
type ProberInput struct {
	Shard   int           `json:"shard"`
	Shards  int           `json:"shards"`
	Summary time.Duration `json:"summary"`
	Run     time.Duration `json:"run"`
	Runs    int           `json:"runs,omitempty"` // runs made by this chain so far
}

// Why a prober woke a monitor (MonitorReport.Reason).
const (
	ReportSummary   = "summary"   // the summary interval passed
	ReportState     = "state"     // turned stable, or watching again
	ReportNXDomain  = "nxdomain"  // the first NXDOMAIN of a run of them
	ReportAnswering = "answering" // answers again after NXDOMAIN
	ReportTakedown  = "takedown"  // NXDOMAIN for NXDomainFor: the monitor ends
)

// MonitorReport is what a prober tells a monitor: the domain's state, checks,
// next check and cadence, and its metrics' summary, as of At.
type MonitorReport struct {
	At       time.Time     `json:"at"`
	Reason   string        `json:"reason"`
	State    string        `json:"state"` // MonitorWatching or MonitorStable
	Checks   int           `json:"checks"`
	Next     time.Time     `json:"next,omitzero"`
	Interval time.Duration `json:"interval"`
	Summary  flux.Summary  `json:"summary"`
}

// MonitorRegistration is a monitor's domain as its prober checks it: the
// monitor's bounds, its pause and pinned interval, and whether it still runs.
// A monitor that checked its domain itself before hands over its metrics, check
// count, stable streak and next check.
type MonitorRegistration struct {
	Domain   string        `json:"domain"`
	Config   MonitorConfig `json:"config"`
	Paused   bool          `json:"paused,omitempty"`
	Interval time.Duration `json:"interval,omitempty"` // pinned by set-interval; 0: TTL-driven
	Active   bool          `json:"active"`
	State    string        `json:"state,omitempty"` // a monitor's state to record (flux_domains.monitor)
	Metrics  *flux.Metrics `json:"metrics,omitempty"`
	// Summary is the final one of a monitor that ended (RegisterMonitor folds
	// it from the prober's checkpoint and the checks since).
	Summary *flux.Summary `json:"summary,omitempty"`
	Checks  int           `json:"checks,omitempty"`
	Stable  int           `json:"stable,omitempty"`
	Next    time.Time     `json:"next,omitzero"`
}
