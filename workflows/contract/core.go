// Package contract is what TIP's workflows promise the rest of TIP, module by
// module (core, blacklist, spam, agent sync, flux, probe): their inputs and
// results, workflow IDs, signal and query names, states, and the names of the
// activities they call. It imports no Temporal package and no I/O: workflows,
// activities, starter, storage and the CLI all import it, and it imports none of them.
package contract

import "time"

// CoreWorkflowID is the ID of the one Core workflow of a deployment.
const CoreWorkflowID = "tip-core"

// Signals Core accepts and the query it answers.
const (
	SignalRunNow      = "run-now"      // ModuleSignal{Module}: run the module now (once, even if paused)
	SignalPause       = "pause"        // ModuleSignal{Module}: start no new runs of the module
	SignalResume      = "resume"       // ModuleSignal{Module}: schedule the module again
	SignalSetInterval = "set-interval" // ModuleSignal{Module, Interval}: delay between a run's end and the next start
	SignalEvent       = "event"        // Event: routed to the modules that consume its Kind
	// SignalConfigure carries a new module list ([]ModuleSpec), e.g. after an
	// upgrade added a module. It takes effect at a continue-as-new boundary: Core
	// drains its running children, then continues with the new list, keeping the
	// timetable of the modules it already had.
	SignalConfigure = "configure"
	QueryStatus     = "status" // returns CoreStatus
)

// Run outcomes recorded in RunResult.Status.
const (
	ModuleRunCompleted = "completed"
	ModuleRunFailed    = "failed"
)

// Defaults for CoreInput's bounds.
const (
	DefaultMaxIterations   = 1000 // loop wake-ups per run before continuing as new
	DefaultMaxPendingItems = 1000 // queued event items per module; older ones are dropped
	childIDTimeLayout      = "20060102T150405Z"
)

// ModuleSpec says how Core runs one module: which child workflow, where, and how often.
type ModuleSpec struct {
	Name      string
	Workflow  string        // child workflow type name
	TaskQueue string        // empty: Core's own task queue
	Interval  time.Duration // delay from the end of one run to the start of the next
	Enabled   bool          // disabled modules run only on run-now
	Consumes  []string      // event kinds handed to this module's runs
	Timeout   time.Duration // optional limit on one run, so a stuck run cannot block its module forever
}

// Event is something a module found that another module consumes, e.g.
// {Kind: "domains-discovered", Items: [...], From: "spam-ingest"}. Keep Items
// small (names, S3 keys), never file contents.
type Event struct {
	Kind  string
	Items []string
	From  string
}

// ModuleSignal is the payload of run-now, pause, resume and set-interval.
type ModuleSignal struct {
	Module   string
	Interval time.Duration // set-interval only
}

// ModuleInput is the single argument Core passes to every module run.
type ModuleInput struct {
	Module        string
	Scheduled     time.Time // when Core started the run
	Events        []Event   // events queued for the module since its last successful handoff
	DroppedEvents int       // event items dropped because the queue was full
}

// ModuleResult is what a module run returns; its Events are routed like signalled ones.
type ModuleResult struct {
	Summary string
	Events  []Event
}

// RunResult records how a module's last run went.
type RunResult struct {
	ChildID  string
	Status   string // ModuleRunCompleted or ModuleRunFailed
	Started  time.Time
	Finished time.Time
	Error    string
	Summary  string
}

// ModuleState is Core's bookkeeping for one module; it is carried across continue-as-new.
type ModuleState struct {
	Name     string
	Next     time.Time     // when the next run starts (if enabled and not paused)
	Interval time.Duration // current interval (set-interval overrides the spec)
	Paused   bool
	RunNow   bool // a run-now waits to be served
	Last     *RunResult
	Pending  []Event // queued for the next run, oldest first
	Dropped  int     // items dropped from Pending since the last handoff
}

// CoreState is everything Core carries across continue-as-new.
type CoreState struct {
	Modules  []ModuleState
	Unrouted int // events whose kind no module consumes
}

// CoreInput starts Core. State is nil on the first start and set by continue-as-new.
type CoreInput struct {
	Modules         []ModuleSpec
	State           *CoreState
	MaxIterations   int // 0: DefaultMaxIterations
	MaxPendingItems int // 0: DefaultMaxPendingItems
}

// ModuleStatus is one row of Core's timetable.
type ModuleStatus struct {
	Name          string
	Workflow      string
	Enabled       bool
	Paused        bool
	Interval      time.Duration
	Next          time.Time // zero while running
	Running       string    // child workflow ID of the run in progress
	RunningSince  time.Time
	Last          *RunResult
	PendingEvents int // events queued for the next run
	PendingItems  int // items in those events
	DroppedEvents int // items dropped because the queue was full
	Consumes      []string
}

// CoreStatus answers the status query.
type CoreStatus struct {
	Now            time.Time
	Modules        []ModuleStatus
	UnroutedEvents int
	Iteration      int
	Draining       bool // waiting for running children before continuing as new
}

// ChildID names a module run, e.g. "blacklist-refresh/20260901T000000Z".
func ChildID(module string, at time.Time) string {
	return module + "/" + at.UTC().Format(childIDTimeLayout)
}

// The core's modules: the names Core schedules them under, and their workflows.
const (
	BlacklistModule    = "blacklist-refresh"
	SpamModule         = "spam-collect"
	FluxTriageModule   = "flux-triage"
	FluxNetworksModule = "flux-networks"
)

// Event kinds: what one module hands another through the core.
const (
	// EventDomainsDiscovered carries domains for flux triage: the registrable
	// domains of spam URLs (spam-collect) and domains new to the blacklists
	// (blacklist-refresh).
	EventDomainsDiscovered = "domains-discovered"
	// EventRefreshSources asks the next refresh to run only the named sources
	// (`tip blacklists refresh --source NAME`).
	EventRefreshSources = "refresh-sources"
)

// The registered names of TIP's workflows (the function names in workflows/).
const (
	CoreWorkflow              = "Core"
	BlacklistRefreshWorkflow  = "BlacklistRefresh"
	SourceRefreshWorkflow     = "SourceRefresh"
	SpamCollectWorkflow       = "SpamCollect"
	SpamArchiveIngestWorkflow = "SpamArchiveIngest"
	SpamMailboxPollWorkflow   = "SpamMailboxPoll"
	AgentSyncWorkflow         = "AgentSync"
	FluxTriageWorkflow        = "FluxTriage"
	FluxNetworksWorkflow      = "FluxNetworks"
	FluxMonitorWorkflow       = "FluxMonitor"
	ProbeWorkflow             = "Probe"
)
