package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/storage"
)

func apiCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api",
		Short: "The HTTP API's tokens (tip serve api): add (printed once), list, revoke",
	}
	cmd.AddCommand(apiTokenCmd(a))
	return cmd
}

// withTokens runs fn on the configured PostgreSQL once its schema holds the
// tokens; a database behind this binary is told to migrate first.
func withTokens(a *app, cmd *cobra.Command, fn func(ctx context.Context, db *storage.DB) error) error {
	return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
		if err := db.CheckSchema(ctx); errors.Is(err, storage.ErrSchemaBehind) {
			return err
		}
		return fn(ctx, db)
	})
}

func apiTokenCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Tokens of tip serve api, kept hashed in PostgreSQL: add (printed once), list, revoke",
	}

	var scopes, ttl string
	var addJSON bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Make a token for a client of the API and print it; only its hash is kept",
		Long: `Make a token for the client NAME and print it on standard output: this is the
only time it is shown, PostgreSQL keeps only its SHA-256. Scopes (comma-separated):
lookup (/v1/lookup), export (/v1/export, /misp/, /taxii2/), sources (/v1/sources),
or all. Every replica of tip serve api accepts it at once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := storage.ParseAPIScopes(scopes)
			if err != nil {
				return err
			}
			var life time.Duration
			if ttl != "" {
				if life, err = parseTTL(ttl); err != nil {
					return fmt.Errorf("--ttl %q: want a positive duration such as 90d or 720h, at most 36500d", ttl)
				}
			}
			return withTokens(a, cmd, func(ctx context.Context, db *storage.DB) error {
				secret, tk, err := db.AddAPIToken(ctx, args[0], sc, life)
				if err != nil {
					return err
				}
				if addJSON {
					return json.NewEncoder(cmd.OutOrStdout()).Encode(struct {
						Name    string             `json:"name"`
						Scopes  []storage.APIScope `json:"scopes"`
						Expires time.Time          `json:"expires,omitzero"`
						Token   string             `json:"token"`
					}{tk.Name, tk.Scopes, tk.Expires, secret})
				}
				printNewToken(cmd, tk.Name, "scopes "+tk.ScopeList(), tk.Expires, secret)
				return nil
			})
		},
	}
	add.Flags().StringVar(&scopes, "scope", string(storage.ScopeLookup), "lookup, export, sources (comma-separated), or all")
	add.Flags().StringVar(&ttl, "ttl", "", "lifetime, e.g. 90d or 720h (default: never expires)")
	add.Flags().BoolVar(&addJSON, "json", false, "print JSON")

	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token; every replica of tip serve api refuses it from its next request on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withTokens(a, cmd, func(ctx context.Context, db *storage.DB) error {
				tk, err := db.RevokeAPIToken(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "revoked %s at %s\n", tk.Name, tk.Revoked.Format(time.RFC3339))
				return nil
			})
		},
	}

	var listJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tokens: name, scopes, status, dates (never the tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withTokens(a, cmd, func(ctx context.Context, db *storage.DB) error {
				tokens, err := db.APITokens(ctx)
				if err != nil {
					return err
				}
				now := time.Now()
				type row struct {
					storage.APIToken
					Status string `json:"status"`
				}
				rows := make([]row, len(tokens))
				for i, tk := range tokens {
					rows[i] = row{tk, tk.Status(now)}
				}
				out := cmd.OutOrStdout()
				if listJSON {
					return json.NewEncoder(out).Encode(rows)
				}
				date := func(t time.Time) string {
					if t.IsZero() {
						return "-"
					}
					return t.UTC().Format("2006-01-02 15:04")
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSCOPES\tSTATUS\tCREATED\tEXPIRES\tREVOKED\tLAST USED")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.ScopeList(), r.Status, date(r.Created), date(r.Expires), date(r.Revoked), date(r.LastUsed))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON (a list)")

	cmd.AddCommand(add, list, revoke)
	return cmd
}
