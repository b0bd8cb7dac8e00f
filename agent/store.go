package agent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors of the store's read side. The HTTPS server answers ErrInvalid with 400
// and ErrNotFound with 404; every error the read side returns for a bad argument
// wraps one of them.
var (
	ErrInvalid  = errors.New("invalid argument")
	ErrNotFound = errors.New("not found")
)

// The files of the agent's folder the store owns (docs/agent-protocol.md).
const (
	ManifestFile = "manifest.json"
	BatchesDir   = "batches"
	RawDir       = "raw"
	StateDir     = "state"
)

// Store is the published side of an agent's folder: manifest.json, batches/ and
// raw/. One process writes it (a Publisher, through PutRaw and Append); any number
// of goroutines read it (the HTTPS server, through Latest, Entries, Manifest,
// OpenBatch and OpenRaw). Readers only ever see committed versions: a version
// appears once its batch file and the manifest naming it are durable on disk.
type Store struct {
	dir   string
	agent string

	mu  sync.RWMutex
	man Manifest // committed; Versions is only ever appended to

	wmu    sync.Mutex  // serialises PutRaw and Append
	pack   pendingPack // raw mails put since the last Append
	broken error       // set when a write failed half-way

	imu     sync.Mutex // guards indexes and order
	indexes map[uint64]map[string]span
	order   []uint64 // of indexes, oldest first

	// hook, when set (by tests), is called at each step of Append; an error
	// stops Append there, as a crash would.
	hook func(step string) error
}

// pendingPack is the raw pack of the next batch: a temporary file raw mails are
// appended to, renamed to its version's name by Append.
type pendingPack struct {
	f         *os.File // open while raw mails are put; nil once renamed
	w         *bufio.Writer
	committed string // its final name once renamed (Append failed after that)
	size      int64
}

// The steps of Append at which a test hook may stop it.
const (
	stepRaws     = "raws"     // the raw pack durable under its name, no batch yet
	stepBatch    = "batch"    // batch file durable, manifest not yet rewritten
	stepManifest = "manifest" // manifest durable, the store's memory not yet updated
)

// OpenStore opens (creating if needed) the agent folder dir for the agent named
// agent and recovers from a crash: temporary files are removed, and a batch file
// the manifest does not name (written before a crash hit the commit) is deleted,
// so its mails are published again in the next batch. A manifest of another
// agent, or one naming a batch file that is missing or of the wrong size, is an
// error: the folder is damaged and needs a person.
func OpenStore(dir, agent string) (*Store, error) {
	if !idRE.MatchString(agent) {
		return nil, fmt.Errorf("agent store: id %q: want letters, digits, '.', '_' or '-'", agent)
	}
	for _, d := range []string{BatchesDir, RawDir, StateDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("agent store: %w", err)
		}
	}
	s := &Store{dir: dir, agent: agent, man: Manifest{Format: manifestFormat, Schema: Schema, Agent: agent}}
	removeTemps(dir, "."+ManifestFile+".tmp-")
	removeTemps(filepath.Join(dir, BatchesDir), ".")
	removeTemps(filepath.Join(dir, RawDir), ".tmp-")
	removeTemps(filepath.Join(dir, StateDir), ".")

	f, err := os.Open(filepath.Join(dir, ManifestFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("agent store: %w", err)
	default:
		m, err := DecodeManifest(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("agent store %s: %w", dir, err)
		}
		if m.Agent != agent {
			return nil, fmt.Errorf("agent store %s: the manifest is agent %q's, this is %q", dir, m.Agent, agent)
		}
		s.man = m
	}

	names, err := readNames(filepath.Join(dir, BatchesDir))
	if err != nil {
		return nil, fmt.Errorf("agent store: %w", err)
	}
	have := map[uint64]int64{}
	for _, name := range names {
		v, ok := ParseBatchName(name)
		if !ok {
			continue
		}
		p := filepath.Join(dir, BatchesDir, name)
		if v > s.man.Latest {
			if err := os.Remove(p); err != nil {
				return nil, fmt.Errorf("agent store: remove unpublished batch: %w", err)
			}
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("agent store: %w", err)
		}
		have[v] = fi.Size()
	}
	packs, err := s.packSizes()
	if err != nil {
		return nil, err
	}
	for _, e := range s.man.Versions {
		size, ok := have[e.Version]
		switch {
		case !ok:
			return nil, fmt.Errorf("agent store %s: batch %d is in the manifest but its file %s is missing", dir, e.Version, BatchName(e.Version))
		case size != e.Size:
			return nil, fmt.Errorf("agent store %s: batch %d is %d bytes, the manifest says %d", dir, e.Version, size, e.Size)
		}
		if size, ok := packs[e.Version]; e.RawSize > 0 && !ok {
			return nil, fmt.Errorf("agent store %s: batch %d keeps raw mails but its pack %s is missing", dir, e.Version, PackName(e.Version))
		} else if ok && size != e.RawSize {
			return nil, fmt.Errorf("agent store %s: raw pack %d is %d bytes, the manifest says %d", dir, e.Version, size, e.RawSize)
		}
	}
	return s, nil
}

