// Package spamarchive reads public spam archives: the index page that lists them
// (untroubled.org's Apache-style directory listing of YYYY-MM.7z and YYYY.7z files)
// and the archives themselves — 7z (through github.com/bodgit/sevenzip), zip and
// tar.gz — member by member, each member one raw RFC 822 mail. No Temporal inside.
package spamarchive

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/bodgit/sevenzip"
)

// ErrNotArchive says a file is none of the archive formats this package reads.
var ErrNotArchive = errors.New("not a 7z, zip or tar.gz archive")

// Format names an archive format.
type Format string

const (
	SevenZip Format = "7z"
	Zip      Format = "zip"
	TarGz    Format = "tar.gz"
)

// Detect names the format of an archive from its first bytes.
func Detect(head []byte) (Format, error) {
	switch {
	case bytes.HasPrefix(head, []byte("7z\xbc\xaf\x27\x1c")):
		return SevenZip, nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return Zip, nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return TarGz, nil
	}
	return "", ErrNotArchive
}

// Member is one file of an archive. Read is only valid during the callback that
// received it; a member the caller does not read costs nothing beyond what the
// format needs to pass it (a solid 7z block is decompressed through).
type Member struct {
	Name string // the path inside the archive, slash-separated
	Size int64  // uncompressed, as the archive declares it
	read func(limit int64) ([]byte, bool, error)
}

// Read returns the member's content, at most limit bytes; truncated says the
// member was longer (the caller records that rather than dropping the mail).
func (m Member) Read(limit int64) (data []byte, truncated bool, err error) {
	return m.read(limit)
}

// Each calls fn for every regular file of the archive at path, in archive order
// (sorted by name for zip, whose directory order is arbitrary). Returning
// ErrStop from fn ends the walk without an error. A decoder that panics on a
// hostile archive is reported as an error, not a crash of the worker.
func Each(p string, fn func(Member) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: the archive broke its decoder: %v", p, r)
		}
	}()
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	format, err := Detect(head[:n])
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	switch format {
	case SevenZip:
		err = each7z(f, fi.Size(), fn)
	case Zip:
		err = eachZip(f, fi.Size(), fn)
	default:
		err = eachTarGz(f, fn)
	}
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// ErrStop ends Each early.
var ErrStop = errors.New("stop")

// readLimited reads up to limit bytes of r and says whether more followed.
func readLimited(r io.Reader, limit int64) ([]byte, bool, error) {
	if limit <= 0 {
		limit = 1 << 40
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return data, false, err
	}
	if int64(len(data)) > limit {
		return data[:limit], true, nil
	}
	return data, false, nil
}

func each7z(f *os.File, size int64, fn func(Member) error) error {
	r, err := sevenzip.NewReader(f, size)
	if err != nil {
		return fmt.Errorf("7z: %w", err)
	}
	for _, file := range r.File {
		if file.FileInfo().IsDir() {
			continue
		}
		file := file
		m := Member{Name: cleanName(file.Name), Size: int64(file.UncompressedSize), read: func(limit int64) ([]byte, bool, error) {
			rc, err := file.Open()
			if err != nil {
				return nil, false, fmt.Errorf("7z %s: %w", file.Name, err)
			}
			defer rc.Close()
			data, trunc, err := readLimited(rc, limit)
			if err != nil {
				return nil, false, fmt.Errorf("7z %s: %w", file.Name, err)
			}
			return data, trunc, nil
		}}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

func eachZip(f *os.File, size int64, fn func(Member) error) error {
	r, err := zip.NewReader(f, size)
	if err != nil {
		return fmt.Errorf("zip: %w", err)
	}
	files := append([]*zip.File(nil), r.File...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for _, file := range files {
		if file.FileInfo().IsDir() {
			continue
		}
		file := file
		m := Member{Name: cleanName(file.Name), Size: int64(file.UncompressedSize64), read: func(limit int64) ([]byte, bool, error) {
			rc, err := file.Open()
			if err != nil {
				return nil, false, fmt.Errorf("zip %s: %w", file.Name, err)
			}
			defer rc.Close()
			data, trunc, err := readLimited(rc, limit)
			if err != nil {
				return nil, false, fmt.Errorf("zip %s: %w", file.Name, err)
			}
			return data, trunc, nil
		}}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

func eachTarGz(f *os.File, fn func(Member) error) error {
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("tar.gz: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar.gz: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := h.Name
		m := Member{Name: cleanName(name), Size: h.Size, read: func(limit int64) ([]byte, bool, error) {
			data, trunc, err := readLimited(tr, limit)
			if err != nil {
				return nil, false, fmt.Errorf("tar.gz %s: %w", name, err)
			}
			return data, trunc, nil
		}}
		if err := fn(m); err != nil {
			return err
		}
	}
}

// cleanName makes an archive path relative and slash-separated, so a hostile
// archive's "../../etc/passwd" names nothing outside it (TIP never writes members
// to disk, but the names end up in the database and in S3 metadata).
func cleanName(name string) string {
	name = strings.ReplaceAll(name, `\`, "/")
	name = path.Clean("/" + name)
	return strings.TrimPrefix(name, "/")
}
