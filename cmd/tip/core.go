package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/status"
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
	timetable := &cobra.Command{
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
				status.PrintCore(cmd.OutOrStdout(), st, time.Now())
				return nil
			})
		},
	}
	timetable.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "start",
			Short: "Start Core on the task queue unless it already runs; a running Core gets this version's module list",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return a.withTemporal(cmd, func(ctx context.Context, c client.Client) error {
					runID, started, err := starter.EnsureCore(ctx, c, a.cfg.Temporal.TaskQueue, starter.DefaultModules(a.cfg))
					if err != nil {
						return err
					}
					verb := "started"
					if !started {
						verb = "already running (module list sent)"
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s (run %s) on task queue %q\n", contract.CoreWorkflowID, verb, runID, a.cfg.Temporal.TaskQueue)
					return nil
				})
			},
		},
		timetable,
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
