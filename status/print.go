package status

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// Width is the screen `tip status` fits in: no line is longer.
const Width = 100

// Print draws the report in at most width columns, with the errorRows most
// recent problems (none: no errors section).
func Print(w io.Writer, r Report, errorRows, width int) {
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
	if d := r.DNS; d != nil {
		fmt.Fprintf(&b, "dns %s: ", d.Address)
		if d.Error != "" {
			fmt.Fprintf(&b, "not answering (tip serve dns: %s)\n", d.Error)
		} else {
			var zones []string
			for z, s := range d.Serials {
				zones = append(zones, fmt.Sprintf("%s serial %d", z, s))
			}
			sort.Strings(zones)
			zones = append(zones, d.DNSBL...)
			fmt.Fprintf(&b, "%s\n", strings.Join(zones, " · "))
		}
	}
	if a := r.API; a != nil {
		if a.Error != "" {
			fmt.Fprintf(&b, "api %s: not answering (tip serve api: %s)\n", a.URL, a.Error)
		} else {
			fmt.Fprintf(&b, "api %s: answering (API %s): lookups, exports, /misp/, /taxii2/\n", a.URL, a.Version)
		}
	}
	for _, section := range []func(io.Writer, Report, int){printCoreSection, printFluxSection, printSourcesSection, printSpamSection, printOverridesSection} {
		fmt.Fprintln(&b)
		section(&b, r, width)
	}
	if errorRows > 0 {
		fmt.Fprintln(&b)
		printProblemsSection(&b, r)
	}
	io.WriteString(w, clipLines(b.String(), width))
}

// PrintCore draws Core's timetable as `tip core status` shows it: each module's
// state, interval, next run (seen at now), running child, last result and
// pending events.
func PrintCore(w io.Writer, st contract.CoreStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tSTATE\tINTERVAL\tNEXT RUN\tRUNNING\tLAST\tPENDING")
	for _, m := range st.Modules {
		state := ModuleState(m)
		next := "-"
		if m.Running == "" && !m.Next.IsZero() && m.Enabled && !m.Paused {
			next = m.Next.UTC().Format(time.RFC3339) + " (in " + m.Next.Sub(now).Round(time.Second).String() + ")"
		}
		last := "-"
		if l := m.Last; l != nil {
			last = fmt.Sprintf("%s %s (%s)", l.Status, l.Finished.UTC().Format(time.RFC3339), l.Finished.Sub(l.Started).Round(time.Second))
			if detail := cmp.Or(l.Error, l.Summary); detail != "" {
				last += ": " + oneLine(detail, 60)
			}
		}
		pending := fmt.Sprintf("%d", m.PendingEvents)
		if m.DroppedEvents > 0 {
			pending += fmt.Sprintf(" (%d dropped)", m.DroppedEvents)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, state, m.Interval, next, cmp.Or(m.Running, "-"), last, pending)
	}
	tw.Flush()
	if len(st.Modules) == 0 {
		fmt.Fprintln(w, "no modules scheduled")
	}
	if st.Draining {
		fmt.Fprintln(w, "core is waiting for running modules to finish before it continues as new")
	}
	if st.UnroutedEvents > 0 {
		fmt.Fprintf(w, "%d event(s) had a kind no module consumes\n", st.UnroutedEvents)
	}
}

// ModuleState is a module's state in Core's timetable: running, paused,
// disabled or scheduled.
func ModuleState(m contract.ModuleStatus) string {
	switch {
	case m.Running != "":
		return "running"
	case m.Paused:
		return "paused"
	case !m.Enabled:
		return "disabled"
	}
	return "scheduled"
}

// unread says why a section could not be read: its service did not answer
// (unreachable), or it did and the read failed (unavailable).
func unread(serviceErr, err string) string {
	if serviceErr != "" {
		return "unreachable (" + serviceErr + ")"
	}
	return "unavailable (" + err + ")"
}

func printCoreSection(w io.Writer, r Report, _ int) {
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
		state := ModuleState(m)
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
			result = oneLine(cmp.Or(l.Error, l.Summary, "-"), 200)
		}
		events := fmt.Sprint(m.PendingEvents)
		if m.DroppedEvents > 0 {
			events += fmt.Sprintf(" (%d items dropped)", m.DroppedEvents)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", m.Name, state, next, last, events, result)
	}
	tw.Flush()
}

func printFluxSection(w io.Writer, r Report, _ int) {
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
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.1f\t%d\t%d\t%s\n", d.Domain, d.Monitor, d.Verdict, d.Score, d.IPs, d.ASNs, cmp.Or(d.Network, "-"))
	}
	tw.Flush()
}

func printSourcesSection(w io.Writer, r Report, width int) {
	if r.SourcesError != "" || r.Postgres.Error != "" {
		fmt.Fprintf(w, "sources: %s\n", unread(r.Postgres.Error, r.SourcesError))
		return
	}
	count := map[string]int{}
	var bad []storage.SourceHealth
	for _, h := range r.Sources {
		count[h.Health]++
		if h.Health == "failing" || h.Health == "dead" {
			bad = append(bad, h)
		}
	}
	fmt.Fprintf(w, "sources: %d — %d ok, %d failing, %d dead", len(r.Sources), count["ok"], count["failing"], count["dead"])
	if n := count["never-run"]; n > 0 {
		fmt.Fprintf(w, ", %d never run", n)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, h := range bad {
		if i == unhealthy {
			fmt.Fprintf(tw, "  … and %d more: tip sources\n", len(bad)-i)
			break
		}
		why := fmt.Sprintf("%s %s ago", h.LastStatus, age(r.Now.Sub(h.LastRun)))
		if h.ConsecutiveFailures > 1 {
			why += fmt.Sprintf(", %d in a row", h.ConsecutiveFailures)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", h.Name, h.Health, why, oneLine(cmp.Or(h.LastError, "-"), 200))
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

func printOverridesSection(w io.Writer, r Report, _ int) {
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

func printSpamSection(w io.Writer, r Report, _ int) {
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

func printProblemsSection(w io.Writer, r Report) {
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
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", when, p.Where, what, oneLine(cmp.Or(p.Error, "-"), 200))
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

// oneLine folds s onto one line of at most max characters, ending in … when cut.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
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
