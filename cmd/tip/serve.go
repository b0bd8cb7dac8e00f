package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/dnsserve"
	"github.com/tip-project/tip/worker"
)

func serveCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "serve", Short: "Serve TIP's blacklists live to what defenders run: resolvers and mail servers (dns)"}
	cmd.AddCommand(serveDNSCmd(a))
	return cmd
}

func serveDNSCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "dns",
		Short: "Serve the blacklists as RPZ zones (AXFR, IXFR, NOTIFY, TSIG) and DNSBL zones until SIGINT/SIGTERM",
		Long: `Serve the blacklists over DNS on dns.listen (UDP and TCP): Response Policy Zones
for resolvers (dns.rpz; transferred by AXFR and IXFR to dns.transfer_allow, signed
with dns.tsig when keys are set, NOTIFY to dns.notify at every new serial) and
DNSBL zones for mail servers (dns.dnsbl). Answers come from memory: the listings
are indexed at start and kept up to date from PostgreSQL's change notifications.
Prometheus metrics on dns.metrics_address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := dnsserve.FromConfig(a.cfg.DNS)
			if err != nil {
				return err
			}
			db, err := a.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			s, err := dnsserve.New(cfg, db, a.log)
			if err != nil {
				return err
			}
			if err := s.Load(ctx); err != nil {
				return err
			}
			if addr := a.cfg.DNS.MetricsAddress; addr != "" {
				srv, err := worker.ServeMetrics(addr, s.Registry(), a.log)
				if err != nil {
					return err
				}
				defer func() {
					sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					srv.Shutdown(sctx) //nolint:errcheck
				}()
			}
			return s.Serve(ctx, a.cfg.DNS.Listen)
		},
	}
}
