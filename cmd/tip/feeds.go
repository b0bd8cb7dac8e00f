package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/feeds"
)

// feedsCmd parses blacklist feed files offline, with no service running.
func feedsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "feeds",
		Short: "Parse blacklist feed files offline: list the formats, print normalised indicators",
	}
	cmd.AddCommand(feedsFormatsCmd(), feedsParseCmd())
	return cmd
}

func feedsFormatsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "formats",
		Short: "List the feed formats the parser knows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				return jsonLines(cmd.OutOrStdout(), feeds.Formats())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, f := range feeds.Formats() {
				fmt.Fprintf(tw, "%s\t%s\n", f.Name, f.Description)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line (name, description, type)")
	return cmd
}

// writeJSON writes one indented JSON document, the --json form of commands that
// print one thing.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonLines writes one JSON object a line, the --json form of listing commands.
func jsonLines[T any](w io.Writer, items []T) error {
	enc := json.NewEncoder(w)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return err
		}
	}
	return nil
}

// listRows prints rows one JSON object a line (asJSON), or as a table: the
// header, then line(row) for each, the columns separated by tabs.
func listRows[T any](w io.Writer, asJSON bool, rows []T, header string, line func(T) string) error {
	if asJSON {
		return jsonLines(w, rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, line(r))
	}
	return tw.Flush()
}

func feedsParseCmd() *cobra.Command {
	var (
		format, typ string
		asJSON      bool
		opts        feeds.Options
	)
	cmd := &cobra.Command{
		Use:   "parse --format FORMAT FILE",
		Short: "Parse a feed file (- for standard input) and print its normalised indicators, one a line",
		Long: `Parse a feed file in one of the formats of 'tip feeds formats' and print its
normalised indicators, one a line (or one JSON object a line with --json). A summary
of comments, dropped entries and bad lines goes to standard error. The generic
format is configured with --comment, --separator, --column and --type.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			opts.Type = feeds.Type(typ)
			out := bufio.NewWriter(cmd.OutOrStdout())
			enc := json.NewEncoder(out)
			st, err := feeds.Parse(format, in, opts, func(ind feeds.Indicator) error {
				if asJSON {
					return enc.Encode(ind)
				}
				_, werr := fmt.Fprintln(out, ind.Value)
				return werr
			})
			if ferr := out.Flush(); err == nil {
				err = ferr
			}
			printFeedStats(cmd.ErrOrStderr(), args[0], st)
			if err != nil {
				return fmt.Errorf("parse %s as %s: %w", args[0], format, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "feed format (see 'tip feeds formats')")
	f.BoolVar(&asJSON, "json", false, "print one JSON object a line")
	f.StringVar(&opts.CommentPrefix, "comment", "", "generic: comment prefix (default #)")
	f.StringVar(&opts.Separator, "separator", "", "generic: column separator (default: spaces and tabs; \",\" is CSV)")
	f.IntVar(&opts.Column, "column", 0, "generic: 0-based column of the indicator")
	f.BoolVar(&opts.Header, "header", false, "generic: skip a header row")
	f.StringVar(&typ, "type", "", "generic: indicator type (ipv4, ipv6, ip, cidr, asn, domain, url, sha1, sha256, md5)")
	f.Float64Var(&opts.MaxBadShare, "max-bad", 0.05, "fail when more than this share of data lines is bad")
	f.BoolVar(&opts.AllowUnterminated, "allow-unterminated", false, "parse a last line without a newline (by default it counts as bad: a cut body)")
	_ = cmd.MarkFlagRequired("format")
	return cmd
}

func printFeedStats(w io.Writer, name string, st feeds.Stats) {
	fmt.Fprintf(w, "%s: %d lines, %d indicators, %d comments, %d blank, %d bad\n",
		name, st.Lines, st.Indicators, st.Comments, st.Blank, st.Bad)
	for _, reason := range slices.Sorted(maps.Keys(st.Dropped)) {
		fmt.Fprintf(w, "  dropped %s: %d\n", reason, st.Dropped[reason])
	}
	for _, s := range st.BadSample {
		fmt.Fprintf(w, "  bad %s\n", s)
	}
}
