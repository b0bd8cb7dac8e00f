package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tip-project/tip/mail"
)

// Publisher watches the configured Maildirs and publishes each new mail's facts
// exactly once, in batches appended to a Store. A mail's identity is (folder,
// unique name): moving it from new/ to cur/ or changing its flags does not make
// it new, and files still being delivered (in tmp/) are not looked at.
//
// What has been published is known from the store itself: on start the
// Publisher reads the batches (after the last checkpoint, see below), so a
// restart, or a crash at any step of an Append, neither loses a mail nor
// publishes one twice. A mail is forgotten once it has left its Maildir, as
// unique names are never reused.
//
// One goroutine uses a Publisher. After an error from Run or ScanOnce it stops
// for good; `tip agent serve` exits and its supervisor restarts it, which
// reopens the Store and recovers.
type Publisher struct {
	cfg   Config
	store *Store
	log   *slog.Logger
	mcfg  mail.Config

	known   map[string]map[string]*identity // folder label → unique name
	gen     uint64                          // scans so far
	pending []Mail                          // the open batch
	ids     []*identity                     // of pending
	first   time.Time                       // when the open batch got its first mail

	sinceCheckpoint int // mails published since the last checkpoint
	err             error

	beforeRead func(path string) // tests: runs before each mail is read
}

// identity is what the Publisher knows of one (folder, unique name).
type identity struct {
	gen   uint64 // the last scan that listed it (0: known from the batches only)
	state idState
}

type idState uint8

const (
	isPublished  idState = iota
	isPending            // in the open batch
	isUnreadable         // skipped; read again after a restart
)

// checkpointFile, in state/, lists the identities published up to a version that
// were still in their Maildirs then, so a restart reads only the batches after it.
const checkpointFile = "published.json.gz"

// checkpointMin is the fewest mails published between two checkpoints; beyond
// it a checkpoint is written once a quarter of the identities it holds are new,
// so writing them costs O(1) per mail.
const checkpointMin = 10_000

// checkpoint is the file: the version it covers, that version's SHA-256 (a
// checkpoint is used only when the manifest still names the same batch), and
// the published unique names of each folder.
type checkpoint struct {
	Version uint64              `json:"version"`
	SHA256  string              `json:"sha256"`
	Folders map[string][]string `json:"folders"`
}

