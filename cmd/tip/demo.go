package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/cobra"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/dnsserve"
	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// loopStep is one thing TIP's main loop must have shown before the demo calls it
// whole: a module's work, or work crossing from one module to the next.
type loopStep struct {
	Name string
	// Done says whether the counts show the step, and in either case what they show.
	Done func(c storage.LoopCounts) (bool, string)
}

// ownSources are TIP's own blacklist sources, fed by the spam and flux modules.
var ownSources = []string{contract.FluxAgentsSource, contract.SpamSendersSource}

// loopSteps are the steps of the demo's story, in the order they usually happen.
var loopSteps = []loopStep{
	{"blacklists loaded and weighted", func(c storage.LoopCounts) (bool, string) {
		return c.SourcesLoaded > 0 && c.Weighted > 0, fmt.Sprintf("%d of %d sources have run, %d loaded; %s listings; %d weighted",
			c.SourcesRun, c.Sources, c.SourcesLoaded, thousands(c.Listed), c.Weighted)
	}},
	{"spam harvested from the archive, the IMAP trap and the agent", func(c storage.LoopCounts) (bool, string) {
		kinds := spamKinds(c)
		return kinds["archive"] > 0 && kinds["imap"] > 0 && kinds["agent"] > 0,
			fmt.Sprintf("%s mails: archive %d, IMAP %d, agent %d", thousands(c.Mails), kinds["archive"], kinds["imap"], kinds["agent"])
	}},
	{"spam's domains triaged for fast flux", func(c storage.LoopCounts) (bool, string) {
		flux := c.Verdicts["flux"] + c.Verdicts["double-flux"]
		return c.Triaged[contract.SpamModule] > 0 && flux > 0, fmt.Sprintf("%d domains from spam, %d from the blacklists; %d flux or double-flux",
			c.Triaged[contract.SpamModule], c.Triaged[contract.BlacklistModule], flux)
	}},
	{"flux monitors checking their domains", func(c storage.LoopCounts) (bool, string) {
		running := c.Flux.Running()
		return running > 0 && c.Checks > int64(running), fmt.Sprintf("%d monitors, %d checks", running, c.Checks)
	}},
	{"flux agents listed in the blacklists", func(c storage.LoopCounts) (bool, string) {
		o := c.Own[contract.FluxAgentsSource]
		return c.Flux.Networks > 0 && o.Active > 0, fmt.Sprintf("%d networks; %d addresses listed as %s", c.Flux.Networks, o.Active, contract.FluxAgentsSource)
	}},
	{"flux agents weighted as a source", func(c storage.LoopCounts) (bool, string) {
		o := c.Own[contract.FluxAgentsSource]
		return o.Measured > 0, fmt.Sprintf("%s: weight %.2f over %d listings", contract.FluxAgentsSource, o.Weight, o.Measured)
	}},
}

// spamKinds sums the spam counts by kind of origin: archive, imap, agent.
func spamKinds(c storage.LoopCounts) map[string]int64 {
	out := map[string]int64{}
	for origin, n := range c.SpamOrigins {
		kind, _, _ := strings.Cut(origin, ":")
		out[kind] += n
	}
	return out
}

// watchLoop polls the counts every poll until every step is done or timeout
// passes, calling reached once per step as it is first seen done (steps can be
// seen in any order). It returns the last counts and the steps not reached.
func watchLoop(ctx context.Context, db *storage.DB, timeout, poll time.Duration,
	reached func(step loopStep, after time.Duration, detail string)) (storage.LoopCounts, []string, error) {
	start := time.Now()
	done := make([]bool, len(loopSteps))
	for {
		c, err := db.LoopCounts(ctx, ownSources...)
		if err != nil {
			return c, nil, err
		}
		var missing []string
		for i, s := range loopSteps {
			ok, detail := s.Done(c)
			if ok && !done[i] {
				done[i] = true
				reached(s, time.Since(start), detail)
			}
			if !done[i] {
				missing = append(missing, s.Name+" ("+detail+")")
			}
		}
		if len(missing) == 0 || time.Since(start) >= timeout {
			return c, missing, nil
		}
		select {
		case <-ctx.Done():
			return c, missing, ctx.Err()
		case <-time.After(poll):
		}
	}
}

