package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/worker"
	"github.com/tip-project/tip/workflows/contract"
)

func fluxCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flux",
		Short: "Fast-flux domains: triage on the spot, watch, list, show timelines, stop, networks",
		Long: `Each watched domain has one durable monitor workflow, flux/<domain>, that
re-resolves it for weeks or months. Domains from spam are triaged by the core's
flux-triage module and the fluxy ones watched; domains sharing addresses form
networks whose addresses TIP lists as its blacklist source tip-flux-agents.`,
	}
	withDB := func(cmd *cobra.Command, fn func(ctx context.Context, db *storage.DB) error) error {
		db, err := storage.OpenDB(cmd.Context(), a.cfg.Postgres.DSN)
		if err != nil {
			return err
		}
		defer db.Close()
		return fn(cmd.Context(), db)
	}
	signal := func(name, use, short string, payload func(args []string) (any, error)) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				arg, err := payload(args)
				if err != nil {
					return err
				}
				return a.withTemporal(cmd, func(ctx context.Context, c client.Client) error {
					d, _ := flux.NormalizeDomain(args[0])
					if err := c.SignalWorkflow(ctx, contract.MonitorWorkflowID(d), "", name, arg); err != nil {
						return fmt.Errorf("%s %s: %w (is it watched? tip flux list)", name, d, err)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "sent %s to %s\n", name, contract.MonitorWorkflowID(d))
					return nil
				})
			},
		}
	}
	noPayload := func([]string) (any, error) { return nil, nil }

	watch := &cobra.Command{
		Use:   "watch DOMAIN...",
		Short: "Start a monitor for each domain (or signal the one already running)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withTemporal(cmd, func(ctx context.Context, c client.Client) error {
				acts := &activities.Activities{Temporal: c, Flux: worker.FluxConfig(a.cfg)}
				for _, arg := range args {
					d, ok := flux.NormalizeDomain(arg)
					if !ok {
						return fmt.Errorf("%q is not a domain to watch", arg)
					}
					if err := acts.StartMonitor(ctx, d, contract.WatchRequest{Origin: "cli"}); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "watching %s (workflow %s)\n", d, contract.MonitorWorkflowID(d))
				}
				return nil
			})
		},
	}

	var state string
	var all, listJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the watched domains (with --all, every domain triaged too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				filter := state
				if filter == "" && !all {
					filter = "any"
				}
				rows, err := db.FluxDomains(ctx, filter, "")
				if err != nil {
					return err
				}
				if listJSON {
					return jsonLines(cmd.OutOrStdout(), rows)
				}
				printFluxList(cmd.OutOrStdout(), rows)
				return nil
			})
		},
	}
	list.Flags().StringVar(&state, "state", "", "only monitors in this state: watching, stable, paused, stopped")
	list.Flags().BoolVar(&all, "all", false, "every domain triaged, watched or not")
	list.Flags().BoolVar(&listJSON, "json", false, "print one JSON object a line")

	var showJSON bool
	var showLast int
	show := &cobra.Command{
		Use:   "show DOMAIN",
		Short: "A domain's verdict, monitor and timeline of IPs, ASNs, TTL and score",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, _ := flux.NormalizeDomain(args[0])
			return withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				row, err := db.FluxDomainRow(ctx, d)
				if err != nil {
					return err
				}
				obs, err := db.FluxObservations(ctx, d, showLast)
				if err != nil {
					return err
				}
				tl, sum := fluxTimeline(obs)
				if row.Summary == nil || row.Summary.Observations < sum.Observations {
					row.Summary = &sum // the monitor records its own every few checks: the replay is newer
				}
				if showJSON {
					return writeJSON(cmd.OutOrStdout(), struct {
						storage.FluxDomain
						Timeline []timelinePoint `json:"timeline"`
					}{row, tl})
				}
				printFluxShow(cmd.OutOrStdout(), row, tl)
				return nil
			})
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON: the domain's row and one timeline point per observation")
	show.Flags().IntVar(&showLast, "last", 5000, "observations to chart, the newest (0: all)")

	var netJSON bool
	networks := &cobra.Command{
		Use:   "networks",
		Short: "The flux networks: domains sharing addresses, as the last flux-networks run grouped them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				nets, err := db.FluxNetworks(ctx)
				if err != nil {
					return err
				}
				if netJSON {
					return jsonLines(cmd.OutOrStdout(), nets)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NETWORK\tDOMAINS\tIPS\tASNS\tMEMBERS")
				for _, n := range nets {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", n.Name, len(n.Domains), n.IPs, n.ASNs, oneLine(strings.Join(n.Domains, " "), 80))
				}
				return tw.Flush()
			})
		},
	}
	networks.Flags().BoolVar(&netJSON, "json", false, "print one JSON object a line")

	cmd.AddCommand(watch, list, show, networks, probeCmd(a),
		signal(contract.SignalFluxStop, "stop DOMAIN [REASON]", "End a domain's monitor (with its final summary)", func(args []string) (any, error) {
			return strings.Join(args[1:], " "), nil
		}),
		signal(contract.SignalFluxPause, "pause DOMAIN", "Stop checking a domain until resumed", noPayload),
		signal(contract.SignalFluxResume, "resume DOMAIN", "Check a paused domain again", noPayload),
		signal(contract.SignalFluxSetInterval, "set-interval DOMAIN DURATION", "Pin a monitor's cadence (0: back to its TTLs)", func(args []string) (any, error) {
			if len(args) != 2 {
				return nil, errors.New("want DOMAIN DURATION, e.g. flux.example 5m")
			}
			d, err := time.ParseDuration(args[1])
			if err != nil || d < 0 {
				return nil, fmt.Errorf("interval %q: want a duration such as 5m (0: back to the TTLs)", args[1])
			}
			return d, nil
		}),
	)
	return cmd
}

