package main

import (
	"context"
	"fmt"
	"net/netip"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/storage"
)

// fluxPDNSCmd is `tip flux pdns`: the passive DNS of TIP's flux checks.
func fluxPDNSCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "pdns NAME|IP",
		Short: "Passive DNS of the flux checks: a domain's addresses and name servers, a name server's, or what an address served",
		Long: `Every address (A, AAAA) a triaged or monitored domain ever answered TIP's checks
with and every name server it was delegated to (NS); for a name server, its
addresses and the domains delegated to it; for an address, every such domain
and name server that had it. Each with when it was first and last seen and by
how many checks; most recently seen first. --json prints the
Passive DNS Common Output Format (draft-dulaunoy-dnsop-passive-dns-cof): one
object a line with rrname, rrtype, rdata, time_first, time_last and count.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := args[0]
			if a, err := netip.ParseAddr(q); err == nil {
				q = a.Unmap().String()
			} else if d, ok := flux.NormalizeDomain(q); ok {
				q = d
			} else {
				return fmt.Errorf("%q is neither an address nor a domain name", args[0])
			}
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				rs, err := db.PassiveDNS(ctx, q)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return jsonLines(out, rs)
				}
				if len(rs) == 0 {
					fmt.Fprintf(out, "%s: no flux check saw it\n", q)
					return nil
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "RRNAME\tRRTYPE\tRDATA\tFIRST SEEN\tLAST SEEN\tCOUNT")
				for _, r := range rs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", r.RRName, r.RRType, r.RData,
						r.First().Format("2006-01-02 15:04"), r.Last().Format("2006-01-02 15:04"), r.Count)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the Passive DNS Common Output Format, one object a line")
	return cmd
}
