package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/mail"
)

// tip spam parse: the facts of local mail, extracted as the collectors do,
// without the stack.

// trapConfig is the extraction setting of a trap of the configured spam catalog.
func trapConfig(a *app, trap string) (mail.Config, error) {
	cfg := mail.Config{Limits: mail.DefaultLimits()}
	if a.cfg.Spam.Catalog == "" {
		return cfg, nil
	}
	c, err := catalog.LoadSpam(a.cfg.Spam.Catalog)
	if err != nil {
		return cfg, err
	}
	if trap == "" {
		trap = catalog.AllTraps
	}
	t, ok := c.Rules(trap)
	if !ok {
		return cfg, fmt.Errorf("no trap %q in %s", trap, c.Path)
	}
	cfg.TrapMX, cfg.TrapMXAddrs, cfg.TrustedRelays = t.MX, t.MXAddrs, t.Trusted
	return cfg, nil
}

func spamParseCmd(a *app) *cobra.Command {
	var trap string
	cmd := &cobra.Command{
		Use:   "parse FILE|MBOX|MAILDIR...",
		Short: "Extract the facts of local mail (RFC 822 files, mbox, Maildir folders) without the stack: one JSON object a mail",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := trapConfig(a, trap)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			n, defective := 0, 0
			for _, p := range args {
				err := mail.Walk(p, func(name string, raw []byte) error {
					f := mail.Extract(raw, cfg)
					n++
					if len(f.Defects) > 0 {
						defective++
					}
					return enc.Encode(struct {
						Name string `json:"name"`
						mail.Facts
					}{name, f})
				})
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d mails, %d with defects (trust rules of trap %q)\n", n, defective, trapName(a, trap))
			return nil
		},
	}
	cmd.Flags().StringVar(&trap, "trap", "", "the trap of the spam catalog whose MX hosts and relays pick the sender (default: all of them)")
	return cmd
}

func trapName(a *app, trap string) string {
	if trap == "" {
		return catalog.AllTraps
	}
	return trap
}
