package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/fluxview"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/starter"
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
					if err := starter.SignalMonitor(ctx, c, d, name, arg); err != nil {
						return err
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
				monitor := starter.MonitorConfig(a.cfg)
				for _, arg := range args {
					d, ok := flux.NormalizeDomain(arg)
					if !ok {
						return fmt.Errorf("%q is not a domain to watch", arg)
					}
					if err := starter.WatchDomain(ctx, c, monitor.TaskQueue, monitor, d, contract.WatchRequest{Origin: starter.OriginCLI}); err != nil {
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
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
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
				fluxview.List(cmd.OutOrStdout(), rows)
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
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				row, err := db.FluxDomainRow(ctx, d)
				if err != nil {
					return err
				}
				var floor time.Time // the full-resolution window: every observation when kept for ever
				if keep := a.cfg.Retention.FluxFull(); keep > 0 {
					floor = storage.FullResolutionFrom(time.Now(), keep)
				}
				h, err := fluxview.Load(ctx, db, d, floor, showLast)
				if err != nil {
					return err
				}
				tl, sum := fluxview.Draw(h)
				if showLast > 0 && len(tl) > showLast {
					tl = tl[len(tl)-showLast:]
				}
				if row.Summary == nil || row.Summary.Observations < sum.Observations {
					row.Summary = &sum // the monitor records its own every few checks: the replay is newer
				}
				if showJSON {
					return writeJSON(cmd.OutOrStdout(), struct {
						storage.FluxDomain
						Timeline []fluxview.Point `json:"timeline"`
					}{row, tl})
				}
				fluxview.Show(cmd.OutOrStdout(), row, tl)
				return nil
			})
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON: the domain's row and one timeline point per observation")
	show.Flags().IntVar(&showLast, "last", 5000, "points to chart, the newest: observations, and hourly summaries before retention.flux_full_days (0: all)")

	var netJSON bool
	networks := &cobra.Command{
		Use:   "networks",
		Short: "The flux networks: domains sharing addresses, as the last flux-networks run grouped them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				nets, err := db.FluxNetworks(ctx)
				if err != nil {
					return err
				}
				if netJSON {
					return jsonLines(cmd.OutOrStdout(), nets)
				}
				return fluxview.Networks(cmd.OutOrStdout(), nets)
			})
		},
	}
	networks.Flags().BoolVar(&netJSON, "json", false, "print one JSON object a line")

	cmd.AddCommand(watch, list, show, networks, probeCmd(a), fluxPDNSCmd(a),
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
			// The addresses are annotated with their ASNs when the table loads;
			// without it, the reason is logged once, and the verdicts say what
			// that leaves unknown.
			dns := &activities.Resolution{Resolver: res, ASNTable: cfg.ASNTable,
				ASN: activities.NewASNTables(cfg.ASNTableAllowPrivate, ipasn.Limits{})}
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
			looks, err := probeDomains(ctx, cmd.ErrOrStderr(), dns, domains, allow, maxWait)
			if err != nil {
				return err
			}
			var out []fluxview.Probe
			for i := range domains {
				as := flux.TriageAll(looks[i], nil, allow) // annotated when resolved
				out = append(out, fluxview.Probe{Assessment: as, Scored: as.Scored(), Resolutions: looks[i]})
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			fluxview.Probes(cmd.OutOrStdout(), out)
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
func probeDomains(ctx context.Context, w io.Writer, dns *activities.Resolution, domains []string, allow *flux.Allowlist, maxWait time.Duration) ([][]flux.Observation, error) {
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
		obs, err := dns.Resolve(ctx, names)
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
