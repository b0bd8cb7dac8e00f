package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
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
			return a.addToSpamCatalog(cmd, "agent", ag.Name, func(path string) error { return catalog.AddAgent(path, ag) },
				"syncs it from its next run ("+where+")")
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

	type row struct {
		catalog.Agent
		Cursor storage.AgentCursor `json:"cursor"`
	}
	list := listCollectorsCmd(a, "List the agents with the last batch recorded from each", func(c *catalog.Spam) []catalog.Agent { return c.Agents },
		func(ctx context.Context, db *storage.DB, ag catalog.Agent) (row, error) {
			if fp, err := ag.Pin(); err == nil {
				ag.Fingerprint = fp // the pin of its certificate_file, as it is now
			}
			cur, err := db.AgentCursor(ctx, ag.Name)
			return row{ag, cur}, err
		},
		"AGENT\tURL\tRAW\tENABLED\tAGENT ID\tBATCH\tMAILS\tLAST SYNC", func(r row) string {
			last := "never"
			if r.Cursor.SyncedAt != nil {
				last = r.Cursor.SyncedAt.UTC().Format(time.DateTime)
			}
			return fmt.Sprintf("%s\t%s\t%t\t%t\t%s\t%d\t%d\t%s", r.Name, r.URL, r.Raw, r.Enabled, r.Cursor.AgentID, r.Cursor.Version, r.Cursor.Mails, last)
		})

	sync := &cobra.Command{
		Use:   "sync NAME",
		Short: "Sync one agent now (whatever its interval) and wait for the result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ag, err := catalogAgent(a, args[0])
			if err != nil {
				return err
			}
			// Asked for now: the interval since the last sync does not apply.
			err = a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				return db.ReleaseCollectorRun(ctx, "agent:"+ag.Name)
			})
			if err != nil {
				return err
			}
			var res contract.IngestResult
			err = a.withTemporal(cmd, func(ctx context.Context, c client.Client) (err error) {
				res, err = starter.SyncAgent(ctx, c, a.cfg.Temporal, ag)
				return err
			})
			if err != nil {
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
			if err := a.withDB(cmd, func(ctx context.Context, db *storage.DB) error { return db.ResetAgentCursor(ctx, ag.Name) }); err != nil {
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
