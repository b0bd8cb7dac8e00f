package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/lab"
)

// labAgentName is the lab's spamtrap agent in the spam catalog: its mails are
// recorded under the origin agent:lab-agent.
const labAgentName = "lab-agent"

// upLab starts the lab and a spamtrap agent on its agent trap as services of the
// stack, and registers the agent in the spam catalog at spamCatalog (see
// startLabAgent). tip is the binary that runs them.
func upLab(ctx context.Context, s *devstack.Stack, tip, spamCatalog string, log *slog.Logger) error {
	args := []string{"lab", "serve", "--state", s.Dir(devstack.Lab)}
	for _, p := range []struct {
		flag string
		port int
	}{{"--http-port", s.LabHTTPPort}, {"--dns-port", s.LabDNSPort}, {"--imap-port", s.LabIMAPPort}} {
		if p.port != 0 {
			args = append(args, p.flag, strconv.Itoa(p.port))
		}
	}
	if err := s.StartTip(ctx, devstack.Lab, tip, nil, args...); err != nil {
		return err
	}
	return startLabAgent(ctx, s, tip, spamCatalog, log)
}

// startLabAgent runs `tip agent serve` on the Maildir of the lab's agent trap, as
// a mail host would (deploy/agent/INSTALL.md), and registers it with the
// collector:
//
//   - on the first up, `tip agent init` in the state folder (a certificate, and so
//     a fingerprint, of this install's own) with the trap's trust rules, and a
//     collector token of scope raw kept in collector/lab-agent.token (mode 0600);
//   - on every up, the agent started unless it runs, and its entry in the spam
//     catalog set to its URL, token file and certificate file (left alone when
//     so, as in the shipped catalog).
//
// The token never enters the catalog nor a workflow history: the catalog names its
// file, which the worker's sync activity reads.
func startLabAgent(ctx context.Context, s *devstack.Stack, tip, spamCatalog string, log *slog.Logger) error {
	dir := s.Dir(devstack.Agent)
	maildir := lab.AgentMaildir(s.Dir(devstack.Lab))
	// The lab makes it too; made here, it is there before the agent first looks.
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, sub), 0o700); err != nil {
			return fmt.Errorf("agent trap maildir: %w", err)
		}
	}
	fresh := !fileExists(filepath.Join(dir, agent.ConfigFile))
	if fresh {
		mx, mxAddrs, trusted := lab.AgentTrapRules(lab.DefaultConfig("").Seed)
		listen := net.JoinHostPort(s.Host, strconv.Itoa(s.AgentPort))
		out, err := exec.CommandContext(ctx, tip, "agent", "init", "--dir", dir, "--id", mx[0], "--listen", listen,
			"--maildir", maildir+":spam").CombinedOutput()
		if err != nil {
			return fmt.Errorf("tip agent init: %w\n%s", err, out)
		}
		c, err := agent.LoadConfig(dir)
		if err != nil {
			return err
		}
		c.Trap.MX, c.Trap.MXAddrs, c.Trap.Trusted = mx, mxAddrs, trusted
		if err := c.Save(); err != nil {
			return err
		}
		log.Info("agent initialised", "dir", dir, "id", c.ID, "listen", c.Listen, "maildir", maildir)
	}
	c, err := agent.LoadConfig(dir)
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(s.StateDir, "collector", labAgentName+".token")
	if fresh || !fileExists(tokenFile) {
		// Token names are never reused, even revoked: a lost token file gets a new one.
		name := "tip-dev-" + time.Now().UTC().Format("20060102T150405Z")
		secret, _, err := agent.OpenTokens(dir).Add(name, agent.ScopeRaw, 0)
		if err != nil {
			return err
		}
		if err := writeSecret(tokenFile, secret); err != nil {
			return err
		}
		log.Info("collector token made", "agent", c.ID, "token", name, "scope", agent.ScopeRaw, "file", tokenFile)
	}
	if err := s.StartTip(ctx, devstack.Agent, tip, nil, devstack.AgentArgs(dir)...); err != nil {
		return err
	}
	cert := c.Path(c.TLS.Cert)
	fp, err := agent.CertFingerprint(cert)
	if err != nil {
		return err
	}
	// The collector pins the certificate in the agent's own folder: a new install
	// (after `tip dev wipe`) is pinned anew without the catalog changing, so the
	// shipped config/spam-lab.yaml stays as it is.
	entry := catalog.Agent{Name: labAgentName, URL: "https://" + c.Listen, TokenFile: pathFrom(spamCatalog, tokenFile),
		CertFile: pathFrom(spamCatalog, cert), Raw: true, Interval: time.Minute, Enabled: true}
	changed, err := catalog.SetAgent(spamCatalog, entry)
	if err != nil {
		return fmt.Errorf("register the lab's agent: %w", err)
	}
	if changed {
		log.Info("agent registered in the spam catalog", "agent", labAgentName, "catalog", spamCatalog, "url", entry.URL, "certificate", cert, "fingerprint", fp)
	}
	return nil
}

// writeSecret writes a secret readable by its owner only, in a folder only its
// owner enters, replacing the file whole.
func writeSecret(path, secret string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // a leftover would keep its mode
	if err := os.WriteFile(tmp, []byte(secret+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pathFrom writes p as a catalog at catalogPath names it: relative to the
// catalog's folder when p sits beside it (../state/... from config/), absolute
// otherwise.
func pathFrom(catalogPath, p string) string {
	dir, err := filepath.Abs(filepath.Dir(catalogPath))
	if err != nil {
		return p
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil || strings.HasPrefix(rel, ".."+string(filepath.Separator)+"..") {
		return p
	}
	return rel
}
