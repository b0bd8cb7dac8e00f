package main

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

// agentsCmd is the collector's side of the spamtrap agents: the agents of the
// spam catalog and their syncs (`tip agent` is the agent's own side).
func agentsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "agents", Short: "Spamtrap agents this collector pulls from: add, list, sync now, reset"}
	var ag catalog.Agent
	add := &cobra.Command{
		Use:   "add",
		Short: "Add an agent to the spam catalog (its token stays in the environment variable or the file you name)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fp, err := catalog.Fingerprint(ag.Fingerprint)
			if err != nil {
				return fmt.Errorf("--fingerprint %w", err)
			}
			ag.Fingerprint = fp
			where := "set " + ag.TokenEnv + " in the worker's environment"
			if ag.TokenFile != "" {
				if ag.TokenFile, err = filepath.Abs(ag.TokenFile); err != nil {
					return err
				}
				where = "the worker reads the token from " + ag.TokenFile
			}
			if err := catalog.AddAgent(a.cfg.Spam.Catalog, ag); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added agent %s to %s; the spam module syncs it from its next run (%s)\n",
				ag.Name, a.cfg.Spam.Catalog, where)
			return nil
		},
	}
	f := add.Flags()
	f.StringVar(&ag.Name, "name", "", "a short name (lower-case letters, digits, . _ -)")
	f.StringVar(&ag.URL, "url", "", "the agent's address, https://host:port")
	f.StringVar(&ag.TokenEnv, "token-env", "", "the environment variable holding the token `tip agent token add` printed")
	f.StringVar(&ag.TokenFile, "token-file", "", "or a file holding it, readable by the worker (and best by nobody else)")
	f.StringVar(&ag.Fingerprint, "fingerprint", "", "the agent certificate's SHA-256 fingerprint, as `tip agent init` printed it")
	f.BoolVar(&ag.Raw, "raw", false, "also pull the raw mails (the token needs scope raw)")
	f.DurationVar(&ag.Interval, "interval", 5*time.Minute, "least time between two syncs")
	for _, req := range []string{"name", "url", "fingerprint"} {
		_ = add.MarkFlagRequired(req)
	}
	add.MarkFlagsOneRequired("token-env", "token-file")
	add.MarkFlagsMutuallyExclusive("token-env", "token-file")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the agents with the last batch recorded from each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, db, err := spamCatalogDB(cmd, a)
			if err != nil {
				return err
			}
			defer db.Close()
			type row struct {
				catalog.Agent
				Cursor storage.AgentCursor `json:"cursor"`
			}
			var rows []row
			for _, ag := range c.Agents {
				if fp, err := ag.Pin(); err == nil {
					ag.Fingerprint = fp // the pin of its certificate_file, as it is now
				}
				cur, err := db.AgentCursor(cmd.Context(), ag.Name)
				if err != nil {
					return err
				}
				rows = append(rows, row{ag, cur})
			}
			if asJSON {
				return jsonLines(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AGENT\tURL\tRAW\tENABLED\tAGENT ID\tBATCH\tMAILS\tLAST SYNC")
			for _, r := range rows {
				last := "never"
				if r.Cursor.SyncedAt != nil {
					last = r.Cursor.SyncedAt.UTC().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%t\t%t\t%s\t%d\t%d\t%s\n", r.Name, r.URL, r.Raw, r.Enabled, r.Cursor.AgentID, r.Cursor.Version, r.Cursor.Mails, last)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line")

	sync := &cobra.Command{
		Use:   "sync NAME",
		Short: "Sync one agent now (whatever its interval) and wait for the result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ag, err := catalogAgent(a, args[0])
			if err != nil {
				return err
			}
			db, err := storage.OpenDB(ctx, a.cfg.Postgres.DSN)
			if err != nil {
				return err
			}
			// Asked for now: the interval since the last sync does not apply.
			err = db.ReleaseCollectorRun(ctx, "agent:"+ag.Name)
			db.Close()
			if err != nil {
				return err
			}
			tc, err := starter.Dial(ctx, a.cfg.Temporal, a.log, client.Options{})
			if err != nil {
				return err
			}
			defer tc.Close()
			run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "agent/" + ag.Name, TaskQueue: a.cfg.Temporal.TaskQueue,
				TypedSearchAttributes: temporal.NewSearchAttributes(workflows.Module.ValueSet(contract.SpamModule), workflows.Source.ValueSet(ag.Name))},
				workflows.AgentSync, ag)
			if err != nil {
				return starter.ExplainTemporal(a.cfg.Temporal.Address, err)
			}
			var res contract.IngestResult
			if err := run.Get(ctx, &res); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if res.Status == contract.FetchUnchanged {
				fmt.Fprintf(out, "%s: up to date\n", ag.Name)
				return nil
			}
			fmt.Fprintf(out, "%s: %d mails pulled, %d new to TIP, %d with defects, %d URL domains\n", ag.Name, res.Members, res.New, res.Defective, len(res.Domains))
			return nil
		},
	}
	reset := &cobra.Command{
		Use:   "reset NAME",
		Short: "Forget how far an agent was read (after it was reinstalled): the next sync starts at its first batch",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ag, err := catalogAgent(a, args[0])
			if err != nil {
				return err
			}
			db, err := storage.OpenDB(cmd.Context(), a.cfg.Postgres.DSN)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.ResetAgentCursor(cmd.Context(), ag.Name); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: cursor reset; mails already recorded stay and are not recorded twice\n", ag.Name)
			return nil
		},
	}
	cmd.AddCommand(add, list, sync, reset)
	return cmd
}

func catalogAgent(a *app, name string) (catalog.Agent, error) {
	c, err := catalog.LoadSpam(a.cfg.Spam.Catalog)
	if err != nil {
		return catalog.Agent{}, err
	}
	for _, ag := range c.Agents {
		if ag.Name == name {
			return ag, nil
		}
	}
	return catalog.Agent{}, fmt.Errorf("no agent %q in %s", name, c.Path)
}
