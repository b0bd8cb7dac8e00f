// Package lab serves TIP's simulated Internet on loopback: blacklist feeds in their
// real formats, the untroubled.org-style spam archive, an IMAP spamtrap (a real
// Dovecot over a Maildir the lab keeps delivering into), authoritative DNS with
// fast-flux, CDN and ordinary domains, the iptoasn.com table, and a third trap's
// Maildir for a spamtrap agent to read — all generated from one seed and driven by
// a lab clock, so the ground truth is known.
package lab

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/lab/dnsd"
	"github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/spam"
	"github.com/tip-project/tip/lab/trap"
	"github.com/tip-project/tip/lab/world"
)

// Config says where the lab listens and how it behaves.
type Config struct {
	Seed     uint64
	Speed    float64 // lab seconds per wall second
	StateDir string  // clock, archives cache, Maildir, Dovecot
	Host     string
	HTTPPort int // feeds, spam archive, iptoasn table, truth
	DNSPort  int // UDP and TCP
	IMAPPort int // Dovecot; 0: no IMAP spamtrap
	// IMAPUser/IMAPPassword log in to the trap mailbox.
	IMAPUser, IMAPPassword string
	SpamPerDay             int
	// AgentSpamPerDay is the mean spam a lab day of the agent's trap: its own
	// stream, delivered into its own Maildir (AgentMaildir); 0: no agent trap.
	AgentSpamPerDay int
	// DeliverEvery is how often (wall time) new spam is delivered into the Maildirs.
	DeliverEvery time.Duration
	// SlowChunkDelay paces the slow feed.
	SlowChunkDelay time.Duration
}

// DefaultConfig is the lab of `make demo`: a lab day passes in two wall minutes.
func DefaultConfig(stateDir string) Config {
	return Config{
		Seed:            1,
		Speed:           720,
		StateDir:        stateDir,
		Host:            "127.0.0.1",
		HTTPPort:        8480,
		DNSPort:         5354,
		IMAPPort:        1143,
		IMAPUser:        "trap",
		IMAPPassword:    "trap-password",
		SpamPerDay:      600,
		AgentSpamPerDay: 300,
		DeliverEvery:    5 * time.Second,
		SlowChunkDelay:  2 * time.Second,
	}
}

// Lab is a running simulated Internet.
type Lab struct {
	cfg      Config
	World    *world.World
	Clock    *world.Clock
	Feeds    *feeds.Server
	Spam     *spam.Generator
	Archive  *trap.Archive
	DNS      *dnsd.Server
	Dovecot  *trap.Dovecot
	delivery *trap.Delivery
	http     *http.Server
	httpAddr string
	log      *slog.Logger
	cancel   context.CancelFunc
	done     chan error
	// IMAPError says why the IMAP spamtrap is not running, when it is not.
	IMAPError error

	// AgentSpam is the agent trap's stream, which agentDelivery puts in its
	// Maildir; both nil without an agent trap.
	AgentSpam     *spam.Generator
	agentDelivery *trap.Delivery
}

// New builds the lab's parts without starting any server.
func New(cfg Config, log *slog.Logger) (*Lab, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, err
	}
	w := world.NewWorld(cfg.Seed)
	clock, err := loadClock(filepath.Join(cfg.StateDir, "clock.json"), w.Start, cfg.Speed)
	if err != nil {
		return nil, err
	}
	gen := spam.NewGenerator(w, spam.Options{PerDay: cfg.SpamPerDay})
	archive, err := trap.NewArchive(mailSource{gen}, clock, w.Start, filepath.Join(cfg.StateDir, "archive-cache"))
	if err != nil {
		return nil, err
	}
	l := &Lab{
		cfg:     cfg,
		World:   w,
		Clock:   clock,
		Feeds:   feeds.New(w, clock, feeds.Options{SlowChunkDelay: cfg.SlowChunkDelay}),
		Spam:    gen,
		Archive: archive,
		DNS:     dnsd.New(w, clock, log),
		log:     log,
	}
	if cfg.AgentSpamPerDay > 0 {
		l.AgentSpam = NewAgentSpam(w, cfg.AgentSpamPerDay)
	}
	return l, nil
}

