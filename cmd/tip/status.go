package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/status"
)

func statusCmd(a *app) *cobra.Command {
	var asJSON bool
	var watch time.Duration
	var errorRows int
	cmd := &cobra.Command{
		Use:   "status",
		Short: "One screen: the core's timetable, flux monitors, source health, spam collectors and the last errors",
		Long: `Read PostgreSQL and Temporal and print, on one screen: the stack and the workers
polling the task queue, the core's timetable, the flux monitors (checked against
the FluxMonitor workflows Temporal runs), the blacklist sources' health, each spam
collector's mails and last good run, and the most recent problems the database and
Temporal keep. What cannot be read is named with the reason, and the rest is shown;
the exit status is 1 only when neither PostgreSQL nor Temporal could be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if errorRows < 0 {
				return fmt.Errorf("--errors %d: want 0 or more", errorRows)
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			tty := isTerminal(out)
			services := status.Services{Postgres: a.openDB,
				Temporal: func(ctx context.Context) (client.Client, error) { return a.dial(ctx, nil) }}
			for {
				r := status.Read(ctx, a.cfg, services, errorRows)
				if ctx.Err() != nil { // interrupted while reading: the report is incomplete
					return nil
				}
				var buf bytes.Buffer
				if asJSON {
					if err := writeJSON(&buf, r); err != nil {
						return err
					}
				} else {
					if watch > 0 && tty {
						buf.WriteString("\033[H\033[2J") // cursor home, clear the screen
					}
					status.Print(&buf, r, errorRows, status.Width)
				}
				if _, err := out.Write(buf.Bytes()); err != nil {
					return err
				}
				if watch <= 0 {
					if r.Unreadable() {
						return exitError(1)
					}
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(watch):
				}
				if !tty && !asJSON {
					fmt.Fprintln(out) // successive screens, one after another
				}
			}
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the same data as JSON")
	cmd.Flags().DurationVar(&watch, "watch", 0, "read and print again every DURATION (e.g. 5s) until interrupted")
	cmd.Flags().IntVar(&errorRows, "errors", 8, "how many of the most recent problems to show")
	return cmd
}

// isTerminal says whether w is a terminal, where --watch redraws the screen.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
