package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/agent"
)

func agentCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "The spamtrap agent on a mail server: parse its Maildir, publish batches, serve them over HTTPS",
		Long: `The spamtrap agent runs on a mail server. It parses the spam arriving in its
Maildir folders, publishes the facts as numbered batches in its folder, and serves
them over HTTPS to collectors holding one of its tokens (docs/agent-protocol.md).`,
	}
	dir := envOr("TIP_AGENT_DIR", "/var/lib/tip-agent")
	cmd.PersistentFlags().StringVar(&dir, "dir", dir, "the agent's folder ($TIP_AGENT_DIR)")
	cmd.AddCommand(agentInitCmd(&dir), agentServeCmd(a, &dir), agentTokenCmd(&dir), agentFingerprintCmd(&dir))
	return cmd
}

func agentInitCmd(dir *string) *cobra.Command {
	var id, listen string
	var maildirs, hosts []string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the agent's folder: agent.yaml, the published-batch folders and a self-signed certificate",
		Long: `Create the agent's folder with agent.yaml, the folders of published batches and,
unless the configured certificate exists, a self-signed ECDSA P-256 certificate for
the agent's id, localhost, 127.0.0.1, ::1 and every --host. It prints the
certificate's SHA-256 fingerprint, which collectors pin. Run again, it keeps an
existing agent.yaml and certificate and prints the fingerprint.`,
		Example: `  tip agent init --dir /var/lib/tip-agent --id mx1.example.org --listen 0.0.0.0:8443 \
    --maildir /var/mail/trap/Maildir:spam --host mx1.example.org --host 192.0.2.25`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(*dir)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(abs, 0o700); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			path := filepath.Join(abs, agent.ConfigFile)
			var c agent.Config
			if fileExists(path) {
				for _, f := range []string{"id", "listen", "maildir"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("%s exists: edit it rather than pass --%s", path, f)
					}
				}
				if c, err = agent.LoadConfig(abs); err != nil {
					return err
				}
				fmt.Fprintf(out, "%s exists: kept\n", path)
			} else {
				c = agent.DefaultConfig(abs)
				if id != "" {
					c.ID = id
				}
				if listen != "" {
					c.Listen = listen
				}
				for _, m := range maildirs {
					md, err := parseMaildirFlag(m)
					if err != nil {
						return err
					}
					c.Maildirs = append(c.Maildirs, md)
				}
				if err := c.Check(); err != nil {
					return fmt.Errorf("agent.yaml: %w", err)
				}
				if err := c.Save(); err != nil {
					return err
				}
				fmt.Fprintf(out, "wrote %s (agent %s, listening on %s)\n", path, c.ID, c.Listen)
			}
			for _, m := range c.Maildirs {
				if !fileExists(filepath.Join(m.Path, "new")) || !fileExists(filepath.Join(m.Path, "cur")) {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: maildir %s (%s) has no new/ and cur/ yet\n", m.Path, m.Folder)
				}
			}
			if _, err := agent.OpenStore(c.Dir, c.ID); err != nil {
				return err
			}
			fp, created, err := agent.EnsureCert(c, hosts)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(out, "created a self-signed certificate %s for %s\n", c.Path(c.TLS.Cert), strings.Join(append([]string{c.ID, "localhost", "127.0.0.1", "::1"}, hosts...), ", "))
			} else {
				fmt.Fprintf(out, "certificate %s exists: kept\n", c.Path(c.TLS.Cert))
			}
			fmt.Fprintf(out, "fingerprint (SHA-256): %s\n", fp)
			fmt.Fprintf(out, "next: tip agent token add COLLECTOR --scope facts --dir %s\n", abs)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "the agent's name in its batches (default: the host name)")
	f.StringVar(&listen, "listen", "", "address to serve HTTPS on (default 127.0.0.1:8443)")
	f.StringArrayVar(&maildirs, "maildir", nil, "a Maildir to watch and its label, PATH:FOLDER (repeatable)")
	f.StringArrayVar(&hosts, "host", nil, "another host name or address for the certificate (repeatable)")
	return cmd
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// parseMaildirFlag reads PATH:FOLDER; the label is after the last colon.
func parseMaildirFlag(s string) (agent.Maildir, error) {
	i := strings.LastIndex(s, ":")
	if i <= 0 || i == len(s)-1 {
		return agent.Maildir{}, fmt.Errorf("--maildir %q: want PATH:FOLDER, e.g. /var/mail/trap/Maildir:spam", s)
	}
	p, err := filepath.Abs(s[:i])
	if err != nil {
		return agent.Maildir{}, err
	}
	return agent.Maildir{Path: p, Folder: s[i+1:]}, nil
}

