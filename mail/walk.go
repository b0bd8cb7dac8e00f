package mail

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Walk calls fn with every message found at path, in a stable order:
//
//   - a Maildir folder (one with cur/ or new/): the files of new/ then cur/, named
//     by their unique part (the file name without its ":2,flags" info, so a
//     message keeps its name when the reader flags it or moves it to cur/);
//     tmp/ holds deliveries in progress and is skipped;
//   - an mbox file (one starting with a "From " line ended by LF): each
//     message, with the ">From " quoting undone, named "mbox:<path>#<n>" (n
//     from 1);
//   - any other file: one RFC 822 message, named by its file name;
//   - any other folder: the files under it, named by their path in it (an
//     unpacked spam archive's "2026/09/01/<name>.txt"), Maildirs inside it
//     walked as Maildirs.
//
// No message is read beyond DefaultLimits().MaxSize+1 bytes: a longer one
// reaches fn cut there, and Extract records it as over the limit. Walk stops at
// the first error of fn and returns it; fs.SkipAll stops it without one.
func Walk(path string, fn func(name string, raw []byte) error) error {
	w := walker{max: DefaultLimits().MaxSize, fn: fn}
	err := w.walk(path)
	if errors.Is(err, fs.SkipAll) {
		return nil
	}
	return err
}

type walker struct {
	max int64
	fn  func(name string, raw []byte) error
}

func (w walker) walk(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return w.file(path, filepath.Base(path))
	}
	if isMaildir(path) {
		return w.maildir(path)
	}
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && isMaildir(p) {
				if err := w.maildir(p); err != nil {
					return err
				}
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(path, p)
		if err != nil {
			return err
		}
		return w.file(p, filepath.ToSlash(rel))
	})
}

func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if st, err := os.Stat(filepath.Join(dir, sub)); err == nil && st.IsDir() {
			return true
		}
	}
	return false
}

// maildir walks new/ then cur/, each in name order.
func (w walker) maildir(dir string) error {
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			raw, err := w.read(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				return err
			}
			if err := w.fn(maildirName(e.Name()), raw); err != nil {
				return err
			}
		}
	}
	return nil
}

// maildirName is a Maildir file's unique part: the name without ":2,flags".
func maildirName(name string) string {
	if i := strings.LastIndex(name, ":2,"); i > 0 {
		return name[:i]
	}
	if i := strings.LastIndex(name, "!2,"); i > 0 { // the Windows-safe separator
		return name[:i]
	}
	return name
}

// read reads a file up to the size bound.
func (w walker) read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, w.max+1))
}

// file is one message, or an mbox of many.
func (w walker) file(path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	if head, _ := br.Peek(1 << 10); bytes.HasPrefix(head, []byte("From ")) && !crLines(head) {
		return w.mbox(br, path)
	}
	raw, err := io.ReadAll(io.LimitReader(br, w.max+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return w.fn(name, raw)
}

// crLines reports a first line that ends in a bare CR: a file saved by an old
// Mac client. Its "From " line is not an mbox separator (the mbox format splits
// at LF, and so does Python's mailbox module): the file is one message, whose
// "From " line Extract skips.
func crLines(head []byte) bool {
	i := bytes.IndexAny(head, "\r\n")
	return i >= 0 && i+1 < len(head) && head[i] == '\r' && head[i+1] != '\n'
}

// mbox splits an mbox stream at "From " lines that start the file or follow an
// empty line, undoing the ">From " quoting of mboxrd (one ">" less), and drops
// the empty line that separates messages.
func (w walker) mbox(br *bufio.Reader, path string) error {
	var msg []byte
	n, in := 0, false
	lineStart, prevBlank := true, true
	emit := func() error {
		if !in {
			return nil
		}
		switch {
		case bytes.HasSuffix(msg, []byte("\r\n\r\n")):
			msg = msg[:len(msg)-2]
		case bytes.HasSuffix(msg, []byte("\n\n")):
			msg = msg[:len(msg)-1]
		}
		return w.fn(fmt.Sprintf("mbox:%s#%d", path, n), msg)
	}
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			switch {
			case lineStart && prevBlank && bytes.HasPrefix(line, []byte("From ")):
				if err := emit(); err != nil {
					return err
				}
				n, in, msg = n+1, true, nil
			case in:
				if lineStart && quotedFrom(line) {
					line = line[1:]
				}
				if room := w.max + 1 - int64(len(msg)); room > 0 {
					msg = append(msg, line[:min(int64(len(line)), room)]...)
				}
			}
			complete := line[len(line)-1] == '\n'
			prevBlank = lineStart && complete && len(bytes.TrimRight(line, "\r\n")) == 0
			lineStart = complete
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return emit()
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
}

// quotedFrom matches mboxrd's ">From ", ">>From ", ...
func quotedFrom(line []byte) bool {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	return i > 0 && bytes.HasPrefix(line[i:], []byte("From "))
}
