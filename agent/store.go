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

	wmu      sync.Mutex // serialises PutRaw and Append
	unsynced []rawTemp  // raw mails put since the last Append
	broken   error      // set when a manifest write failed half-way

	// hook, when set (by tests), is called at each step of Append; an error
	// stops Append there, as a crash would.
	hook func(step string) error
}

// rawTemp is a raw mail written to a temporary file, waiting for the next Append.
type rawTemp struct{ tmp, sha string }

// The steps of Append at which a test hook may stop it.
const (
	stepRaws     = "raws"     // raw mails durable under their names, no batch yet
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
	for _, e := range s.man.Versions {
		size, ok := have[e.Version]
		switch {
		case !ok:
			return nil, fmt.Errorf("agent store %s: batch %d is in the manifest but its file %s is missing", dir, e.Version, BatchName(e.Version))
		case size != e.Size:
			return nil, fmt.Errorf("agent store %s: batch %d is %d bytes, the manifest says %d", dir, e.Version, size, e.Size)
		}
	}
	return s, nil
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

// OpenRaw opens a kept raw mail by its SHA-256 and returns its size. A string
// that is not 64 lower-case hex digits wraps ErrInvalid (so no argument can name
// a path outside raw/); a mail the agent does not keep wraps ErrNotFound.
func (s *Store) OpenRaw(sha string) (io.ReadSeekCloser, int64, error) {
	if !ValidSHA256(sha) {
		return nil, 0, fmt.Errorf("raw mail %q: not 64 lower-case hex digits: %w", sha, ErrInvalid)
	}
	f, err := os.Open(s.rawPath(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("raw mail %s: %w", sha, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("raw mail %s: %w", sha, err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("raw mail %s: not a regular file: %w", sha, ErrNotFound)
	}
	return f, fi.Size(), nil
}

// RawPath is where an agent folder keeps a raw mail: raw/ab/<sha256>, 256
// folders that a new agent creates once (a deeper fan-out cost a folder per
// couple of mails for its first hundred thousand).
func RawPath(dir, sha string) string {
	return filepath.Join(dir, RawDir, sha[:2], sha)
}

func (s *Store) rawPath(sha string) string { return RawPath(s.dir, sha) }

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

// PutRaw copies a raw mail from r into a temporary file and returns its SHA-256
// and size. The next Append makes it durable under raw/ab/<sha256> (a copy
// already there stays: the name is the content) before it writes the batch naming
// it; until then OpenRaw does not find it, and a crash leaves only a temporary
// file that OpenStore deletes.
func (s *Store) PutRaw(r io.Reader) (sha string, size int64, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.broken != nil {
		return "", 0, s.broken
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, RawDir), ".tmp-")
	if err != nil {
		return "", 0, fmt.Errorf("raw mail: %w", err)
	}
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(f, h), r) // a bytes.Reader writes itself in one call
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("raw mail: %w", err)
	}
	sha = hex.EncodeToString(h.Sum(nil))
	s.unsynced = append(s.unsynced, rawTemp{tmp: f.Name(), sha: sha})
	return sha, size, nil
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
	if err := s.commitRaws(); err != nil {
		return Entry{}, fmt.Errorf("append: raw mails: %w", err)
	}
	if err := s.step(stepRaws); err != nil {
		return Entry{}, err
	}

	s.mu.RLock()
	version := s.man.Latest + 1
	s.mu.RUnlock()
	created := time.Now().UTC().Truncate(time.Second)
	var buf bytes.Buffer
	err := EncodeBatch(&buf, Batch{Header: BatchHeader{Agent: s.agent, Version: version, Created: created}, Mails: mails})
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
	e := Entry{Version: version, SHA256: hex.EncodeToString(sum[:]), Size: int64(buf.Len()), Mails: len(mails), Schema: Schema, Created: created}
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
	return e, nil
}

func (s *Store) step(name string) error {
	if s.hook == nil {
		return nil
	}
	return s.hook(name)
}

// commitRaws makes the raw mails put since the last Append durable under their
// names: the temporary files' data is synced before any is renamed, so a name in
// raw/ always holds a whole mail, and the renames are synced before the batch.
func (s *Store) commitRaws() error {
	if len(s.unsynced) == 0 {
		return nil
	}
	tmps := make([]string, len(s.unsynced))
	for i, r := range s.unsynced {
		tmps[i] = r.tmp
	}
	if err := syncPaths(s.dir, tmps); err != nil {
		return err
	}
	// A second copy of a mail replaces the first with the same bytes.
	paths := []string{filepath.Join(s.dir, RawDir)}
	for _, r := range s.unsynced {
		final := s.rawPath(r.sha)
		err := os.Rename(r.tmp, final)
		if errors.Is(err, fs.ErrNotExist) { // a new folder, or renamed by an earlier, failed commit
			if err = mkdir2(filepath.Dir(final)); err == nil {
				err = os.Rename(r.tmp, final)
			}
			if errors.Is(err, fs.ErrNotExist) {
				if _, serr := os.Lstat(final); serr == nil {
					continue
				}
			}
		}
		if err != nil {
			return err
		}
		paths = append(paths, filepath.Dir(final))
	}
	if err := syncPaths(s.dir, paths); err != nil {
		return err
	}
	s.unsynced = s.unsynced[:0]
	return nil
}

// mkdir2 creates a folder and, if needed, its parent, with fewer system calls
// than os.MkdirAll.
func mkdir2(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.Mkdir(filepath.Dir(dir), 0o700); err == nil || errors.Is(err, fs.ErrExist) {
			err = os.Mkdir(dir, 0o700)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
}
