package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/world"
)

func labCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "The lab: a simulated Internet (feeds, spam archive, IMAP trap, flux DNS, ASN table) on loopback",
	}
	cfg := lab.DefaultConfig(envOr("TIP_LAB_STATE_DIR", "state/lab"))
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the lab until SIGINT/SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.New(cfg, a.log)
			if err != nil {
				return err
			}
			if err := l.Start(cmd.Context()); err != nil {
				return err
			}
			defer l.Close()
			imap := "not running: " + fmt.Sprint(l.IMAPError)
			if l.Dovecot != nil {
				imap = fmt.Sprintf("%s (user %s, password %s)", l.Dovecot.Addr(), cfg.IMAPUser, cfg.IMAPPassword)
			}
			agentTrap := "none"
			if l.AgentSpam != nil {
				agentTrap = fmt.Sprintf("%s, Maildir %s", l.World.AgentTrapMX.Trap, lab.AgentMaildir(cfg.StateDir))
			}
			a.log.Info("lab running", "http", "http://"+l.HTTPAddr(), "dns", l.DNSAddr(), "imap", imap, "agent_trap", agentTrap,
				"lab_time", l.Clock.Now().Format(time.RFC3339), "speed", l.Clock.Speed(), "seed", cfg.Seed)
			return l.Wait(cmd.Context())
		},
	}
	f := serve.Flags()
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the simulated world")
	f.Float64Var(&cfg.Speed, "speed", cfg.Speed, "lab seconds per wall second (kept in the state folder once started)")
	f.StringVar(&cfg.StateDir, "state", cfg.StateDir, "lab state: clock, archive cache, Maildirs, Dovecot ($TIP_LAB_STATE_DIR)")
	f.IntVar(&cfg.HTTPPort, "http-port", cfg.HTTPPort, "port of the web server (feeds, spam archive, ASN table, truth)")
	f.IntVar(&cfg.DNSPort, "dns-port", cfg.DNSPort, "port of the authoritative DNS server (UDP and TCP)")
	f.IntVar(&cfg.IMAPPort, "imap-port", cfg.IMAPPort, "port of the IMAP spamtrap (Dovecot); 0 disables it")
	f.IntVar(&cfg.SpamPerDay, "spam-per-day", cfg.SpamPerDay, "mean spam messages per lab day")
	f.IntVar(&cfg.AgentSpamPerDay, "agent-spam-per-day", cfg.AgentSpamPerDay, "mean spam messages per lab day into the agent trap's Maildir (its own stream); 0: none")

	var at, url string
	var spamHours int
	truth := &cobra.Command{
		Use:   "truth",
		Short: "Print the lab's ground truth as JSON: feeds' entries, domains' classes and answers, spam facts",
		Long: `Print what the lab knows at one lab time: what every feed lists (with listing and
removal times, false positives marked), each domain's class, status and current answers,
the botnets, and the facts of the spam received in the preceding hours.
Without --at it asks the running lab for its current time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			seed, perDay := cfg.Seed, cfg.SpamPerDay
			var t time.Time
			if at != "" {
				var err error
				if t, err = time.Parse(time.RFC3339, at); err != nil {
					return fmt.Errorf("--at: want an RFC 3339 time such as 2026-09-03T12:00:00Z")
				}
			} else {
				st, err := labClock(url)
				if err != nil {
					return fmt.Errorf("%w, or pass --at", err)
				}
				t, seed, perDay = st.Now, st.Seed, st.SpamPerDay
			}
			return writeJSON(cmd.OutOrStdout(), lab.TruthAt(seed, perDay, t, time.Duration(spamHours)*time.Hour))
		},
	}
	tf := truth.Flags()
	tf.StringVar(&at, "at", "", "lab time (RFC 3339); default: the running lab's current time")
	tf.StringVar(&url, "lab", "http://127.0.0.1:8480", "address of the running lab")
	tf.IntVar(&spamHours, "spam-hours", 24, "include the spam received in this many lab hours before --at")
	tf.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the simulated world (with --at)")
	tf.IntVar(&cfg.SpamPerDay, "spam-per-day", cfg.SpamPerDay, "mean spam messages per lab day (with --at)")
	cmd.AddCommand(serve, truth, labSummaryCmd())
	return cmd
}

func labSummaryCmd() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "summary",
		Short: "Print what the running lab serves, with commands to try against it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := labClock(url)
			if err != nil {
				return err
			}
			w := world.NewWorld(st.Seed)
			flux := w.DomainsOf(world.SingleFlux)[0].Name
			double := w.DomainsOf(world.DoubleFlux)[0].Name
			cdn := w.DomainsOf(world.CDNDomain)[0].Name
			cfg := lab.DefaultConfig("")
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Lab: %s/  lab time %s (day %d, %gx), seed %d\n", url, st.Now.Format("2006-01-02 15:04"), st.Day, st.Speed, st.Seed)
			fmt.Fprintf(out, "  feeds         curl -s %s/feeds/ | head -40            (every feed, its format and behaviour)\n", url)
			fmt.Fprintf(out, "                curl -si %s/feeds/spamhaus/drop.txt | head -20\n", url)
			fmt.Fprintf(out, "  spam archive  curl -s %s/spam-archive/\n", url)
			fmt.Fprintf(out, "  flux DNS      dig @127.0.0.1 -p %d %s A     (single flux; again after the TTL)\n", cfg.DNSPort, flux)
			fmt.Fprintf(out, "                dig @127.0.0.1 -p %d %s NS    (double flux)\n", cfg.DNSPort, double)
			fmt.Fprintf(out, "                dig @127.0.0.1 -p %d %s A     (CDN: many IPs, one provider)\n", cfg.DNSPort, cdn)
			fmt.Fprintf(out, "  IMAP trap     curl -s --user %s:%s imap://127.0.0.1:%d/INBOX -X 'STATUS INBOX (MESSAGES)'\n", cfg.IMAPUser, cfg.IMAPPassword, cfg.IMAPPort)
			fmt.Fprintf(out, "  agent trap    ls %s/new | wc -l   (%s's spam, parsed there by a spamtrap agent)\n",
				lab.AgentMaildir(filepath.Join(envOr("TIP_STATE_DIR", "state"), "lab")), w.AgentTrapMX.Trap)
			fmt.Fprintf(out, "                bin/tip agents list; bin/tip agents sync %s   (the agent `tip dev up --lab` runs and registers)\n", labAgentName)
			fmt.Fprintf(out, "  ASN table     curl -s %s/iptoasn/ip2asn-combined.tsv | head\n", url)
			fmt.Fprintf(out, "  ground truth  bin/tip lab truth | less\n")
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "lab", "http://127.0.0.1:8480", "address of the running lab")
	return cmd
}

// labClock asks the running lab at url for its time, seed and spam rate.
func labClock(url string) (lab.ClockState, error) {
	var st lab.ClockState
	resp, err := http.Get(url + "/clock")
	if err != nil {
		return st, fmt.Errorf("lab at %s is not reachable (%v); start it with `make demo` or `tip lab serve`", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("lab at %s: clock: %w", url, err)
	}
	return st, nil
}