// newAgentSpam is the spam of the agent's trap: a stream of its own, from the
// same campaigns as the rest.
func NewAgentSpam(w *world.World, perDay int) *spam.Generator {
	return spam.NewGenerator(w, spam.Options{PerDay: perDay, Stream: "agent", Traps: []world.TrapMX{w.AgentTrapMX}})
}

// AgentMaildir is where a lab with state folder stateDir delivers the agent
// trap's mail: the Maildir a spamtrap agent on that trap's mail server watches.
func AgentMaildir(stateDir string) string { return filepath.Join(stateDir, "agent-trap", "Maildir") }

// AgentTrapRules are the trust rules of the agent's trap in the lab of seed: its
// MX host name and address and the relays it trusts, for the agent's
// configuration.
func AgentTrapRules(seed uint64) (mx []string, mxAddrs, trusted []netip.Prefix) {
	w := world.NewWorld(seed)
	mx = []string{w.AgentTrapMX.Name}
	mxAddrs = []netip.Prefix{netip.PrefixFrom(w.AgentTrapMX.Addr, w.AgentTrapMX.Addr.BitLen())}
	for _, a := range NewAgentSpam(w, 1).TrustedRelays() {
		trusted = append(trusted, netip.PrefixFrom(a, a.BitLen()))
	}
	return mx, mxAddrs, trusted
}

// MailSource adapts the spam generator to what the trap publishes (the archive
// and the Maildir delivery), for the lab and for tests that build a trap alone.
func MailSource(g *spam.Generator) trap.Source { return mailSource{g} }

type mailSource struct{ g *spam.Generator }

func (m mailSource) Between(from, to time.Time) []trap.Mail {
	msgs := m.g.Between(from, to)
	out := make([]trap.Mail, len(msgs))
	for i, msg := range msgs {
		out[i] = trap.Mail{Name: msg.Name, Time: msg.Time, Raw: msg.Raw}
	}
	return out
}

// Start brings every service up on its port and returns once they answer.
func (l *Lab) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	l.done = make(chan error, 3)

	addr := net.JoinHostPort(l.cfg.Host, strconv.Itoa(l.cfg.HTTPPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("lab http: %w", err)
	}
	l.httpAddr = ln.Addr().String()
	l.http = &http.Server{Handler: l.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := l.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.done <- fmt.Errorf("lab http: %w", err)
		}
	}()

	if err := l.DNS.ListenAndServe(net.JoinHostPort(l.cfg.Host, strconv.Itoa(l.cfg.DNSPort))); err != nil {
		l.Close()
		return fmt.Errorf("lab dns: %w", err)
	}

	maildir := filepath.Join(l.cfg.StateDir, "maildir")
	l.delivery = trap.NewDelivery(mailSource{l.Spam}, l.Clock, maildir, filepath.Join(l.cfg.StateDir, "delivery.state"))
	if err := l.startDelivery(ctx, l.delivery, "maildir"); err != nil {
		l.Close()
		return err
	}
	if l.AgentSpam != nil {
		l.agentDelivery = trap.NewDelivery(mailSource{l.AgentSpam}, l.Clock, AgentMaildir(l.cfg.StateDir),
			filepath.Join(l.cfg.StateDir, "agent-trap", "delivery.state"))
		if err := l.startDelivery(ctx, l.agentDelivery, "agent trap maildir"); err != nil {
			l.Close()
			return err
		}
	}
	if l.cfg.IMAPPort != 0 {
		l.Dovecot, l.IMAPError = trap.StartDovecot(ctx, trap.DovecotConfig{
			Dir: filepath.Join(l.cfg.StateDir, "dovecot"), Maildir: maildir,
			User: l.cfg.IMAPUser, Password: l.cfg.IMAPPassword, Port: l.cfg.IMAPPort,
		})
		if l.IMAPError != nil {
			l.log.Warn("IMAP spamtrap not running", "err", l.IMAPError)
		}
	}
	return nil
}