// packSizes deletes the raw packs of versions past the manifest's latest (renamed
// into place before a crash hit the commit; their mails are published again) and
// returns the sizes of the others.
func (s *Store) packSizes() (map[uint64]int64, error) {
	names, err := readNames(filepath.Join(s.dir, RawDir))
	if err != nil {
		return nil, fmt.Errorf("agent store: %w", err)
	}
	sizes := map[uint64]int64{}
	for _, name := range names {
		v, ok := ParsePackName(name)
		if !ok {
			continue
		}
		p := filepath.Join(s.dir, RawDir, name)
		if v > s.man.Latest {
			if err := os.Remove(p); err != nil {
				return nil, fmt.Errorf("agent store: remove unpublished raw pack: %w", err)
			}
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("agent store: %w", err)
		}
		sizes[v] = fi.Size()
	}
	return sizes, nil
}

// removeTemps deletes the files of dir whose names start with prefix (temporary
// files a crash left behind); errors are ignored, the next open tries again.
func removeTemps(dir, prefix string) {
	names, _ := readNames(dir)
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			_ = os.Remove(filepath.Join(dir, n))
		}
	}
}

// readNames lists a folder's entries, unsorted.
func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// Dir is the agent's folder.
func (s *Store) Dir() string { return s.dir }

// Agent is the agent's name, as its batches and manifest carry it.
func (s *Store) Agent() string { return s.agent }

// Latest is the highest committed version, 0 when none.
func (s *Store) Latest() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.man.Latest
}

// Manifest is a copy of the committed manifest.
func (s *Store) Manifest() Manifest {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.man
	m.Versions = append([]Entry{}, s.man.Versions...)
	return m
}

// Entries are the committed versions after version after, ascending, at most
// limit of them (all when limit <= 0); the server applies the protocol's page
// size. An after at or past Latest gives none.
func (s *Store) Entries(after uint64, limit int) []Entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := uint64(len(s.man.Versions))
	if after >= n {
		return []Entry{}
	}
	es := s.man.Versions[after:] // versions start at 1 without gaps: index = version-1
	if limit > 0 && len(es) > limit {
		es = es[:limit]
	}
	return append([]Entry{}, es...)
}

// entry is a committed version's manifest entry.
func (s *Store) entry(version uint64) (Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if version == 0 || version > s.man.Latest {
		return Entry{}, fmt.Errorf("batch %d: %w", version, ErrNotFound)
	}
	return s.man.Versions[version-1], nil
}

// OpenBatch opens a committed batch file and returns its manifest entry (its
// SHA-256 for X-Tip-Sha256, its size). Version 0 or one past Latest wraps
// ErrNotFound.
func (s *Store) OpenBatch(version uint64) (io.ReadSeekCloser, Entry, error) {
	e, err := s.entry(version)
	if err != nil {
		return nil, Entry{}, err
	}
	f, err := os.Open(filepath.Join(s.dir, BatchesDir, BatchName(version)))
	if err != nil {
		return nil, Entry{}, fmt.Errorf("batch %d: %w", version, err)
	}
	return f, e, nil
}

// ReadBatch decodes a committed batch, checking its bytes against the manifest's
// SHA-256 and size.
func (s *Store) ReadBatch(version uint64) (Batch, error) {
	r, e, err := s.OpenBatch(version)
	if err != nil {
		return Batch{}, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, MaxBatchBytes+1))
	if err != nil {
		return Batch{}, fmt.Errorf("batch %d: %w", version, err)
	}
	if sum := sha256.Sum256(data); int64(len(data)) != e.Size || hex.EncodeToString(sum[:]) != e.SHA256 {
		return Batch{}, fmt.Errorf("batch %d: its file does not match the manifest's size and SHA-256", version)
	}
	return DecodeBatch(bytes.NewReader(data), version)
}

