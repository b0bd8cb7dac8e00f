package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/storage"
)

func fpCmd(a *app) *cobra.Command {
	var source, reason, who string
	var undo, list, all, asJSON bool
	cmd := &cobra.Command{
		Use:   "fp VALUE --reason R [--source S]",
		Short: "Mark a listing a false positive: it leaves the exports at once and counts against its sources' accuracy",
		Long: `Mark the listing of VALUE by --source (or by every source listing it) a false
positive. The listing stops counting in exports at once: an indicator no other
source lists leaves them. At the next refresh's fan-in it counts against the
source's accuracy, like an allowlisted entry, while the source lists it.
--undo ends the mark; --list shows the marks.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if list {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if list {
				return listOverrides(cmd, a, storage.OverrideFP, all, asJSON)
			}
			o, err := storage.ParseOverrideTarget(args[0])
			if err != nil {
				return err
			}
			if o.Match != "exact" {
				return fmt.Errorf("%s: a false positive is one listed value, not a range or *.domain (`tip allow add` keeps those out)", args[0])
			}
			by, err := author(who)
			if err != nil {
				return err
			}
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				out := cmd.OutOrStdout()
				if undo {
					if o, err = db.RemoveOverride(ctx, storage.OverrideFP, o, source, by); err != nil {
						return err
					}
					fmt.Fprintf(out, "the listing of %s is no longer marked a false positive (marked by %s: %s)\n", o.Value, o.Author, o.Reason)
					return nil
				}
				if reason == "" {
					return errors.New("--reason is required: say why, for whoever reads this later")
				}
				o.Kind, o.Source, o.Reason, o.Author = storage.OverrideFP, source, reason, by
				if o, err = db.AddOverride(ctx, o); err != nil {
					return err
				}
				of := "every source's listing"
				if o.Source != "" {
					of = o.Source + "'s listing"
				}
				fmt.Fprintf(out, "marked %s of %s a false positive (by %s): out of the exports from now, against the accuracy at the next refresh\n", of, o.Value, o.Author)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "the source whose listing is wrong (default: every source listing it)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the listing is wrong (required)")
	cmd.Flags().StringVar(&who, "author", "", "who decides (default: the user running tip)")
	cmd.Flags().BoolVar(&undo, "undo", false, "end the mark instead")
	cmd.Flags().BoolVar(&list, "list", false, "list the standing marks")
	cmd.Flags().BoolVar(&all, "all", false, "with --list: also the removed and expired ones")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --list: print JSON lines")
	return cmd
}