func devDemoCmd(a *app, stack func() *devstack.Stack) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Follow TIP's main loop on the local stack until every module has shown its work, then summarise",
		Long: `Demo watches what the worker records while the core runs: the blacklists loaded and
weighted, spam harvested from the lab's archive, IMAP trap and agent, the spam's
domains triaged, flux monitors checking them, and the flux agents they find listed
and weighted in the blacklists. It prints each step as it happens, then a summary
with links and commands to try. ` + "`make demo`" + ` runs it after starting everything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "Following TIP's main loop (at most %s; the lab lives a day every two minutes):\n", timeout)
				c, missing, err := watchLoop(ctx, db, timeout, 2*time.Second, func(s loopStep, after time.Duration, detail string) {
					fmt.Fprintf(out, "  %6s  %s: %s\n", after.Round(time.Second), s.Name, detail)
				})
				if err != nil {
					return err
				}
				fmt.Fprintln(out)
				live := liveDNS(ctx, db, a.cfg.DNS)
				api := ""
				if stack().Running(devstack.API) {
					api = liveAPI(ctx, db, a.cfg.API)
				}
				printDemoSummary(out, c, stack(), a.cfg.Temporal.Namespace, live, api, metricsLinks(a.cfg))
				if len(missing) > 0 {
					return fmt.Errorf("not seen within %s: %s; see `bin/tip status` and the worker's log in %s",
						timeout, strings.Join(missing, "; "), stack().Dir(devstack.Worker))
				}
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up waiting after this long")
	return cmd
}

// printDemoSummary ends the demo: counts per module, where to look, what to try.
func printDemoSummary(w io.Writer, c storage.LoopCounts, s *devstack.Stack, namespace, live, api string, metrics [][2]string) {
	kinds := spamKinds(c)
	fa, ss := c.Own[contract.FluxAgentsSource], c.Own[contract.SpamSendersSource]
	var verdicts []string
	for v, n := range c.Verdicts {
		verdicts = append(verdicts, fmt.Sprintf("%d %s", n, v))
	}
	sort.Slice(verdicts, func(i, j int) bool { return verdictOrder(verdicts[i]) < verdictOrder(verdicts[j]) })
	fmt.Fprintf(w, "Summary\n")
	fmt.Fprintf(w, "  blacklists     %d sources (%d loaded at their last run), %s active listings, %d weighted\n",
		c.Sources, c.SourcesLoaded, thousands(c.Listed), c.Weighted)
	fmt.Fprintf(w, "  spam           %s mails: archive %d, IMAP %d, agent %d; senders listed as %s: %d\n",
		thousands(c.Mails), kinds["archive"], kinds["imap"], kinds["agent"], contract.SpamSendersSource, ss.Active)
	fmt.Fprintf(w, "  flux triage    %d domains (%d from spam, %d from the blacklists): %s\n",
		sumValues(c.Triaged), c.Triaged[contract.SpamModule], c.Triaged[contract.BlacklistModule], strings.Join(verdicts, ", "))
	fmt.Fprintf(w, "  flux monitors  %d running, %d checks recorded\n", c.Flux.Running(), c.Checks)
	fmt.Fprintf(w, "  flux networks  %d networks; %d flux agents listed as %s (weight %.2f)\n",
		c.Flux.Networks, fa.Active, contract.FluxAgentsSource, fa.Weight)
	if live != "" {
		fmt.Fprintf(w, "  live DNS       %s\n", live)
	}
	if api != "" {
		fmt.Fprintf(w, "  API            %s\n", api)
	}
	ui := s.TemporalUI()
	if ui != "" {
		base := ui + "/namespaces/" + url.PathEscape(namespace) + "/workflows"
		fmt.Fprintf(w, "\nWeb UI\n")
		fmt.Fprintf(w, "  %s   every run\n", base)
		fmt.Fprintf(w, "  %s/tip-core   the core: its children, signals and events\n", base)
		fmt.Fprintf(w, "  %s?query=%s\n      the monitors, by their search attributes\n", base,
			url.QueryEscape(`WorkflowType="FluxMonitor" AND FluxState="watching"`))
	}
	if len(metrics) > 0 {
		fmt.Fprintf(w, "\nMetrics (Prometheus; alerts in deploy/prometheus/rules.yaml, dashboard deploy/grafana/tip.json)\n")
		for _, m := range metrics {
			fmt.Fprintf(w, "  %-34s %s\n", m[0], m[1])
		}
	}
	fmt.Fprintf(w, "\nTry\n")
	for _, l := range [][2]string{
		{"bin/tip status", "the operator's screen: timetable, monitors, source health, errors"},
		{"bin/tip report --out state/report", "an HTML report with charts (opens offline)"},
		{"bin/tip sources", "every source's health, metrics and weight"},
		{"bin/tip spam stats", "the spam by origin, sender ASN and country, campaigns"},
		{"bin/tip flux list; bin/tip flux networks", "the monitored domains and the botnets behind them"},
		{"bin/tip blacklists export --format csv | head", "the blacklists with scores and what the sources say"},
		{"bin/tip api token add me --scope all --ttl 1d", "a token for the API: README, Sharing"},
		{"bin/tip lab summary", "what the lab serves: feeds, spam archive, DNS, traps"},
		{"bin/tip lab truth | less", "the lab's ground truth, to compare"},
		stopLine(s),
	} {
		fmt.Fprintf(w, "  %-46s %s\n", l[0], l[1])
	}
}

// liveDNS says what `tip serve dns` answers: its RPZ zone's serial, and its
// DNSBL's answer for a spamtrap sender; "" when no DNS server is configured.
func liveDNS(ctx context.Context, db *storage.DB, cfg config.DNS) string {
	if cfg.Listen == "" || len(cfg.RPZ) == 0 || len(cfg.DNSBL) == 0 {
		return ""
	}
	serial, err := dnsserve.Serial(ctx, cfg.Listen, cfg.RPZ[0].Name)
	if err != nil {
		return fmt.Sprintf("not answering on %s (%v)", cfg.Listen, err)
	}
	out := fmt.Sprintf("%s serial %d on %s", dns.Fqdn(cfg.RPZ[0].Name), serial, cfg.Listen)
	sender, err := db.SampleListing(ctx, contract.SpamSendersSource)
	if err != nil || sender == "" {
		return out
	}
	ans, err := dnsserve.Ask(ctx, cfg.Listen, cfg.DNSBL[0].Name, sender)
	switch {
	case err != nil:
		return out + fmt.Sprintf("; %s: %v", cfg.DNSBL[0].Name, err)
	case len(ans.Codes) == 0:
		return out + fmt.Sprintf("; %s: not listed", ans.Query)
	}
	return out + fmt.Sprintf("; %s → %s (%s)", ans.Query, strings.Join(ans.Codes, ", "), ans.TXT)
}

// stopLine says how to stop the stack the demo ran on.
func stopLine(s *devstack.Stack) [2]string {
	if s.TemporalOnPostgres {
		return [2]string{"make down-prod", "stop the production-like stack (data stays in " + s.StateDir + ")"}
	}
	return [2]string{"make down", "stop everything (data stays); make wipe deletes it"}
}

// verdictOrder puts flux verdicts first in the summary.
func verdictOrder(s string) int {
	_, v, _ := strings.Cut(s, " ")
	if i := slices.Index([]string{"flux", "double-flux", "cdn-allowlisted", "benign", "nxdomain", "error"}, v); i >= 0 {
		return i
	}
	return 99
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// thousands writes n with thousands separators: 1,001,624.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// metricsLinks are the /metrics endpoints the local stack serves, and what
// each carries.
func metricsLinks(cfg config.Config) [][2]string {
	var out [][2]string
	for _, m := range []struct{ addr, what string }{
		{cfg.API.MetricsAddress, "TIP's sources, spam collectors, flux monitors and core (tip serve api), and the API's requests"},
		{cfg.Worker.MetricsAddress, "the worker: the Temporal SDK's task latencies, cache, failures"},
		{cfg.DNS.MetricsAddress, "tip serve dns: queries, answers, transfers"},
	} {
		if m.addr != "" {
			out = append(out, [2]string{"http://" + m.addr + "/metrics", m.what})
		}
	}
	return out
}
