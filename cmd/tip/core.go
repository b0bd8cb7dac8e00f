package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/workflows/contract"
)

func coreCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "core",
		Short: "Start, inspect and steer the Core scheduler workflow (" + contract.CoreWorkflowID + ")",
		Long: `Core is the one long-running workflow that runs every module (blacklist refresh,
spam ingest, agent sync, flux triage) as a child workflow on its interval, a fixed
delay after the previous run ended, and routes events between modules.`,
	}
	signal := func(name, short string) *cobra.Command {
		return &cobra.Command{
			Use:   name + " MODULE",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.withTemporal(cmd, func(ctx context.Context, c client.Client) error {
					if err := starter.SignalCore(ctx, c, name, contract.ModuleSignal{Module: args[0]}); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "sent %s for %s to %s\n", name, args[0], contract.CoreWorkflowID)
					return nil
				})
			},
		}
	}
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Print Core's timetable: each module's next run, interval, running child and last result",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withTemporal(cmd, func(ctx context.Context, c client.Client) error {
				st, err := starter.CoreStatus(ctx, c)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				printCoreStatus(cmd.OutOrStdout(), st)
				return nil
			})
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "start",
			Short: "Start Core on the task queue unless it already runs; a running Core gets this version's module list",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return a.withTemporal(cmd, func(ctx context.Context, c client.Client) error {
					mods := starter.DefaultModules(a.cfg)
					runID, started, err := starter.StartCore(ctx, c, a.cfg.Temporal.TaskQueue, contract.CoreInput{Modules: mods})
					if err != nil {
						return err
					}
					verb := "started"
					if !started {
						// An upgrade may have added modules: Core adopts the list at
						// its next continue-as-new (it ignores an unchanged one).
						if err := starter.SignalCore(ctx, c, contract.SignalConfigure, mods); err != nil {
							return err
						}
						verb = "already running (module list sent)"
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s (run %s) on task queue %q\n", contract.CoreWorkflowID, verb, runID, a.cfg.Temporal.TaskQueue)
					return nil
				})
			},
		},
		status,
		signal(contract.SignalRunNow, "Run a module now, once, even if it is paused"),
		signal(contract.SignalPause, "Start no new runs of a module until it is resumed"),
		signal(contract.SignalResume, "Schedule a paused module again"),
		&cobra.Command{
			Use:   contract.SignalSetInterval + " MODULE DURATION",
			Short: "Set the delay between the end of a module's run and the start of its next (e.g. 6h)",
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				d, err := time.ParseDuration(args[1])
				if err != nil || d <= 0 {
					return fmt.Errorf("interval %q: want a positive duration such as 30m or 6h", args[1])
				}
				return a.withTemporal(cmd, func(ctx context.Context, c client.Client) error {
					if err := starter.SignalCore(ctx, c, contract.SignalSetInterval, contract.ModuleSignal{Module: args[0], Interval: d}); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "sent set-interval %s for %s to %s\n", d, args[0], contract.CoreWorkflowID)
					return nil
				})
			},
		},
	)
	return cmd
}

func printCoreStatus(w io.Writer, st contract.CoreStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tSTATE\tINTERVAL\tNEXT RUN\tRUNNING\tLAST\tPENDING")
	for _, m := range st.Modules {
		state := moduleState(m)
		next := "-"
		if m.Running == "" && !m.Next.IsZero() && m.Enabled && !m.Paused {
			next = m.Next.UTC().Format(time.RFC3339) + " (in " + time.Until(m.Next).Round(time.Second).String() + ")"
		}
		running := "-"
		if m.Running != "" {
			running = m.Running
		}
		last := "-"
		if l := m.Last; l != nil {
			last = fmt.Sprintf("%s %s (%s)", l.Status, l.Finished.UTC().Format(time.RFC3339), l.Finished.Sub(l.Started).Round(time.Second))
			if detail := firstNonEmpty(l.Error, l.Summary); detail != "" {
				last += ": " + oneLine(detail, 60)
			}
		}
		pending := fmt.Sprintf("%d", m.PendingEvents)
		if m.DroppedEvents > 0 {
			pending += fmt.Sprintf(" (%d dropped)", m.DroppedEvents)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, state, m.Interval, next, running, last, pending)
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

// moduleState is a module's state in Core's timetable: running, paused,
// disabled or scheduled.
func moduleState(m contract.ModuleStatus) string {
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

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// oneLine folds s onto one line of at most max characters, ending in … when cut.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
