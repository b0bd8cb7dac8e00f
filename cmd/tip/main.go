// Command tip is TIP's single binary: the worker, the local stack, set-up and
// diagnostics, and (in later modules) the lab, the agent and the starter commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.yaml.in/yaml/v3"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

// app is what every command shares: configuration and the logger.
type app struct {
	configPath string
	cfg        config.Config
	log        *slog.Logger
}

// dial connects to the configured Temporal: every command's client comes from
// here. The client logs to log; nil: it logs nothing (the screens of status and
// doctor say what failed themselves).
func (a *app) dial(ctx context.Context, log *slog.Logger) (client.Client, error) {
	return starter.Dial(ctx, a.cfg.Temporal, log, client.Options{})
}

// withTemporal runs fn with a client of the configured Temporal, closed after.
func (a *app) withTemporal(cmd *cobra.Command, fn func(ctx context.Context, c client.Client) error) error {
	c, err := a.dial(cmd.Context(), a.log)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(cmd.Context(), c)
}

// openDB opens the configured PostgreSQL: every command's database comes from here.
func (a *app) openDB(ctx context.Context) (*storage.DB, error) {
	return storage.OpenDB(ctx, a.cfg.Postgres.DSN)
}

// withDB runs fn with the configured PostgreSQL, closed after.
func (a *app) withDB(cmd *cobra.Command, fn func(ctx context.Context, db *storage.DB) error) error {
	db, err := a.openDB(cmd.Context())
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(cmd.Context(), db)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		var exit exitError
		if errors.As(err, &exit) { // the command already said what is wrong
			os.Exit(int(exit))
		}
		fmt.Fprintln(os.Stderr, "tip:", err)
		os.Exit(1)
	}
}

// exitError carries an exit status without printing a second message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRoot() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:   "tip",
		Short: "TIP, the Tracking Intelligence Project: collects and watches Internet threat trends",
		Long: `TIP collects domain/IP blacklists and weighs their sources, harvests spam from
spamtraps, and monitors fast-flux domains for months, on Temporal, PostgreSQL and
S3-compatible storage.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(a.configPath)
			if err != nil {
				return err
			}
			a.cfg = cfg
			a.log = newLogger(cfg.Log)
			slog.SetDefault(a.log)
			return nil
		},
	}
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "YAML configuration file (default $TIP_CONFIG, then ./tip.yaml if present)")
	root.AddCommand(
		versionCmd(),
		configCmd(a),
		devCmd(a),
		setupCmd(a),
		migrateCmd(a),
		doctorCmd(a),
		workerCmd(a),
		serveCmd(a),
		apiCmd(a),
		labCmd(a),
		agentCmd(a),
		agentsCmd(a),
		coreCmd(a),
		feedsCmd(),
		sourcesCmd(a),
		spamCmd(a),
		fluxCmd(a),
		lookupCmd(a),
		allowCmd(a),
		fpCmd(a),
		blacklistsCmd(a),
		statusCmd(a),
		reportCmd(a),
		dataCmd(a),
	)
	return root
}

func newLogger(c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this tip binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version
			if info, ok := debug.ReadBuildInfo(); ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
				v = info.Main.Version
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tip %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

func configCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration (file, environment and defaults), secrets masked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			enc := yaml.NewEncoder(cmd.OutOrStdout())
			defer enc.Close()
			return enc.Encode(a.cfg.Redacted())
		},
	}
}