// OpenPack opens a committed batch's raw pack and returns its manifest entry
// (RawSize is the pack's size). A version without a pack (its mails were not
// kept raw) wraps ErrNotFound.
func (s *Store) OpenPack(version uint64) (io.ReadSeekCloser, Entry, error) {
	e, err := s.entry(version)
	if err != nil {
		return nil, Entry{}, err
	}
	if e.RawSize == 0 {
		return nil, Entry{}, fmt.Errorf("batch %d keeps no raw mail: %w", version, ErrNotFound)
	}
	f, err := os.Open(filepath.Join(s.dir, RawDir, PackName(version)))
	if err != nil {
		return nil, Entry{}, fmt.Errorf("raw pack %d: %w", version, err)
	}
	return f, e, nil
}

// OpenRaw opens the raw mail sha of batch version and returns its size. A sha
// that is not 64 lower-case hex digits wraps ErrInvalid; a mail the batch does
// not keep raw wraps ErrNotFound. The batch is decoded to find the mail in its
// pack; the last few batches' indexes are kept.
func (s *Store) OpenRaw(version uint64, sha string) (io.ReadSeekCloser, int64, error) {
	if !ValidSHA256(sha) {
		return nil, 0, fmt.Errorf("raw mail %q: not 64 lower-case hex digits: %w", sha, ErrInvalid)
	}
	idx, err := s.packIndex(version)
	if err != nil {
		return nil, 0, err
	}
	sp, ok := idx[sha]
	if !ok {
		return nil, 0, fmt.Errorf("raw mail %s: not in batch %d: %w", sha, version, ErrNotFound)
	}
	f, e, err := s.OpenPack(version)
	if err != nil {
		return nil, 0, err
	}
	if sp.off+sp.size > e.RawSize {
		f.Close()
		return nil, 0, fmt.Errorf("raw mail %s: past the end of pack %d", sha, version)
	}
	return &sectionFile{SectionReader: io.NewSectionReader(f.(io.ReaderAt), sp.off, sp.size), c: f}, sp.size, nil
}

// span is a raw mail's place in its pack.
type span struct{ off, size int64 }

// sectionFile is a raw mail within its open pack.
type sectionFile struct {
	*io.SectionReader
	c io.Closer
}

func (f *sectionFile) Close() error { return f.c.Close() }

// packIndexes is how many batches' raw-mail indexes a Store keeps.
const packIndexes = 8

// packIndex is where each raw mail of batch version lies in its pack.
func (s *Store) packIndex(version uint64) (map[string]span, error) {
	s.imu.Lock()
	idx, ok := s.indexes[version]
	s.imu.Unlock()
	if ok {
		return idx, nil
	}
	b, err := s.ReadBatch(version)
	if err != nil {
		return nil, err
	}
	idx = map[string]span{}
	for _, m := range b.Mails {
		if m.Raw {
			idx[m.Facts.SHA256] = span{m.RawOffset, m.Facts.Size}
		}
	}
	s.imu.Lock()
	defer s.imu.Unlock()
	if s.indexes == nil {
		s.indexes = map[uint64]map[string]span{}
	}
	if _, ok := s.indexes[version]; !ok {
		if len(s.order) == packIndexes {
			delete(s.indexes, s.order[0])
			s.order = s.order[1:]
		}
		s.indexes[version] = idx
		s.order = append(s.order, version)
	}
	return idx, nil
}

var versionRE = regexp.MustCompile(`^[0-9]{1,20}$`)

// ParseVersion reads a version as the protocol writes it in a path or a query:
// decimal digits only (no sign, no spaces), at most 2^64-1. Anything else wraps
// ErrInvalid.
func ParseVersion(s string) (uint64, error) {
	if !versionRE.MatchString(s) {
		return 0, fmt.Errorf("version %q: not a decimal integer: %w", s, ErrInvalid)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("version %q: out of range: %w", s, ErrInvalid)
	}
	return v, nil
}