// startDelivery delivers what is due into a Maildir now, then keeps delivering as
// lab time passes until ctx ends.
func (l *Lab) startDelivery(ctx context.Context, d *trap.Delivery, what string) error {
	if _, err := d.DeliverDue(); err != nil {
		return fmt.Errorf("lab %s: %w", what, err)
	}
	go func() {
		if err := d.Run(ctx, l.cfg.DeliverEvery); err != nil && !errors.Is(err, context.Canceled) {
			l.done <- fmt.Errorf("lab %s delivery: %w", what, err)
		}
	}()
	return nil
}

// Wait blocks until the context ends or a service fails.
func (l *Lab) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-l.done:
		return err
	}
}

// Close stops every service.
func (l *Lab) Close() {
	if l.cancel != nil {
		l.cancel()
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if l.http != nil {
		_ = l.http.Shutdown(shutdown)
	}
	if l.DNS != nil {
		_ = l.DNS.Shutdown(shutdown)
	}
	if l.Dovecot != nil {
		_ = l.Dovecot.Stop()
	}
}

// HTTPAddr is the host:port of the lab's web server.
func (l *Lab) HTTPAddr() string { return l.httpAddr }

// DNSAddr is the host:port of the lab's DNS server.
func (l *Lab) DNSAddr() string { return l.DNS.Addr() }

// Handler serves the lab's web: feeds, the spam archive, the ASN table, truth.
func (l *Lab) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/feeds/", l.Feeds.Handler())
	mux.Handle("/spam-archive/", http.StripPrefix("/spam-archive", l.Archive.Handler()))
	mux.HandleFunc("/iptoasn/ip2asn-combined.tsv", l.serveASN(false))
	mux.HandleFunc("/iptoasn/ip2asn-combined.tsv.gz", l.serveASN(true))
	mux.Handle("/allowlists/", AllowlistHandler(l.World, l.log))
	mux.HandleFunc("/truth", l.serveTruth)
	mux.HandleFunc("/clock", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, ClockState{Now: l.Clock.Now(), Speed: l.Clock.Speed(), Day: l.World.Day(l.Clock.Now()),
			Seed: l.World.Seed, SpamPerDay: l.cfg.SpamPerDay})
	})
	mux.HandleFunc("/{$}", l.serveIndex)
	return mux
}

// ClockState is what /clock answers: enough to rebuild the lab's truth elsewhere.
type ClockState struct {
	Now        time.Time `json:"now"`
	Speed      float64   `json:"speed"`
	Day        int       `json:"lab_day"`
	Seed       uint64    `json:"seed"`
	SpamPerDay int       `json:"spam_per_day"`
}

func (l *Lab) serveASN(gz bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The table never changes for a seed: a fixed validator lets clients cache it.
		if notModified(w, r, fmt.Sprintf(`"ip2asn-%d-%t"`, l.World.Seed, gz)) {
			return
		}
		w.Header().Set("Content-Type", "text/tab-separated-values")
		var out io.Writer = w
		if gz {
			w.Header().Set("Content-Type", "application/gzip")
			zw := gzip.NewWriter(w)
			defer zw.Close()
			out = zw
		}
		if err := ipasn.Write(out, l.World.ASNTable()); err != nil {
			l.log.Warn("serve ip2asn", "err", err)
		}
	}
}

// notModified sets a fixed validator (these files never change for a seed) and
// answers 304 to a client that has it.
func notModified(w http.ResponseWriter, r *http.Request, etag string) bool {
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	return false
}

