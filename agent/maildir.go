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

// candidate is a file of new/ or cur/ whose identity is not yet published.
type candidate struct {
	md   Maildir
	path string
	name string // unique name
	mod  time.Time
	size int64
}

// list adds the files of sub (new/ or cur/) of md whose unique names are unknown
// to known to cands, and marks the known ones as still present (gen).
func (p *Publisher) list(md Maildir, sub string, known map[string]*identity, cands []candidate, listed map[string]bool) ([]candidate, error) {
	dir := filepath.Join(md.Path, sub)
	names, err := readNames(dir)
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
		cands = append(cands, candidate{md: md, path: filepath.Join(dir, file), name: name})
	}
	return cands, nil
}

// deliveryOrder stats the candidates (dropping those gone meanwhile: moved, to be
// found under their new name by the next scan, or deleted) and sorts them by
// modification time, the delivery time a batch records.
func deliveryOrder(cands []candidate) []candidate {
	out := cands[:0]
	for _, c := range cands {
		fi, err := os.Lstat(c.path)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		c.mod, c.size = fi.ModTime().UTC(), fi.Size()
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b candidate) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		if c := strings.Compare(a.md.Folder, b.md.Folder); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// errGone says a mail was deleted or moved before it could be read.
var errGone = errors.New("gone")

// mailFile is a mail as read for extraction.
type mailFile struct {
	raw       []byte // the mail, or its first limit bytes when truncated
	truncated bool
	sha       string // when truncated: the whole file's SHA-256 and size
	size      int64
	kept      bool  // the whole file went to put already
	off       int64 // where put placed it in the raw pack
}

// readMail reads one mail of about size bytes, at most limit bytes of it: what
// extraction parses. For a larger mail it also hashes the whole file and, when
// keepRaw, hands all of it to put, so the raw copy and the SHA-256 it is known
// by are the mail's own.
func readMail(path string, size, limit int64, keepRaw bool, put func(io.Reader) (string, int64, int64, error)) (mailFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return mailFile{}, errGone
	}
	if err != nil {
		return mailFile{}, err
	}
	defer f.Close()
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
