package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// statusWidth is the screen `tip status` fits in: no line is longer.
const statusWidth = 100

// How many rows the lists of `tip status` show.
const (
	statusTopFlux   = 5
	statusUnhealthy = 6
)

func statusCmd(a *app) *cobra.Command {
	var asJSON bool
	var watch time.Duration
	var errorRows int
	cmd := &cobra.Command{
		Use:   "status",
		Short: "One screen: the core's timetable, flux monitors, source health, spam collectors and the last errors",
		Long: `Read PostgreSQL and Temporal and print, on one screen: the stack and the workers
polling the task queue, the core's timetable, the flux monitors (checked against
the FluxMonitor workflows Temporal runs), the blacklist sources' health, each spam
collector's mails and last good run, and the most recent problems the database and
Temporal keep. What cannot be read is named with the reason, and the rest is shown;
the exit status is 1 only when neither PostgreSQL nor Temporal could be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if errorRows < 0 {
				return fmt.Errorf("--errors %d: want 0 or more", errorRows)
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			tty := isTerminal(out)
			for {
				r := readStatus(ctx, a.cfg, errorRows)
				if ctx.Err() != nil { // interrupted while reading: the report is incomplete
					return nil
				}
				var buf bytes.Buffer
				if asJSON {
					if err := writeJSON(&buf, r); err != nil {
						return err
					}
				} else {
					if watch > 0 && tty {
						buf.WriteString("\033[H\033[2J") // cursor home, clear the screen
					}
					printReport(&buf, r, errorRows, statusWidth)
				}
				if _, err := out.Write(buf.Bytes()); err != nil {
					return err
				}
				if watch <= 0 {
					if r.Postgres.Error != "" && r.Temporal.Error != "" {
						return exitError(1)
					}
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(watch):
				}
				if !tty && !asJSON {
					fmt.Fprintln(out) // successive screens, one after another
				}
			}
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the same data as JSON")
	cmd.Flags().DurationVar(&watch, "watch", 0, "read and print again every DURATION (e.g. 5s) until interrupted")
	cmd.Flags().IntVar(&errorRows, "errors", 8, "how many of the most recent problems to show")
	return cmd
}

// isTerminal says whether w is a terminal, where --watch redraws the screen.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// statusReport is everything `tip status` shows (and prints as JSON). Each part
// read from a service is there, or the reason it could not be read.
type statusReport struct {
	Now      time.Time      `json:"now"`
	Temporal temporalStatus `json:"temporal"`
	Postgres postgresStatus `json:"postgres"`
	S3       s3Status       `json:"s3"`

	Core      *contract.CoreStatus `json:"core,omitempty"`
	CoreError string               `json:"core_error,omitempty"`

	Flux      *fluxStatus `json:"flux,omitempty"`
	FluxError string      `json:"flux_error,omitempty"`
	// FluxWorkflows is how many FluxMonitor workflows Temporal lists as running
	// on the task queue, to compare with the monitors the database records.
	FluxWorkflows      *int64 `json:"flux_workflows_running,omitempty"`
	FluxWorkflowsError string `json:"flux_workflows_error,omitempty"`

	Sources      []storage.SourceHealth `json:"sources,omitempty"`
	SourcesError string                 `json:"sources_error,omitempty"`

	Spam      []storage.SpamCollector `json:"spam,omitempty"`
	SpamError string                  `json:"spam_error,omitempty"`

	Overrides      *overridesStatus `json:"overrides,omitempty"`
	OverridesError string           `json:"overrides_error,omitempty"`

	// Problems are the most recent problems of both stores, the newest first.
	Problems       []storage.Problem `json:"problems"`
	ProblemsErrors []string          `json:"problems_errors,omitempty"`

	pgProblems, temporalProblems []storage.Problem
	pgProblemsError              string
	temporalProblemsError        string
}

type temporalStatus struct {
	Address      string `json:"address"`
	Namespace    string `json:"namespace"`
	TaskQueue    string `json:"task_queue"`
	Workers      int    `json:"workers"` // polling the task queue in the last two minutes
	WorkersError string `json:"workers_error,omitempty"`
	Error        string `json:"error,omitempty"` // Temporal could not be reached
}

type postgresStatus struct {
	Address string `json:"address,omitempty"`
	Error   string `json:"error,omitempty"` // PostgreSQL could not be reached
}

type s3Status struct {
	Endpoint string `json:"endpoint"`
	Bucket   string `json:"bucket"`
}

// overridesStatus counts the analysts' overrides and shows the latest made.
type overridesStatus struct {
	storage.OverrideCounts
	Latest []storage.Override `json:"latest"`
}

// statusOverrides is how many of the latest overrides `tip status` shows.
const statusOverrides = 5

type fluxStatus struct {
	storage.FluxCounts
	Top []storage.FluxDomain `json:"top"` // running monitors, highest score first
}

// readStatus reads PostgreSQL and Temporal side by side, so one that does not
// answer delays the report once, not twice.
func readStatus(ctx context.Context, cfg config.Config, errorRows int) statusReport {
	r := statusReport{
		Now:      time.Now().UTC(),
		Temporal: temporalStatus{Address: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace, TaskQueue: cfg.Temporal.TaskQueue},
		S3:       s3Status{Endpoint: cfg.S3.Endpoint, Bucket: cfg.S3.Bucket},
	}
	var wg sync.WaitGroup
	wg.Go(func() { r.readPostgres(ctx, cfg, errorRows) }) // each writes only its own fields
	wg.Go(func() { r.readTemporal(ctx, cfg, errorRows) })
	wg.Wait()
	r.Problems = newestProblems(errorRows, r.pgProblems, r.temporalProblems)
	for _, e := range []string{unreachable("postgres", r.Postgres.Error), r.pgProblemsError,
		unreachable("temporal", r.Temporal.Error), r.temporalProblemsError} {
		if e != "" {
			r.ProblemsErrors = append(r.ProblemsErrors, e)
		}
	}
	return r
}

// unreachable names a service that could not be read, if err says so.
func unreachable(service, err string) string {
	if err == "" {
		return ""
	}
	return service + " unreachable"
}

// newestProblems merges lists of problems into the n most recent, ordered as
// storage.Problems orders them: those with no time first (they are current),
// then the newest.
func newestProblems(n int, lists ...[]storage.Problem) []storage.Problem {
	all := append([]storage.Problem{}, slices.Concat(lists...)...) // [] in JSON when there are none
	slices.SortStableFunc(all, func(a, b storage.Problem) int {
		if c := cmp.Compare(timed(a), timed(b)); c != 0 {
			return c
		}
		return b.At.Compare(a.At)
	})
	return all[:min(len(all), n)]
}

func timed(p storage.Problem) int {
	if p.At.IsZero() {
		return 0
	}
	return 1
}

func (r *statusReport) readPostgres(ctx context.Context, cfg config.Config, errorRows int) {
	db, err := storage.OpenDB(ctx, cfg.Postgres.DSN)
	if err != nil {
		r.Postgres.Error = err.Error()
		return
	}
	defer db.Close()
	r.Postgres.Address = db.Addr()

	if counts, err := db.FluxCounts(ctx); err != nil {
		r.FluxError = err.Error()
	} else if top, err := db.TopFluxMonitors(ctx, statusTopFlux); err != nil {
		r.FluxError = err.Error()
	} else {
		r.Flux = &fluxStatus{FluxCounts: counts, Top: top}
	}

	if r.Sources, err = db.SourcesHealth(ctx); err != nil {
		r.SourcesError = err.Error()
	}

	// The catalog names the collectors (an archive's claim by its name, its mails
	// by its index); without it, the collectors are the origins recorded.
	var collectors []storage.SpamCollector
	if c, err := catalog.LoadSpam(cfg.Spam.Catalog); err != nil {
		r.SpamError = err.Error()
	} else {
		collectors = spamCollectors(c)
	}
	if spam, err := db.SpamCollectors(ctx, collectors); err != nil {
		r.SpamError = err.Error()
	} else {
		r.Spam = spam
	}

	if counts, err := db.CountOverrides(ctx); err != nil {
		r.OverridesError = err.Error()
	} else if latest, err := db.Overrides(ctx, "", true, statusOverrides); err != nil {
		r.OverridesError = err.Error()
	} else {
		r.Overrides = &overridesStatus{OverrideCounts: counts, Latest: latest}
	}

	if r.pgProblems, err = db.Problems(ctx, errorRows); err != nil {
		r.pgProblemsError = err.Error()
	}
}

// spamCollectors lists a spam catalog's collectors by the names they claim their
// runs under and the origins their mails are recorded under.
func spamCollectors(c *catalog.Spam) []storage.SpamCollector {
	var out []storage.SpamCollector
	for _, s := range c.Archives {
		// An archive's months are resolved against its index: their origins
		// start with the index's folder.
		dir := s.Index[:strings.LastIndex(s.Index, "/")+1]
		out = append(out, storage.SpamCollector{Name: "archive:" + s.Name, Origin: "archive:" + dir})
	}
	for _, m := range c.Mailboxes {
		out = append(out, storage.SpamCollector{Name: "imap:" + m.Name, Origin: "imap:" + m.Name})
	}
	for _, ag := range c.Agents {
		out = append(out, storage.SpamCollector{Name: "agent:" + ag.Name, Origin: "agent:" + ag.Name})
	}
	return out
}

func (r *statusReport) readTemporal(ctx context.Context, cfg config.Config, errorRows int) {
	c, err := starter.Dial(ctx, cfg.Temporal, nil, client.Options{})
	if err != nil {
		r.Temporal.Error = err.Error()
		return
	}
	defer c.Close()
	if r.Temporal.Workers, err = pollers(ctx, c, cfg.Temporal); err != nil {
		r.Temporal.WorkersError = err.Error()
	}

	var failedRuns map[string]bool // the core's failed module runs, by workflow ID
	if st, err := starter.CoreStatus(ctx, c); err != nil {
		r.CoreError = err.Error()
	} else {
		r.Core = &st
		failedRuns = map[string]bool{}
		for _, m := range st.Modules {
			if l := m.Last; l != nil && l.Status == contract.ModuleRunFailed {
				failedRuns[l.ChildID] = true
				r.temporalProblems = append(r.temporalProblems, storage.Problem{At: l.Finished, Where: "module " + m.Name, What: "failed", Error: l.Error})
			}
		}
	}

	queue := strings.ReplaceAll(cfg.Temporal.TaskQueue, "'", "")
	n, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: cfg.Temporal.Namespace,
		Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND TaskQueue = '%s'", contract.FluxMonitorWorkflow, queue)})
	if err != nil {
		r.FluxWorkflowsError = starter.ExplainTemporal(cfg.Temporal.Address, err).Error()
	} else {
		count := n.GetCount()
		r.FluxWorkflows = &count
	}

	if errorRows == 0 {
		return
	}
	// Runs that failed or timed out (for as long as the namespace keeps them):
	// agent syncs, mailbox polls, archive ingests, module runs, monitors.
	list, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: cfg.Temporal.Namespace,
		PageSize: int32(errorRows + len(failedRuns)),
		Query:    fmt.Sprintf("ExecutionStatus IN ('Failed', 'TimedOut') AND TaskQueue = '%s'", queue)})
	if err != nil {
		r.temporalProblemsError = starter.ExplainTemporal(cfg.Temporal.Address, err).Error()
		return
	}
	for _, ex := range list.GetExecutions() {
		id := ex.GetExecution().GetWorkflowId()
		if failedRuns[id] { // shown as the core's module run
			continue
		}
		what := "failed"
		if ex.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT {
			what = "timed out"
		}
		r.temporalProblems = append(r.temporalProblems, storage.Problem{At: ex.GetCloseTime().AsTime(), Where: "workflow " + id, What: what,
			Error: closeFailure(ctx, c, id, ex.GetExecution().GetRunId())})
	}
}

// closeFailure is why a closed workflow run failed: the innermost cause of its
// failure (the outer ones say where: "activity error", "child workflow error").
func closeFailure(ctx context.Context, c client.Client, id, runID string) string {
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return ""
		}
		var f *failurepb.Failure
		if a := ev.GetWorkflowExecutionFailedEventAttributes(); a != nil {
			f = a.GetFailure()
		}
		for f.GetCause() != nil {
			f = f.GetCause()
		}
		if f != nil {
			return f.GetMessage()
		}
	}
	return ""
}

// printReport draws the report in at most width columns.
func printReport(w io.Writer, r statusReport, errorRows, width int) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "TIP status at %s\n", r.Now.UTC().Format("2006-01-02 15:04:05 UTC"))
	t := r.Temporal
	fmt.Fprintf(&b, "temporal %s (namespace %s, queue %s): ", t.Address, t.Namespace, t.TaskQueue)
	switch {
	case t.Error != "":
		fmt.Fprintf(&b, "unreachable (%s)\n", t.Error)
	case t.WorkersError != "":
		fmt.Fprintf(&b, "workers unknown (%s)\n", t.WorkersError)
	default:
		fmt.Fprintf(&b, "%d worker%s polling\n", t.Workers, plural(t.Workers))
	}
	if r.Postgres.Error != "" {
		fmt.Fprintf(&b, "postgres: unreachable (%s)\n", r.Postgres.Error)
	} else {
		fmt.Fprintf(&b, "postgres %s · s3 %s (bucket %s)\n", r.Postgres.Address, r.S3.Endpoint, r.S3.Bucket)
	}
	for _, section := range []func(io.Writer, statusReport, int){printCoreSection, printFluxSection, printSourcesSection, printSpamSection, printOverridesSection} {
		fmt.Fprintln(&b)
		section(&b, r, width)
	}
	if errorRows > 0 {
		fmt.Fprintln(&b)
		printProblemsSection(&b, r)
	}
	io.WriteString(w, clipLines(b.String(), width))
}

// unread says why a section could not be read: its service did not answer
// (unreachable), or it did and the read failed (unavailable).
func unread(serviceErr, err string) string {
	if serviceErr != "" {
		return "unreachable (" + serviceErr + ")"
	}
	return "unavailable (" + err + ")"
}

func printCoreSection(w io.Writer, r statusReport, _ int) {
	st := r.Core
	if st == nil {
		fmt.Fprintf(w, "core: %s\n", unread(r.Temporal.Error, r.CoreError))
		return
	}
	fmt.Fprintf(w, "core: %s, %d modules, iteration %d", contract.CoreWorkflowID, len(st.Modules), st.Iteration)
	if st.Draining {
		fmt.Fprint(w, ", waiting for its runs to continue as new")
	}
	if st.UnroutedEvents > 0 {
		fmt.Fprintf(w, ", %d events no module consumes", st.UnroutedEvents)
	}
	fmt.Fprintln(w)
	if len(st.Modules) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  MODULE\tSTATE\tNEXT\tLAST RUN\tEVENTS\tLAST RESULT")
	for _, m := range st.Modules {
		state := moduleState(m)
		next := "-"
		switch {
		case m.Running != "":
			next = "for " + age(r.Now.Sub(m.RunningSince))
		case state == "scheduled" && !m.Next.After(r.Now):
			next = "due"
		case state == "scheduled":
			next = "in " + age(m.Next.Sub(r.Now))
		}
		last, result := "never", "-"
		if l := m.Last; l != nil {
			last = "ok " + age(r.Now.Sub(l.Finished)) + " ago"
			if l.Status != contract.ModuleRunCompleted {
				last = l.Status + " " + age(r.Now.Sub(l.Finished)) + " ago"
			}
			result = oneLine(firstNonEmpty(l.Error, l.Summary, "-"), 200)
		}
		events := fmt.Sprint(m.PendingEvents)
		if m.DroppedEvents > 0 {
			events += fmt.Sprintf(" (%d items dropped)", m.DroppedEvents)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", m.Name, state, next, last, events, result)
	}
	tw.Flush()
}

func printFluxSection(w io.Writer, r statusReport, _ int) {
	temporal := "Temporal: " + unread(r.Temporal.Error, r.FluxWorkflowsError)
	if r.FluxWorkflows != nil {
		temporal = fmt.Sprintf("Temporal runs %d", *r.FluxWorkflows)
	}
	f := r.Flux
	if f == nil {
		fmt.Fprintf(w, "flux: %s · the database: %s\n", temporal, unread(r.Postgres.Error, r.FluxError))
		return
	}
	fmt.Fprintf(w, "flux: %d running (%d watching, %d stable, %d paused) · %s", f.Running(), f.Watching, f.Stable, f.Paused, temporal)
	if r.FluxWorkflows != nil && *r.FluxWorkflows != f.Running() {
		fmt.Fprint(w, ": MISMATCH")
	}
	fmt.Fprintf(w, " · %d networks\n", f.Networks)
	if len(f.Top) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  DOMAIN\tMONITOR\tVERDICT\tSCORE\tIPS\tASNS\tNETWORK")
	for _, d := range f.Top {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.1f\t%d\t%d\t%s\n", d.Domain, d.Monitor, d.Verdict, d.Score, d.IPs, d.ASNs, firstNonEmpty(d.Network, "-"))
	}
	tw.Flush()
}

func printSourcesSection(w io.Writer, r statusReport, width int) {
	if r.SourcesError != "" || r.Postgres.Error != "" {
		fmt.Fprintf(w, "sources: %s\n", unread(r.Postgres.Error, r.SourcesError))
		return
	}
	count := map[string]int{}
	var unhealthy []storage.SourceHealth
	for _, h := range r.Sources {
		count[h.Health]++
		if h.Health == "failing" || h.Health == "dead" {
			unhealthy = append(unhealthy, h)
		}
	}
	fmt.Fprintf(w, "sources: %d — %d ok, %d failing, %d dead", len(r.Sources), count["ok"], count["failing"], count["dead"])
	if n := count["never-run"]; n > 0 {
		fmt.Fprintf(w, ", %d never run", n)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, h := range unhealthy {
		if i == statusUnhealthy {
			fmt.Fprintf(tw, "  … and %d more: tip sources\n", len(unhealthy)-i)
			break
		}
		why := fmt.Sprintf("%s %s ago", h.LastStatus, age(r.Now.Sub(h.LastRun)))
		if h.ConsecutiveFailures > 1 {
			why += fmt.Sprintf(", %d in a row", h.ConsecutiveFailures)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", h.Name, h.Health, why, oneLine(firstNonEmpty(h.LastError, "-"), 200))
	}
	tw.Flush()
	byWeight := slices.Clone(r.Sources)
	slices.SortStableFunc(byWeight, func(a, b storage.SourceHealth) int { return cmp.Compare(b.Weight, a.Weight) })
	var top []string
	for _, h := range byWeight {
		if h.Weight > 0 {
			top = append(top, fmt.Sprintf("%s %.2f", h.Name, h.Weight))
		}
	}
	if len(top) > 0 {
		fmt.Fprint(w, packLine("  top weights: ", top, ", ", width))
	}
}

// packLine writes as many items after prefix as fit in width, on one line.
func packLine(prefix string, items []string, sep string, width int) string {
	line := prefix
	for i, it := range items {
		next := it
		if i > 0 {
			next = sep + it
		}
		if len([]rune(line+next)) > width {
			break
		}
		line += next
	}
	return line + "\n"
}

func printOverridesSection(w io.Writer, r statusReport, _ int) {
	if r.Overrides == nil {
		if r.Postgres.Error != "" || r.OverridesError != "" {
			fmt.Fprintf(w, "overrides: %s\n", unread(r.Postgres.Error, r.OverridesError))
		}
		return
	}
	o := r.Overrides
	fmt.Fprintf(w, "overrides: %d allowed, %d false positive%s standing, %d recorded\n", o.Allowed, o.FalsePositives, plural(int(o.FalsePositives)), o.Recorded)
	if len(o.Latest) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, v := range o.Latest {
		what := v.Kind + " " + v.Target()
		if v.Source != "" {
			what += " (" + v.Source + ")"
		}
		state := ""
		switch {
		case v.RemovedAt != nil:
			state = ", removed by " + v.RemovedBy
		case !v.Standing(r.Now):
			state = ", expired"
		}
		fmt.Fprintf(tw, "  %s\tby %s %s ago%s\t%s\n", what, v.Author, age(r.Now.Sub(v.CreatedAt)), state, v.Reason)
	}
	tw.Flush()
}

func printSpamSection(w io.Writer, r statusReport, _ int) {
	if r.Postgres.Error != "" || (r.Spam == nil && r.SpamError != "") {
		fmt.Fprintf(w, "spam: %s\n", unread(r.Postgres.Error, r.SpamError))
		return
	}
	fmt.Fprintf(w, "spam: %d collector%s", len(r.Spam), plural(len(r.Spam)))
	if r.SpamError != "" {
		fmt.Fprintf(w, " by origin (%s)", r.SpamError)
	}
	fmt.Fprintln(w)
	if len(r.Spam) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  COLLECTOR\tMAILS\tLAST GOOD RUN\tLAST MAIL")
	when := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return age(r.Now.Sub(*t)) + " ago"
	}
	for _, c := range r.Spam {
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", c.Name, c.Mails, when(c.LastRun), when(c.LastMail))
	}
	tw.Flush()
}

func printProblemsSection(w io.Writer, r statusReport) {
	switch {
	case len(r.Problems) == 0:
		fmt.Fprint(w, "errors: none recorded")
	default:
		fmt.Fprintf(w, "errors: the %d most recent", len(r.Problems))
	}
	if len(r.ProblemsErrors) > 0 {
		fmt.Fprintf(w, " (not read: %s)", strings.Join(r.ProblemsErrors, "; "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range r.Problems {
		when := "now?" // stored with no time: the current state
		if !p.At.IsZero() {
			when = age(r.Now.Sub(p.At)) + " ago"
		}
		what := p.What
		switch {
		case p.Repeats > 1:
			what += fmt.Sprintf(" ×%d", p.Repeats)
		case p.Recovered:
			what += " (ok since)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", when, p.Where, what, oneLine(firstNonEmpty(p.Error, "-"), 200))
	}
	tw.Flush()
}

// age writes a duration the way a status screen needs it: 45s, 12m, 3h05m, 4d.
func age(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// clipLines cuts every line of s to at most width characters, ending a cut one
// in …, and drops trailing spaces.
func clipLines(s string, width int) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		body, nl := strings.CutSuffix(l, "\n")
		body = strings.TrimRight(body, " ")
		if r := []rune(body); len(r) > width {
			body = string(r[:width-1]) + "…"
		}
		if nl {
			body += "\n"
		}
		lines[i] = body
	}
	return strings.Join(lines, "")
}