func (l *Lab) serveTruth(w http.ResponseWriter, r *http.Request) {
	at := l.Clock.Now()
	if s := r.URL.Query().Get("at"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			http.Error(w, "at: want an RFC 3339 time", http.StatusBadRequest)
			return
		}
		at = t
	}
	writeJSON(w, BuildTruth(l.World, l.Feeds, l.Spam, at, at.Add(-24*time.Hour)))
}

// TruthAt computes the ground truth of a lab with this seed and spam rate at lab
// time at, without running anything: the lab is a pure function of its seed.
func TruthAt(seed uint64, spamPerDay int, at time.Time, spamWindow time.Duration) Truth {
	w := world.NewWorld(seed)
	fs := feeds.New(w, world.FixedClock(at), feeds.Options{})
	return BuildTruth(w, fs, spam.NewGenerator(w, spam.Options{PerDay: spamPerDay}), at, at.Add(-spamWindow))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>TIP lab</title></head><body>
<h1>TIP lab — a simulated Internet</h1>
<p>Lab time {{.Now.Format "2006-01-02 15:04:05 MST"}} (day {{.Day}}), running {{.Speed}}× faster than the wall clock. Seed {{.Seed}}.</p>
<ul>
<li><a href="/feeds/">feeds</a> ({{.Feeds}} blacklist feeds in their real formats)</li>
<li><a href="/spam-archive/">spam archive</a> (monthly 7z archives, untroubled.org layout)</li>
<li><a href="/iptoasn/ip2asn-combined.tsv.gz">ip2asn-combined.tsv.gz</a> (iptoasn.com format)</li>
<li>allowlists: <a href="/allowlists/tranco/top-1m.csv">top sites</a> (Tranco format, also <a href="/allowlists/tranco/top-1m.csv.zip">zipped</a>), <a href="/allowlists/cdn-ranges.txt">CDN ranges</a></li>
<li><a href="/truth">ground truth</a> (JSON), <a href="/clock">lab clock</a></li>
<li>DNS: {{.DNS}} (UDP and TCP){{if .IMAP}}; IMAP spamtrap: {{.IMAP}}{{end}}</li>
{{if .AgentMaildir}}<li>agent trap: {{.AgentTrap}} receives its own spam in the Maildir {{.AgentMaildir}}, for a spamtrap agent to read</li>{{end}}
</ul></body></html>
`))

func (l *Lab) serveIndex(w http.ResponseWriter, r *http.Request) {
	imap, agentMaildir := "", ""
	if l.Dovecot != nil {
		imap = l.Dovecot.Addr()
	}
	if l.agentDelivery != nil {
		agentMaildir = AgentMaildir(l.cfg.StateDir)
	}
	_ = indexPage.Execute(w, map[string]any{
		"Now": l.Clock.Now(), "Day": l.World.Day(l.Clock.Now()), "Speed": l.Clock.Speed(), "Seed": l.World.Seed,
		"Feeds": len(l.Feeds.Catalog()), "DNS": l.DNS.Addr(), "IMAP": imap,
		"AgentTrap": l.World.AgentTrapMX.Trap, "AgentMaildir": agentMaildir,
	})
}

// clockFile keeps the lab clock across restarts, so lab time never runs backwards
// for a TIP that already collected from it.
type clockFile struct {
	Wall  time.Time `json:"wall"`
	Lab   time.Time `json:"lab"`
	Speed float64   `json:"speed"`
}

func loadClock(path string, start time.Time, speed float64) (*world.Clock, error) {
	var cf clockFile
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &cf); err != nil {
			return nil, fmt.Errorf("lab clock %s: %w (delete it to restart lab time)", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		cf = clockFile{Wall: time.Now(), Lab: start, Speed: speed}
		data, _ := json.Marshal(cf)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	c := world.NewClock(cf.Lab, cf.Speed)
	// Lab time continues from where the saved wall time left it.
	c.Set(cf.Lab.Add(time.Duration(float64(time.Since(cf.Wall)) * cf.Speed)))
	return c, nil
}
