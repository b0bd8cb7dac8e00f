package trap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tip-project/tip/lab/world"
)

// Delivery drops the trap's mail into a Maildir as lab time passes, as a mail server's
// local delivery agent would: each message is written to tmp/, synced, then renamed
// into new/, so a reader never sees a partial file. Its position is kept in a small
// state file, so a restart neither redelivers nor skips.
type Delivery struct {
	src       Source
	clock     *world.Clock
	dir       string
	stateFile string
	host      string

	mu     sync.Mutex
	loaded bool
	st     deliveryState
}

// deliveryState is the state file. Pending is set while a delivery is under way: if
// it is found on start, the window [Until, Pending) is finished by skipping the mail
// already in new/ or cur/ (file names are derived from the mail, so a retry finds
// them).
type deliveryState struct {
	Until     time.Time  `json:"until"` // every mail received before this lab time is delivered
	Pending   *time.Time `json:"pending,omitempty"`
	Delivered int        `json:"delivered"`
}

// NewDelivery delivers src into maildir (created with cur/, new/ and tmp/ if missing),
// remembering its position in stateFile. Without a state file it starts from the
// beginning of the source.
func NewDelivery(src Source, clock *world.Clock, maildir string, stateFile string) *Delivery {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	// Maildir names use '/' and ':' for themselves; the spec escapes them in the host.
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	return &Delivery{src: src, clock: clock, dir: maildir, stateFile: stateFile, host: host}
}

// Delivered is how many messages this Maildir has received, across restarts.
func (d *Delivery) Delivered() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.load(); err != nil {
		return 0, err
	}
	return d.st.Delivered, nil
}

// Run delivers what is due every wall interval until ctx ends.
func (d *Delivery) Run(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := d.DeliverDue(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// DeliverDue delivers the mail received since the last delivery up to the current lab
// time, and returns how many messages it delivered.
func (d *Delivery) DeliverDue() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.load(); err != nil {
		return 0, err
	}
	n := 0
	if d.st.Pending != nil {
		// The last run stopped mid-delivery: finish it without doubles.
		k, err := d.deliver(d.st.Until, *d.st.Pending, true)
		n += k
		if err != nil {
			return n, err
		}
	}
	now := d.clock.Now()
	if !now.After(d.st.Until) {
		return n, nil
	}
	k, err := d.deliver(d.st.Until, now, false)
	return n + k, err
}

// deliver moves the mail of [from, to) into new/ and records the new position. When
// resuming, mail already in the Maildir is skipped.
func (d *Delivery) deliver(from, to time.Time, resume bool) (int, error) {
	if !resume {
		d.st.Pending = &to
		if err := d.save(); err != nil {
			return 0, err
		}
	}
	var have map[string]bool
	if resume {
		var err error
		if have, err = d.present(); err != nil {
			return 0, err
		}
	}
	owner, err := d.owner()
	if err != nil {
		return 0, err
	}
	n, total := 0, 0
	for _, ml := range d.src.Between(from, to) {
		if ml.Time.Before(from) || !ml.Time.Before(to) {
			continue
		}
		total++
		name := d.fileName(ml)
		if have[name] {
			continue
		}
		if err := d.put(name, ml, owner); err != nil {
			return n, fmt.Errorf("maildir %s: %w", d.dir, err)
		}
		n++
	}
	if n > 0 {
		if err := syncDir(filepath.Join(d.dir, "new")); err != nil {
			return n, err
		}
	}
	d.st.Until, d.st.Pending = to, nil
	d.st.Delivered += total // on resume, some of them were delivered before the stop
	return n, d.save()
}

// fileName is the Maildir unique name of a mail: <unix>.M<usec>R<hash>.<host>,S=<size>.
// The "pid-ish" part is a hash of the mail's name rather than a process id, so the
// same mail always gets the same file name and an interrupted delivery can be resumed
// without doubles. ",S=" is the Dovecot size hint.
func (d *Delivery) fileName(ml Mail) string {
	h := sha256.Sum256([]byte(ml.Name))
	return fmt.Sprintf("%d.M%06dR%s.%s,S=%d", ml.Time.Unix(), ml.Time.Nanosecond()/1000,
		hex.EncodeToString(h[:8]), d.host, len(ml.Raw))
}

// put writes one message to tmp/, syncs it and renames it into new/.
func (d *Delivery) put(name string, ml Mail, owner *fileOwner) error {
	tmp := filepath.Join(d.dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = func() error {
		if _, err := f.Write(ml.Raw); err != nil {
			return err
		}
		if owner != nil {
			if err := f.Chown(owner.uid, owner.gid); err != nil {
				return err
			}
		}
		// Dovecot takes a Maildir message's received date (INTERNALDATE) from its mtime.
		if err := os.Chtimes(tmp, ml.Time, ml.Time); err != nil {
			return err
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(d.dir, "new", name))
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// present lists the base names of the messages in new/ and cur/ (a reader moves them
// to cur/ and appends ":2,<flags>").
func (d *Delivery) present() (map[string]bool, error) {
	have := map[string]bool{}
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(d.dir, sub))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			name, _, _ := strings.Cut(e.Name(), ":")
			have[name] = true
		}
	}
	return have, nil
}

// load reads the state file and prepares the Maildir, once.
func (d *Delivery) load() error {
	if d.loaded {
		return nil
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(d.dir, sub), 0o700); err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
	}
	// A crash between create and rename leaves our file in tmp/; nothing else of ours
	// can be there (Dovecot's own tmp files carry its pid, not our "R" names).
	entries, err := os.ReadDir(filepath.Join(d.dir, "tmp"))
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	ours := regexp.MustCompile(`^[0-9]+\.M[0-9]{6}R[0-9a-f]{16}\.` + regexp.QuoteMeta(d.host) + `,S=[0-9]+$`)
	for _, e := range entries {
		if ours.MatchString(e.Name()) {
			_ = os.Remove(filepath.Join(d.dir, "tmp", e.Name()))
		}
	}
	b, err := os.ReadFile(d.stateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("maildir delivery state: %w", err)
	default:
		if err := json.Unmarshal(b, &d.st); err != nil {
			return fmt.Errorf("maildir delivery state %s: %w", d.stateFile, err)
		}
	}
	d.loaded = true
	return nil
}

// save writes the state file atomically.
func (d *Delivery) save() error {
	b, err := json.Marshal(d.st)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.stateFile, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("maildir delivery state: %w", err)
	}
	return nil
}

type fileOwner struct{ uid, gid int }

// owner is who delivered files must belong to: when we run as root, the owner of the
// Maildir (the mail user Dovecot reads it as); otherwise nobody in particular.
func (d *Delivery) owner() (*fileOwner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	fi, err := os.Stat(d.dir)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil, nil
	}
	return &fileOwner{uid: int(st.Uid), gid: int(st.Gid)}, nil
}

// writeFileAtomic replaces p with data: write a temporary file, sync, rename, sync the
// folder.
func writeFileAtomic(p string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(p))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