// probeCmd triages domains on the spot, without the stack: two resolutions a
// TTL apart, the features, the score and the verdict.
func probeCmd(a *app) *cobra.Command {
	var resolvers string
	var maxWait time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "probe DOMAIN...",
		Short: "Triage domains now, without the stack: resolutions, features, score, verdict",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := a.cfg.Flux
			if resolvers != "" {
				cfg.Resolvers = resolvers
			}
			res, err := worker.NewResolver(cfg, a.log)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// ResolveDomains annotates the addresses with their ASNs when the table
			// loads; without it, it logs why once, and the verdicts say what that
			// leaves unknown.
			acts := &activities.Activities{Resolver: res, Flux: worker.FluxConfig(a.cfg), ASNTableAllowPrivate: a.cfg.Flux.ASNTableAllowPrivate}
			allow, err := probeAllowlist(cfg)
			if err != nil {
				return err
			}
			var domains []string
			for _, arg := range args {
				d, ok := flux.NormalizeDomain(arg)
				if !ok {
					return fmt.Errorf("%q is not a domain to probe", arg)
				}
				domains = append(domains, d)
			}
			if maxWait == 0 {
				maxWait = cfg.TriageWait
			}
			looks, err := probeDomains(ctx, cmd.ErrOrStderr(), acts, domains, allow, maxWait)
			if err != nil {
				return err
			}
			type probe struct {
				flux.Assessment
				Scored      bool               `json:"scored"` // the score was computed (Assessment.Scored)
				Resolutions []flux.Observation `json:"resolutions"`
			}
			var out []probe
			for i := range domains {
				as := flux.TriageAll(looks[i], nil, allow) // annotated when resolved
				out = append(out, probe{as, as.Scored(), looks[i]})
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			for _, p := range out {
				f := p.Features
				score, asns := "score not computed", fmt.Sprintf("in %d ASNs, %d /16s, %d countries", f.ASNs, f.Prefixes, f.Countries)
				if p.Scored {
					score = fmt.Sprintf("score %.2f", p.Score)
				}
				if f.NoASN != "" {
					asns = fmt.Sprintf("in %d /16s (ASNs and countries not counted: the ASN table was unavailable)", f.Prefixes)
				}
				fmt.Fprintf(w, "%s: %s (%s) — %s\n", p.Domain, p.Verdict, score, p.Reason)
				for i, o := range p.Resolutions {
					ttl, _ := o.MinTTL()
					fmt.Fprintf(w, "  resolution %d at %s: %s, %d A, %d AAAA, %d NS, min TTL %ds %s\n", i+1, o.At.Format(time.TimeOnly), o.Status,
						len(o.A), len(o.AAAA), len(o.NS), ttl, o.Error)
				}
				fmt.Fprintf(w, "  features: %d IPs %s; D %.2f (per answer %.2f); Jaccard %.2f; NS %d names, %d addresses, changed %v\n",
					f.IPs, asns, f.Diversity, f.AnswerDiversity, f.Jaccard, f.NSNames, f.NSAddrs, f.NSChanged)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&resolvers, "resolver", "", "recursive resolver(s) to ask, host:port, comma-separated (default: flux.resolvers of the configuration)")
	cmd.Flags().DurationVar(&maxWait, "max-wait", 0, "wait at most this long for the answers' TTLs to run out before resolving again (default flux.triage_wait)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// probeDomains resolves the domains as triage does: once, again when the
// longest TTL of the first answers has run out (at most maxWait), and a third
// time, once the second answers' TTLs have run out, for the domains near flux
// (flux.LookAgain). It says on w what each wait was for, and returns each
// domain's resolutions in order.
func probeDomains(ctx context.Context, w io.Writer, acts *activities.Activities, domains []string, allow *flux.Allowlist, maxWait time.Duration) ([][]flux.Observation, error) {
	looks := make([][]flux.Observation, len(domains))
	next := make([]int, len(domains)) // the domains resolved next, by index
	for i := range next {
		next[i] = i
	}
	for n := 1; n <= 3 && len(next) > 0; n++ {
		names := make([]string, len(next))
		var last []flux.Observation
		for k, i := range next {
			names[k] = domains[i]
			if n > 1 {
				last = append(last, looks[i][n-2])
			}
		}
		if n > 1 {
			wait := flux.ResolveAgainAfter(last, maxWait)
			fmt.Fprintf(w, "resolving %d domain(s) again in %s…\n", len(next), wait.For)
			select {
			case <-time.After(wait.For):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			fmt.Fprintf(w, "resolution %d: %s\n", n, wait)
		}
		obs, err := acts.ResolveDomains(ctx, names)
		if err != nil {
			return nil, err
		}
		var near []int
		for k, i := range next {
			looks[i] = append(looks[i], obs[k])
			if n == 2 && flux.LookAgain(flux.TriageAll(looks[i], nil, allow), looks[i][0], looks[i][1], maxWait) {
				near = append(near, i)
			}
		}
		if n > 1 {
			next = near
		}
	}
	return looks, nil
}

// probeAllowlist is the configured CDN allowlist file, if any (the probe runs
// without the database, so the blacklist catalog's CIDR allowlists do not apply).
func probeAllowlist(cfg config.Flux) (*flux.Allowlist, error) {
	if cfg.Allowlist == "" {
		return nil, nil
	}
	f, err := os.Open(cfg.Allowlist)
	if err != nil {
		return nil, fmt.Errorf("flux allowlist: %w", err)
	}
	defer f.Close()
	return flux.ParseAllowlist(f)
}

func printFluxList(w io.Writer, rows []storage.FluxDomain) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tMONITOR\tVERDICT\tSCORE\tIPS\tASNS\tNS\tSINCE\tNETWORK")
	for _, r := range rows {
		ns := "-"
		if r.Summary != nil && r.Summary.Observations > 0 {
			ns = fmt.Sprint(r.Summary.NSNames)
		}
		since := r.TriagedAt
		if r.MonitorSince != nil {
			since = *r.MonitorSince
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%d\t%d\t%s\t%s\t%s\n", r.Domain, firstNonEmpty(r.Monitor, "-"), r.Verdict, r.Score, r.IPs, r.ASNs, ns,
			since.UTC().Format("2006-01-02 15:04"), firstNonEmpty(r.Network, "-"))
	}
	tw.Flush()
}

// timelinePoint is a monitor's running figures after one observation.
type timelinePoint struct {
	At     time.Time   `json:"at"`
	Status flux.Status `json:"status"`
	Answer int         `json:"answer"` // addresses in this answer
	IPs    int         `json:"ips"`    // cumulative
	ASNs   int         `json:"asns"`   // cumulative
	NS     int         `json:"ns"`     // cumulative NS names
	TTL    uint32      `json:"ttl"`    // this answer's lowest
	Score  float64     `json:"score"`  // Holz score of this answer and the one before
}

// fluxTimeline replays the observations through the monitor's own metrics and
// returns a point per observation and the summary after the last.
func fluxTimeline(obs []flux.Observation) ([]timelinePoint, flux.Summary) {
	var m flux.Metrics
	var s flux.Summary
	out := make([]timelinePoint, 0, len(obs))
	for _, o := range obs {
		m.Add(o)
		s = m.Summary(o.At)
		ttl, _ := o.MinTTL()
		out = append(out, timelinePoint{At: o.At, Status: o.Status, Answer: len(o.A) + len(o.AAAA), IPs: s.IPs, ASNs: s.ASNs, NS: s.NSNames, TTL: ttl, Score: s.Score})
	}
	return out, s
}

func printFluxShow(w io.Writer, r storage.FluxDomain, tl []timelinePoint) {
	fmt.Fprintf(w, "%s: %s, score %.2f (triaged %s, %d times, first reported by %s)\n", r.Domain, r.Verdict, r.Score,
		r.TriagedAt.UTC().Format(time.RFC3339), r.Triages, firstNonEmpty(r.Origin, "-"))
	if r.Reason != "" {
		fmt.Fprintf(w, "  %s\n", r.Reason)
	}
	if r.Monitor != "" {
		fmt.Fprintf(w, "monitor %s: %s", contract.MonitorWorkflowID(r.Domain), r.Monitor)
		if r.MonitorSince != nil {
			fmt.Fprintf(w, " since %s", r.MonitorSince.UTC().Format(time.RFC3339))
		}
		if r.MonitorEnded != nil {
			fmt.Fprintf(w, ", ended %s", r.MonitorEnded.UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	if r.Network != "" {
		fmt.Fprintf(w, "network: %s\n", r.Network)
	}
	if s := r.Summary; s != nil {
		fmt.Fprintf(w, "summary: %d observations, %d IPs (%d IPv6) in %d ASNs, %d /16s, %d countries; %d NS names, %d NS addresses (churn %.2f, double flux %v); TTL min %ds median %ds; %.1f new IPs/h; max score %.1f\n",
			s.Observations, s.IPs, s.IPv6, s.ASNs, s.Prefixes, s.Countries, s.NSNames, s.NSAddrs, s.NSChurn, s.DoubleFlux, s.MinTTL, s.MedianTTL, s.NewIPsPerHour, s.MaxScore)
	}
	if len(tl) == 0 {
		fmt.Fprintln(w, "no observations recorded yet")
		return
	}
	fmt.Fprintf(w, "\ntimeline: %d observations, %s to %s\n", len(tl), tl[0].At.UTC().Format("2006-01-02 15:04"), tl[len(tl)-1].At.UTC().Format("2006-01-02 15:04"))
	const width = 60
	series := []struct {
		name string
		v    func(timelinePoint) float64
		last func(timelinePoint) string
	}{
		{"IPs (cumulative)", func(p timelinePoint) float64 { return float64(p.IPs) }, func(p timelinePoint) string { return fmt.Sprint(p.IPs) }},
		{"ASNs (cumulative)", func(p timelinePoint) float64 { return float64(p.ASNs) }, func(p timelinePoint) string { return fmt.Sprint(p.ASNs) }},
		{"IPs per answer", func(p timelinePoint) float64 { return float64(p.Answer) }, func(p timelinePoint) string { return fmt.Sprint(p.Answer) }},
		{"TTL (s)", func(p timelinePoint) float64 { return float64(p.TTL) }, func(p timelinePoint) string { return fmt.Sprint(p.TTL) }},
		{"score", func(p timelinePoint) float64 { return p.Score }, func(p timelinePoint) string { return fmt.Sprintf("%.1f", p.Score) }},
	}
	for _, s := range series {
		vals := bucketMax(tl, width, s.v)
		fmt.Fprintf(w, "  %-18s %s  %s\n", s.name, sparkline(vals), s.last(tl[len(tl)-1]))
	}
}

// bucketMax spreads the points over at most width columns and keeps each
// column's largest value.
func bucketMax(tl []timelinePoint, width int, v func(timelinePoint) float64) []float64 {
	n := min(len(tl), width)
	out := make([]float64, n)
	for i := range out {
		lo, hi := i*len(tl)/n, (i+1)*len(tl)/n
		out[i] = v(tl[lo])
		for _, p := range tl[lo:hi] {
			out[i] = max(out[i], v(p))
		}
	}
	return out
}

// sparkline draws values as block characters between their minimum and maximum.
func sparkline(vals []float64) string {
	const bars = "▁▂▃▄▅▆▇█"
	runes := []rune(bars)
	lo, hi := slices.Min(vals), slices.Max(vals)
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if hi > lo {
			i = int((v - lo) / (hi - lo) * float64(len(runes)-1))
		}
		b.WriteRune(runes[i])
	}
	return b.String()
}
