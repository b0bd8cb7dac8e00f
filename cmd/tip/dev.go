package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/starter"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func devCmd(a *app) *cobra.Command {
	var stateDir, toolsDir string
	var prod bool
	stack := func() *devstack.Stack {
		s := devstack.Local(stateDir, toolsDir)
		s.Log = a.log
		s.DNSAddress = a.cfg.DNS.Listen
		s.APIAddress = "http://" + a.cfg.API.Listen + "/"
		if a.cfg.API.TLSCert != "" {
			s.APIAddress = "https://" + a.cfg.API.Listen + "/"
		}
		if prod {
			_ = s.Production() // fixed ports: cannot fail
		}
		return s
	}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the local stack: Temporal dev server with Web UI, PostgreSQL 15 and MinIO on loopback",
	}
	cmd.PersistentFlags().StringVar(&stateDir, "state", envOr("TIP_STATE_DIR", "state"), "folder for the services' data, logs and pid files ($TIP_STATE_DIR)")
	cmd.PersistentFlags().StringVar(&toolsDir, "tools", envOr("TIP_TOOLS_DIR", ".tools/bin"), "folder with the temporal and minio binaries built by `make tools` ($TIP_TOOLS_DIR)")
	cmd.PersistentFlags().BoolVar(&prod, "prod", false, "the production-like stack: the Temporal server on PostgreSQL and the standalone Web UI, built by `make tools-prod` (use its own --state folder)")

	var withWorker, withLab, withDNS, withAPI bool
	var workers int
	up := &cobra.Command{
		Use:   "up",
		Short: "Start every service that is not running, then set TIP up in them (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := stack()
			// The lab, the agent and the workers run in folders of their own: they
			// read this command's configuration file by its absolute path.
			tipEnv, err := configEnv(a.configPath)
			if err != nil {
				return err
			}
			s.TipEnv = tipEnv
			if err := s.Up(cmd.Context()); err != nil {
				return err
			}
			if err := starter.Setup(cmd.Context(), a.cfg, a.log); err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			if withLab {
				if err := upLab(cmd.Context(), s, self, a.cfg.Spam.Catalog, a.log); err != nil {
					return err
				}
			}
			if withWorker {
				// The worker runs in its own folder: hand it the catalogs by absolute path.
				catalogPath, err := filepath.Abs(a.cfg.Blacklists.Catalog)
				if err != nil {
					return err
				}
				spamPath, err := filepath.Abs(a.cfg.Spam.Catalog)
				if err != nil {
					return err
				}
				env := []string{"TIP_BLACKLISTS_CATALOG=" + catalogPath, "TIP_SPAM_CATALOG=" + spamPath}
				for n := 1; n <= workers; n++ {
					// Each further worker serves its metrics ten ports up (9474,
					// 9484, ...): the ports right after the first worker's are
					// the DNS server's, the API's and the metrics server's.
					wenv := env
					if host, port, err := net.SplitHostPort(a.cfg.Worker.MetricsAddress); err == nil && n > 1 {
						p, _ := strconv.Atoi(port)
						wenv = append(slices.Clone(env), "TIP_WORKER_METRICS_ADDRESS="+net.JoinHostPort(host, strconv.Itoa(p+10*(n-1))))
					}
					if err := s.StartTip(cmd.Context(), devstack.WorkerService(n), self, wenv, devstack.WorkerArgs()...); err != nil {
						return err
					}
				}
			}
			if withDNS {
				if err := s.StartTip(cmd.Context(), devstack.DNS, self, nil, devstack.DNSArgs()...); err != nil {
					return err
				}
			}
			if withAPI {
				if err := s.StartTip(cmd.Context(), devstack.API, self, nil, devstack.APIArgs()...); err != nil {
					return err
				}
			}
			return printStatus(cmd, s)
		},
	}
	up.Flags().BoolVar(&withDNS, "dns", false, "also run `tip serve dns`: the blacklists as RPZ and DNSBL zones on dns.listen")
	up.Flags().BoolVar(&withAPI, "api", false, "also run `tip serve api`: lookups, exports and the MISP feed over HTTP on api.listen (tokens: tip api token add)")
	up.Flags().BoolVar(&withWorker, "worker", false, "also run `tip worker` processes in the background (--workers of them)")
	up.Flags().IntVar(&workers, "workers", 1, "with --worker: how many worker processes (each further one serves its metrics ten ports up: 9474, 9484, ...)")
	up.Flags().BoolVar(&withLab, "lab", false, "also run the lab (`tip lab serve`), the simulated Internet, and a spamtrap agent on its agent trap, registered in the spam catalog")
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the services the local stack started; their data stays",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return stack().Down(cmd.Context())
		},
	}
	var statusJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show which local services run, where, and their process IDs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if statusJSON {
				type line struct {
					Service string `json:"service"`
					Running bool   `json:"running"`
					PID     int    `json:"pid,omitempty"`
					Address string `json:"address,omitempty"`
					Detail  string `json:"detail,omitempty"`
				}
				var lines []line
				for _, st := range stack().Status(cmd.Context()) {
					lines = append(lines, line{string(st.Service), st.Running, st.PID, st.Address, st.Detail})
				}
				return jsonLines(cmd.OutOrStdout(), lines)
			}
			return printStatus(cmd, stack())
		},
	}
	status.Flags().BoolVar(&statusJSON, "json", false, "one JSON object a line per service")
	wipe := &cobra.Command{
		Use:   "wipe",
		Short: "Delete the local stack's data (every service must be stopped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := stack()
			if err := s.Wipe(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", s.StateDir)
			return nil
		},
	}
	cmd.AddCommand(up, down, status, wipe, devDemoCmd(a, stack))
	return cmd
}

// configEnv names the configuration file tip reads with this --config flag
// (config.Path) by its absolute path, as $TIP_CONFIG; nil when it reads none.
func configEnv(flag string) ([]string, error) {
	p := config.Path(flag)
	if p == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("configuration file %s: %w", p, err)
	}
	return []string{config.EnvFile + "=" + abs}, nil
}

func printStatus(cmd *cobra.Command, s *devstack.Stack) error {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tPID\tADDRESS\tDETAIL")
	for _, st := range s.Status(cmd.Context()) {
		state, pid := "stopped", "-"
		if st.Running {
			state, pid = "running", fmt.Sprint(st.PID)
		}
		addr := st.Address
		if addr == "" {
			addr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Service, state, pid, addr, st.Detail)
	}
	fmt.Fprintf(tw, "state folder: %s\n", s.StateDir)
	return tw.Flush()
}