// NewPublisher prepares to publish cfg's Maildirs into store, recovering from
// the store what was published before.
func NewPublisher(cfg Config, store *Store, log *slog.Logger) (*Publisher, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.ID != store.Agent() {
		return nil, fmt.Errorf("publisher: the configuration is agent %q, the store %q", cfg.ID, store.Agent())
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{cfg: cfg, store: store, log: log, mcfg: cfg.MailConfig(), known: map[string]map[string]*identity{}}
	if err := p.recover(); err != nil {
		return nil, fmt.Errorf("publisher: recover: %w", err)
	}
	return p, nil
}

// recover fills known from the checkpoint, if it is consistent with the
// manifest, and the batches after it.
func (p *Publisher) recover() error {
	from := uint64(0)
	cp, err := p.loadCheckpoint()
	if err != nil {
		p.log.Warn("agent: checkpoint not used, reading every batch", "err", err)
	} else if cp.Version > 0 {
		for folder, names := range cp.Folders {
			for _, n := range names {
				p.folder(folder)[n] = &identity{}
			}
		}
		from = cp.Version
	}
	latest := p.store.Latest()
	for v := from + 1; v <= latest; v++ {
		b, err := p.store.ReadBatch(v)
		if err != nil {
			return err
		}
		for _, m := range b.Mails {
			p.folder(m.Folder)[m.Name] = &identity{}
		}
	}
	for folder := range p.known {
		if !slices.ContainsFunc(p.cfg.Maildirs, func(md Maildir) bool { return md.Folder == folder }) {
			delete(p.known, folder)
		}
	}
	p.log.Info("agent: publisher recovered", "latest", latest, "checkpoint", from, "batches_read", latest-from)
	return nil
}

func (p *Publisher) loadCheckpoint() (checkpoint, error) {
	f, err := os.Open(filepath.Join(p.store.Dir(), StateDir, checkpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		return checkpoint{}, nil
	}
	if err != nil {
		return checkpoint{}, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return checkpoint{}, err
	}
	var cp checkpoint
	if err := json.NewDecoder(zr).Decode(&cp); err != nil {
		return checkpoint{}, err
	}
	if cp.Version == 0 {
		return checkpoint{}, nil
	}
	e, err := p.store.entry(cp.Version)
	if err != nil || e.SHA256 != cp.SHA256 {
		return checkpoint{}, fmt.Errorf("checkpoint of version %d does not match the manifest", cp.Version)
	}
	return cp, nil
}

// writeCheckpoint records the published identities; called with no open batch.
func (p *Publisher) writeCheckpoint() error {
	latest := p.store.Latest()
	if latest == 0 {
		return nil
	}
	e, err := p.store.entry(latest)
	if err != nil {
		return err
	}
	cp := checkpoint{Version: latest, SHA256: e.SHA256, Folders: map[string][]string{}}
	for folder, ids := range p.known {
		names := make([]string, 0, len(ids))
		for n, id := range ids {
			if id.state == isPublished {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		cp.Folders[folder] = names
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err := json.NewEncoder(zw).Encode(cp); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(p.store.Dir(), StateDir, checkpointFile), buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	p.sinceCheckpoint = 0
	return nil
}

// maybeCheckpoint writes a checkpoint when enough was published since the last.
func (p *Publisher) maybeCheckpoint() error {
	if len(p.pending) > 0 || p.sinceCheckpoint < checkpointMin {
		return nil
	}
	total := 0
	for _, ids := range p.known {
		total += len(ids)
	}
	if p.sinceCheckpoint < total/4 {
		return nil
	}
	return p.writeCheckpoint()
}

func (p *Publisher) folder(label string) map[string]*identity {
	ids := p.known[label]
	if ids == nil {
		ids = map[string]*identity{}
		p.known[label] = ids
	}
	return ids
}

// Run scans every scan_interval and publishes, closing a batch at
// batch_max_mails or batch_max_wait after its first mail, until ctx ends; then
// it publishes the open batch, writes a checkpoint and returns nil.
func (p *Publisher) Run(ctx context.Context) error {
	if p.err != nil {
		return p.err
	}
	t := time.NewTimer(0)
	defer t.Stop()
	next := time.Now()
	for {
		select {
		case <-ctx.Done():
			return p.stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			return p.stop()
		}
		if now := time.Now(); !now.Before(next) {
			next = now.Add(p.cfg.ScanInterval)
			if _, err := p.scan(ctx); err != nil {
				return err
			}
		}
		if len(p.pending) > 0 && time.Since(p.first) >= p.cfg.BatchMaxWait {
			if _, err := p.flush(); err != nil {
				return err
			}
		}
		if err := p.maybeCheckpoint(); err != nil {
			return p.fail(err)
		}
		wake := next
		if len(p.pending) > 0 {
			wake = minTime(wake, p.first.Add(p.cfg.BatchMaxWait))
		}
		t.Reset(time.Until(wake))
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// stop publishes the open batch and writes a checkpoint, on the way out.
func (p *Publisher) stop() error {
	if _, err := p.flush(); err != nil {
		return err
	}
	if p.sinceCheckpoint > 0 {
		if err := p.writeCheckpoint(); err != nil {
			return p.fail(err)
		}
	}
	return nil
}

// ScanOnce scans the Maildirs once and publishes every new mail found,
// including a last, partial batch; it returns how many mails it published.
func (p *Publisher) ScanOnce(ctx context.Context) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.scan(ctx)
	if err != nil {
		return n, err
	}
	k, err := p.flush()
	if err != nil {
		return n, err
	}
	return n + k, p.fail(p.maybeCheckpoint())
}

// Checkpoint writes a checkpoint now (there must be no open batch, as after
// ScanOnce).
func (p *Publisher) Checkpoint() error {
	if len(p.pending) > 0 {
		return errors.New("checkpoint: a batch is open")
	}
	return p.fail(p.writeCheckpoint())
}

func (p *Publisher) fail(err error) error {
	if err != nil && p.err == nil {
		p.err = err
	}
	return err
}

// scan lists every Maildir's new/ and cur/ (new/ first: a mail moved to cur/
// meanwhile is then listed in one or the other), forgets the identities no longer
// there, and reads the new mails in delivery order into the open batch, which it
// publishes each time it is full. It returns how many mails it published.
func (p *Publisher) scan(ctx context.Context) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	p.gen++
	var cands []candidate
	for _, md := range p.cfg.Maildirs {
		known := p.folder(md.Folder)
		listed := map[string]bool{}
		complete := true
		for _, sub := range []string{"new", "cur"} {
			d, err := openSub(md, sub)
			if err == nil {
				defer d.root.Close() // the candidates are read through it below
				cands, err = p.list(d, known, cands, listed)
			}
			if err != nil {
				p.log.Warn("agent: cannot list a Maildir", "folder", md.Folder, "err", err)
				complete = false
			}
		}
		if complete {
			for name, id := range known {
				if id.gen != p.gen && id.state != isPending {
					delete(known, name)
				}
			}
		}
	}
	n := 0
	own := ownFiles(p.cfg)
	for _, c := range deliveryOrder(cands) {
		if ctx.Err() != nil {
			break
		}
		if err := p.add(c, own); err != nil {
			return n, p.fail(err)
		}
		if len(p.pending) >= p.cfg.BatchMaxMails {
			k, err := p.flush()
			n += k
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// putError is the store failing to take a raw mail: fatal, unlike a mail that
// cannot be read.
type putError struct{ error }

func (e putError) Unwrap() error { return e.error }

// add reads one new mail into the open batch. A mail gone meanwhile is skipped;
// one that cannot be read, or is not a mail (openMail), is logged and skipped
// until the next restart.
func (p *Publisher) add(c candidate, own []os.FileInfo) error {
	if p.beforeRead != nil {
		p.beforeRead(c.path)
	}
	limit := p.mcfg.Limits.MaxSize
	put := func(r io.Reader) (string, int64, int64, error) {
		sha, size, off, err := p.store.PutRaw(r)
		if err != nil {
			return "", 0, 0, putError{err}
		}
		return sha, size, off, nil
	}
	mf, err := readMail(c, own, limit, p.cfg.KeepRaw, put)
	if errors.Is(err, errGone) {
		return nil
	}
	if errors.Is(err, errReplaced) {
		p.log.Warn("agent: a mail was replaced while being read, read again at the next scan", "folder", c.dir.md.Folder, "path", c.path)
		return nil
	}
	if err != nil {
		if pe := (putError{}); errors.As(err, &pe) {
			return err
		}
		p.log.Warn("agent: cannot read a mail, skipped", "folder", c.dir.md.Folder, "path", c.path, "err", err)
		p.known[c.dir.md.Folder][c.name] = &identity{gen: p.gen, state: isUnreadable}
		return nil
	}
	facts := mail.Extract(mf.raw, p.mcfg)
	switch {
	case mf.truncated:
		facts.SHA256, facts.Size = mf.sha, mf.size
		kept := ""
		if mf.kept {
			kept = ", kept whole"
		}
		facts.Defects = append(facts.Defects, fmt.Sprintf("larger than the %d-byte limit: parsed truncated%s", limit, kept))
		p.log.Warn("agent: mail over the size limit, parsed truncated", "folder", c.dir.md.Folder, "name", c.name, "size", mf.size)
	case p.cfg.KeepRaw:
		sha, _, off, err := p.store.PutRaw(bytes.NewReader(mf.raw))
		if err != nil {
			return err
		}
		mf.off = off
		if sha != facts.SHA256 {
			return fmt.Errorf("mail %s: raw copy hashed to %s, extraction to %s", c.path, sha, facts.SHA256)
		}
	}
	id := &identity{gen: p.gen, state: isPending}
	p.known[c.dir.md.Folder][c.name] = id
	if len(p.pending) == 0 {
		p.first = time.Now()
	}
	p.pending = append(p.pending, Mail{Name: c.name, Folder: c.dir.md.Folder, Delivered: c.mod, Raw: p.cfg.KeepRaw, RawOffset: mf.off, Facts: facts})
	p.ids = append(p.ids, id)
	return nil
}

// flush publishes the open batch, if any, and returns its mail count.
func (p *Publisher) flush() (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if len(p.pending) == 0 {
		return 0, nil
	}
	e, err := p.store.Append(p.pending)
	if err != nil {
		return 0, p.fail(err)
	}
	for _, id := range p.ids {
		id.state = isPublished
	}
	n := len(p.pending)
	clear(p.pending)
	clear(p.ids)
	p.pending, p.ids = p.pending[:0], p.ids[:0]
	p.sinceCheckpoint += n
	p.log.Info("agent: published", "version", e.Version, "mails", n, "bytes", e.Size)
	return n, nil
}
