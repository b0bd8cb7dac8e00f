package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Maildir layout: a delivery agent writes a message to tmp/, then renames it into
// new/; a reader moves it to cur/ and appends ":2,<flags>", renaming it again
// whenever its flags change. Only new/ and cur/ hold delivered mail, and the part
// of a name before ':' (its unique name) stays the same through all of that.

// uniqueName is a Maildir file name without its ":2,FLAGS" info, and whether the
// file is a message at all: dot files are a client's or a server's own, and a
// name that is not UTF-8 could not be written to a batch as it is.
func uniqueName(file string) (string, bool) {
	if file == "" || file[0] == '.' {
		return "", false
	}
	name, _, _ := strings.Cut(file, ":")
	return name, name != "" && len(name) <= 255 && utf8.ValidString(name)
}

// A Maildir is read through os.Root: listing new/ and cur/ and opening a mail
// cannot leave the Maildir, whatever its writers rename or link meanwhile. The
// configured path is the operator's and is taken as it resolves (a symbolic
// link there is followed); new/ and cur/ may be links only within the Maildir,
// and a mail must be a regular file of its own, never a link: a symbolic link
// is not followed (O_NOFOLLOW), a FIFO or device is not waited on (O_NONBLOCK)
// nor read, and a hard link to one of the agent's own files (its key, tokens,
// configuration) is refused. See docs/agent-protocol.md.

// maildirSub is new/ or cur/ of a watched Maildir, open for a scan.
type maildirSub struct {
	md   Maildir
	name string // "new" or "cur"
	root *os.Root
}

// openSub opens sub (new/ or cur/) of md for a scan; the caller closes it.
func openSub(md Maildir, sub string) (*maildirSub, error) {
	root, err := os.OpenRoot(md.Path)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	d, err := root.OpenRoot(sub)
	if err != nil {
		return nil, err
	}
	return &maildirSub{md: md, name: sub, root: d}, nil
}

func (d *maildirSub) names() ([]string, error) {
	f, err := d.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// candidate is a file of new/ or cur/ whose identity is not yet published.
type candidate struct {
	dir  *maildirSub
	file string // its name in dir
	path string // as logged
	name string // unique name
	fi   os.FileInfo
	mod  time.Time
}

// list adds the files of d whose unique names are unknown to known to cands,
// and marks the known ones as still present (gen).
func (p *Publisher) list(d *maildirSub, known map[string]*identity, cands []candidate, listed map[string]bool) ([]candidate, error) {
	names, err := d.names()
	if err != nil {
		return cands, err
	}
	for _, file := range names {
		name, ok := uniqueName(file)
		if !ok {
			continue
		}
		if id := known[name]; id != nil {
			id.gen = p.gen
			continue
		}
		if listed[name] {
			continue // in new/ and cur/ at once: a move under way
		}
		listed[name] = true
		cands = append(cands, candidate{dir: d, file: file, path: filepath.Join(d.md.Path, d.name, file), name: name})
	}
	return cands, nil
}

// deliveryOrder stats the candidates (dropping those gone meanwhile: moved, to be
// found under their new name by the next scan, or deleted; and those that are
// not regular files) and sorts them by modification time, the delivery time a
// batch records.
func deliveryOrder(cands []candidate) []candidate {
	out := cands[:0]
	for _, c := range cands {
		fi, err := c.dir.root.Lstat(c.file)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		c.fi, c.mod = fi, fi.ModTime().UTC()
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b candidate) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		if c := strings.Compare(a.dir.md.Folder, b.dir.md.Folder); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// errGone says a mail was deleted or moved before it could be read.
var errGone = errors.New("gone")

// errReplaced says the name of a mail named another file when it was opened
// than when it was listed: the next scan looks again.
var errReplaced = errors.New("replaced since it was listed")

// ownFiles are the agent's files a Maildir must never hand it: its TLS key and
// certificate, tokens and configuration.
func ownFiles(c Config) []os.FileInfo {
	var out []os.FileInfo
	for _, p := range []string{c.Path(c.TLS.Key), c.Path(c.TLS.Cert), filepath.Join(c.Dir, TokensFile), filepath.Join(c.Dir, ConfigFile)} {
		if fi, err := os.Stat(p); err == nil {
			out = append(out, fi)
		}
	}
	return out
}

// openMail opens candidate c for reading: without following a symbolic link,
// without waiting on a FIFO, and only when what it opened is the regular file
// the listing saw, and none of own.
func openMail(c candidate, own []os.FileInfo) (*os.File, os.FileInfo, error) {
	f, err := c.dir.root.OpenFile(c.file, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, errGone
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
	case !os.SameFile(fi, c.fi):
		// Also a symbolic link that stays in the Maildir, which os.Root follows.
		err = errReplaced
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	default:
		for _, o := range own {
			if os.SameFile(fi, o) {
				err = fmt.Errorf("a link to the agent's own %s: refused", o.Name())
			}
		}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// mailFile is a mail as read for extraction.
type mailFile struct {
	raw       []byte // the mail, or its first limit bytes when truncated
	truncated bool
	sha       string // when truncated: the whole file's SHA-256 and size
	size      int64
	kept      bool  // the whole file went to put already
	off       int64 // where put placed it in the raw pack
}

// readMail reads mail c (openMail), at most limit bytes of it: what extraction
// parses. For a larger mail it also hashes the whole file and, when keepRaw,
// hands all of it to put, so the raw copy and the SHA-256 it is known by are
// the mail's own.
func readMail(c candidate, own []os.FileInfo, limit int64, keepRaw bool, put func(io.Reader) (string, int64, int64, error)) (mailFile, error) {
	f, fi, err := openMail(c, own)
	if err != nil {
		return mailFile{}, err
	}
	defer f.Close()
	path, size := c.path, fi.Size()
	if size <= limit {
		// A delivered mail does not change: its size is known, one read takes it.
		raw := make([]byte, size)
		n, err := io.ReadFull(f, raw)
		if err != nil && err != io.ErrUnexpectedEOF {
			return mailFile{}, fmt.Errorf("read %s: %w", path, err)
		}
		return mailFile{raw: raw[:n]}, nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, limit+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return mailFile{}, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(buf.Len()) <= limit {
		return mailFile{raw: buf.Bytes()}, nil
	}
	m := mailFile{raw: buf.Bytes()[:limit], truncated: true, kept: keepRaw}
	if keepRaw {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return mailFile{}, fmt.Errorf("read %s: %w", path, err)
		}
		m.sha, m.size, m.off, err = put(f)
	} else {
		h := sha256.New()
		h.Write(buf.Bytes())
		var n int64
		n, err = io.Copy(h, f)
		m.sha, m.size = hex.EncodeToString(h.Sum(nil)), int64(buf.Len())+n
	}
	if err != nil {
		return mailFile{}, fmt.Errorf("read %s: %w", path, err)
	}
	return m, nil
}