// PutRaw appends a raw mail from r to the pack of the next batch and returns
// its SHA-256, size and offset in that pack (the Mail's RawOffset). The next
// Append makes the pack durable as raw/<version>.raw before it writes the batch
// naming it; until then no reader sees it, and a crash leaves only a temporary
// file that OpenStore deletes. Bytes of a mail put but then not appended stay
// in the pack unnamed.
func (s *Store) PutRaw(r io.Reader) (sha string, size, offset int64, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.broken != nil {
		return "", 0, 0, s.broken
	}
	if s.pack.f == nil {
		f, err := os.CreateTemp(filepath.Join(s.dir, RawDir), ".tmp-pack-")
		if err != nil {
			return "", 0, 0, fmt.Errorf("raw mail: %w", err)
		}
		s.pack = pendingPack{f: f, w: bufio.NewWriterSize(f, 1<<20)}
	}
	h := sha256.New()
	offset = s.pack.size
	size, err = io.Copy(io.MultiWriter(s.pack.w, h), r) // a bytes.Reader writes itself in one call
	s.pack.size += size
	if err != nil {
		return "", 0, 0, fmt.Errorf("raw mail: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), size, offset, nil
}

// Append publishes mails as the next version and returns its manifest entry. In
// order, each step durable before the next: the raw mails put since the last
// Append move to their names; the batch file is written to a temporary name and
// renamed into batches/; the manifest naming it replaces manifest.json (the
// commit point). Readers see the version only after that. An error before the
// commit leaves the store as it was (Append may be called again); a failed
// manifest write leaves the store unusable, to be reopened.
func (s *Store) Append(mails []Mail) (Entry, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.broken != nil {
		return Entry{}, s.broken
	}
	if len(mails) == 0 || len(mails) > MaxBatchMails {
		return Entry{}, fmt.Errorf("append: %d mails, want 1 to %d", len(mails), MaxBatchMails)
	}
	s.mu.RLock()
	version := s.man.Latest + 1
	s.mu.RUnlock()
	for _, m := range mails {
		if m.Raw && m.RawOffset+m.Facts.Size > s.pack.size {
			return Entry{}, fmt.Errorf("append: mail %s: raw bytes %d to %d, the pack has %d", m.Name, m.RawOffset, m.RawOffset+m.Facts.Size, s.pack.size)
		}
	}
	rawSize, err := s.commitPack(version)
	if err != nil {
		return Entry{}, fmt.Errorf("append: raw pack: %w", err)
	}
	if err := s.step(stepRaws); err != nil {
		return Entry{}, err
	}
	created := time.Now().UTC().Truncate(time.Second)
	var buf bytes.Buffer
	err = EncodeBatch(&buf, Batch{Header: BatchHeader{Agent: s.agent, Version: version, Created: created}, Mails: mails})
	if err != nil {
		return Entry{}, fmt.Errorf("append: batch %d: %w", version, err)
	}
	if err := WriteFileAtomic(filepath.Join(s.dir, BatchesDir, BatchName(version)), buf.Bytes(), 0o644); err != nil {
		return Entry{}, fmt.Errorf("append: batch %d: %w", version, err)
	}
	if err := s.step(stepBatch); err != nil {
		return Entry{}, err
	}

	sum := sha256.Sum256(buf.Bytes())
	e := Entry{Version: version, SHA256: hex.EncodeToString(sum[:]), Size: int64(buf.Len()), Mails: len(mails), Schema: Schema, Created: created, RawSize: rawSize}
	m := s.Manifest()
	m.Versions = append(m.Versions, e)
	buf.Reset()
	if err := EncodeManifest(&buf, m); err != nil {
		return Entry{}, fmt.Errorf("append: manifest: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(s.dir, ManifestFile), buf.Bytes(), 0o644); err != nil {
		// The rename may or may not have happened: only a reopen knows.
		s.broken = fmt.Errorf("append: manifest (reopen the store): %w", err)
		return Entry{}, s.broken
	}
	if err := s.step(stepManifest); err != nil {
		s.broken = err
		return Entry{}, err
	}
	s.mu.Lock()
	s.man.Versions = append(s.man.Versions, e)
	s.man.Latest = version
	s.mu.Unlock()
	s.pack = pendingPack{}
	return e, nil
}

func (s *Store) step(name string) error {
	if s.hook == nil {
		return nil
	}
	return s.hook(name)
}

// commitPack makes the pending raw pack durable as version's pack and returns
// its size (0 when no raw mail was put): its data is synced, it is renamed into
// place and the folder synced, all before the batch naming it is written. A
// retried Append (same version) finds it already in place.
func (s *Store) commitPack(version uint64) (int64, error) {
	if s.pack.size == 0 {
		return 0, nil
	}
	final := filepath.Join(s.dir, RawDir, PackName(version))
	if s.pack.f != nil {
		err := s.pack.w.Flush()
		if err == nil {
			err = s.pack.f.Sync()
		}
		if cerr := s.pack.f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(s.pack.f.Name())
			s.pack = pendingPack{}
			s.broken = fmt.Errorf("raw pack lost (reopen the store): %w", err)
			return 0, s.broken
		}
		if err := os.Rename(s.pack.f.Name(), final); err != nil {
			return 0, err
		}
		s.pack.f, s.pack.committed = nil, final
	}
	if s.pack.committed != final {
		return 0, fmt.Errorf("pending pack is %s, not version %d's", s.pack.committed, version)
	}
	if err := SyncDir(filepath.Join(s.dir, RawDir)); err != nil {
		return 0, err
	}
	return s.pack.size, nil
}