func agentServeCmd(a *app, dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Watch the Maildirs, publish batches and serve them over HTTPS until SIGINT/SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := agent.LoadConfig(*dir)
			if err != nil {
				return err
			}
			st, err := agent.OpenStore(c.Dir, c.ID)
			if err != nil {
				return err
			}
			conf, fp, err := agent.ServerTLS(c)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", c.Listen)
			if err != nil {
				return err
			}
			log := a.log.With("agent", c.ID)
			pub, err := agent.NewPublisher(c, st, log)
			if err != nil {
				ln.Close()
				return err
			}
			srv, err := agent.NewLimitedServer(st, agent.OpenTokens(c.Dir), c.Limits(), log)
			if err != nil {
				ln.Close()
				return err
			}
			var mln net.Listener
			if c.Metrics != "" {
				if mln, err = net.Listen("tcp", c.Metrics); err != nil {
					ln.Close()
					return fmt.Errorf("metrics: cannot listen on %s (%v): set metrics in agent.yaml to a free address, or remove it", c.Metrics, err)
				}
			}
			log.Info("agent serving", "listen", ln.Addr().String(), "fingerprint", fp, "latest", st.Latest(), "maildirs", len(c.Maildirs), "dir", c.Dir, "metrics", c.Metrics)
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			errc := make(chan error, 3)
			go func() {
				// The server reads the publisher's Store: it serves each batch once committed.
				if err := pub.Run(ctx); err != nil {
					errc <- fmt.Errorf("publisher: %w", err)
					return
				}
				errc <- nil
			}()
			go func() { errc <- srv.Serve(ctx, ln, conf) }()
			running := 2
			if mln != nil {
				running++
				go func() { errc <- srv.ServeMetrics(ctx, mln) }()
			}
			// One stopping (an error, or SIGINT/SIGTERM) stops the others.
			err = <-errc
			cancel()
			for range running - 1 {
				err = errors.Join(err, <-errc)
			}
			return err
		},
	}
}

func agentTokenCmd(dir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Collector tokens: add (printed once), revoke, list",
	}

	var scope, expires string
	var addJSON bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Make a token for a collector and print it; only its hash is kept",
		Long: `Make a token for the collector NAME and print it on standard output: this is the
only time it is shown, the agent keeps only its SHA-256. Scope facts fetches
batches; scope raw also the raw mails. A running agent accepts it at once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := agent.ParseScope(scope)
			if err != nil {
				return err
			}
			var ttl time.Duration
			if expires != "" {
				if ttl, err = parseTTL(expires); err != nil {
					return err
				}
			}
			secret, tk, err := agent.OpenTokens(*dir).Add(args[0], sc, ttl)
			if err != nil {
				return err
			}
			if addJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(struct {
					Name    string      `json:"name"`
					Scope   agent.Scope `json:"scope"`
					Expires time.Time   `json:"expires,omitzero"`
					Token   string      `json:"token"`
				}{tk.Name, tk.Scope, tk.Expires, secret})
			}
			printNewToken(cmd, tk.Name, "scope "+string(tk.Scope), tk.Expires, secret)
			return nil
		},
	}
	add.Flags().StringVar(&scope, "scope", string(agent.ScopeFacts), "facts (batches) or raw (batches and raw mails)")
	add.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 90d or 720h (default: never)")
	add.Flags().BoolVar(&addJSON, "json", false, "print JSON")

	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token; a running agent refuses it from its next request on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tk, err := agent.OpenTokens(*dir).Revoke(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s at %s\n", tk.Name, tk.Revoked.Format(time.RFC3339))
			return nil
		},
	}

	var listJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tokens: name, scope, status, dates (never the tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tokens, err := agent.OpenTokens(*dir).List()
			if err != nil {
				return err
			}
			now := time.Now()
			type row struct {
				Name    string      `json:"name"`
				Scope   agent.Scope `json:"scope"`
				Status  string      `json:"status"`
				Created time.Time   `json:"created"`
				Expires time.Time   `json:"expires,omitzero"`
				Revoked time.Time   `json:"revoked,omitzero"`
			}
			rows := make([]row, len(tokens))
			for i, tk := range tokens {
				rows[i] = row{tk.Name, tk.Scope, tk.Status(now), tk.Created, tk.Expires, tk.Revoked}
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
			fmt.Fprintln(tw, "NAME\tSCOPE\tSTATUS\tCREATED\tEXPIRES\tREVOKED")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Scope, r.Status, date(r.Created), date(r.Expires), date(r.Revoked))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")

	cmd.AddCommand(add, revoke, list)
	return cmd
}

// parseTTL reads a lifetime: a Go duration (720h) or a number of days (90d), at
// most agent.MaxTokenTTL (36500d).
func parseTTL(s string) (time.Duration, error) {
	const day = 24 * time.Hour
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n uint64
		// Checked against the bound before multiplying, so it cannot overflow.
		if n, err = strconv.ParseUint(days, 10, 64); err == nil && n > uint64(agent.MaxTokenTTL/day) {
			return 0, fmt.Errorf("--expires %q: at most %dd (100 years)", s, agent.MaxTokenTTL/day)
		}
		d = time.Duration(n) * day
	} else {
		d, err = time.ParseDuration(s)
		if err == nil && d > agent.MaxTokenTTL {
			return 0, fmt.Errorf("--expires %q: at most %dd (100 years)", s, agent.MaxTokenTTL/day)
		}
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires %q: want a positive duration such as 90d or 720h", s)
	}
	return d, nil
}

func agentFingerprintCmd(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "fingerprint",
		Short: "Print the SHA-256 fingerprint of the agent's certificate, which collectors pin",
		Long: `Print the SHA-256 of the agent's certificate (its DER bytes) as 64 lower-case hex
digits. openssl x509 -noout -fingerprint -sha256 prints the same in upper case
with colons; the spam catalog accepts both.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := agent.LoadConfig(*dir)
			if err != nil {
				return err
			}
			fp, err := agent.CertFingerprint(c.Path(c.TLS.Cert))
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), fp)
			return nil
		},
	}
}

// printNewToken shows a token just made, the one time it is shown: what it
// is on standard error, the secret alone on standard output (for $(...)).
func printNewToken(cmd *cobra.Command, name, scopes string, expires time.Time, secret string) {
	until := "never expires"
	if !expires.IsZero() {
		until = "expires " + expires.Format(time.RFC3339)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "token %s, %s, %s; shown this once:\n", name, scopes, until)
	fmt.Fprintln(cmd.OutOrStdout(), secret)
}
