package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
)

func setupCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "setup",
		Short: "Prepare a deployment: namespace and retention, search attributes, schema, bucket (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := starter.Setup(cmd.Context(), a.cfg, a.log); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "setup done: namespace %s on %s, bucket %s on %s, schema migrated\n",
				a.cfg.Temporal.Namespace, a.cfg.Temporal.Address, a.cfg.S3.Bucket, a.cfg.S3.Endpoint)
			return nil
		},
	}
}

func migrateCmd(a *app) *cobra.Command {
	var status bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the schema migrations embedded in this binary to PostgreSQL",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				out := cmd.OutOrStdout()
				if status {
					v, err := db.SchemaVersion(ctx)
					if err != nil {
						return err
					}
					ms, err := storage.Migrations()
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "database schema version %d; this binary knows %d\n", v, len(ms))
					return db.CheckSchema(ctx)
				}
				applied, err := db.Migrate(ctx)
				if err != nil {
					return err
				}
				for _, m := range applied {
					fmt.Fprintf(out, "applied %04d_%s\n", m.Version, m.Name)
				}
				v, err := db.SchemaVersion(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "schema at version %d (%d applied now)\n", v, len(applied))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&status, "status", false, "only report the schema version; fail if it differs from this binary's")
	return cmd
}
