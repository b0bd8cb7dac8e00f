package apiserve

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/storage"
)

// The MISP feed: what MISP's "Add feed" (MISP format) pulls from a base URL,
// here /misp/: manifest.json, hashes.csv and one <uuid>.json an event (a
// source and day). It is generated with export.NewMISPFeed into a folder when
// the exports' version changed and someone asks: one generation at a time,
// swapped in whole, so a client never reads a half-written feed.

// mispFileRE are the files a feed holds.
var mispFileRE = regexp.MustCompile(`^(manifest\.json|hashes\.csv|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.json)$`)

// mispGenPrefix starts the folder of each generation, so stale ones (of a
// process that died) are told apart and removed.
const mispGenPrefix = "gen-"

// mispGenTimeout bounds one generation.
const mispGenTimeout = 10 * time.Minute

// mispCache holds the current generation and the one before, which a MISP
// still pulling the events of the manifest it read may need.
type mispCache struct {
	root  string
	owned bool // a temporary root, removed by close
	s     *Server

	mu        sync.Mutex
	cur, prev *mispGen
	flight    singleflight.Group
}

// mispGen is one generated feed, removed once replaced twice and unread.
type mispGen struct {
	version storage.ExportVersion
	dir     string
	refs    int
	retired bool
}

// newMISPCache prepares the folder generations go to: root (created when
// missing, its stale generations removed) or, when empty, a temporary one.
func newMISPCache(root string, s *Server) (*mispCache, error) {
	c := &mispCache{root: root, s: s}
	if root == "" {
		dir, err := os.MkdirTemp("", "tip-api-misp-")
		if err != nil {
			return nil, fmt.Errorf("api: MISP cache: %w", err)
		}
		c.root, c.owned = dir, true
		return c, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("api: MISP cache (api.misp_cache): %w", err)
	}
	stale, err := filepath.Glob(filepath.Join(root, mispGenPrefix+"*"))
	if err != nil {
		return nil, err
	}
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("api: MISP cache: removing a stale feed: %w", err)
		}
	}
	return c, nil
}

// acquire returns the feed of version v, generating it when the current one
// is older; release it after reading.
func (c *mispCache) acquire(ctx context.Context, v storage.ExportVersion) (*mispGen, error) {
	c.mu.Lock()
	if g := c.cur; g != nil && !g.version.Modified.Before(v.Modified) {
		g.refs++
		c.mu.Unlock()
		return g, nil
	}
	c.mu.Unlock()
	// One generation a version, whoever asks; it outlives a client that leaves.
	ch := c.flight.DoChan(v.Key, func() (any, error) { return nil, c.generate(v) })
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur.refs++
	return c.cur, nil
}

// generate writes the feed of version v and swaps it in.
func (c *mispCache) generate(v storage.ExportVersion) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), mispGenTimeout)
	defer cancel()
	dir, err := os.MkdirTemp(c.root, mispGenPrefix)
	if err != nil {
		c.s.m.generations.WithLabelValues("failed").Inc()
		return fmt.Errorf("MISP feed: %w", err)
	}
	// Stamped with the version's time: the same version gives the same files
	// on every replica.
	feed, err := export.NewMISPFeed(dir, v.Modified)
	if err == nil {
		err = c.s.store.ExportListed(ctx, nil, c.s.cfg.MinScore, false, feed.Write)
		if err == nil {
			err = feed.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		c.s.m.generations.WithLabelValues("failed").Inc()
		return fmt.Errorf("MISP feed: %w", err)
	}
	g := &mispGen{version: v, dir: dir}
	c.mu.Lock()
	if c.cur != nil && c.cur.version.Modified.After(v.Modified) { // a newer one came first
		c.mu.Unlock()
		os.RemoveAll(dir)
		return nil
	}
	old := c.prev
	c.prev, c.cur = c.cur, g
	if old != nil {
		old.retired = true
		c.removeIfUnread(old)
	}
	c.mu.Unlock()
	c.s.m.generations.WithLabelValues("ok").Inc()
	c.s.m.generation.Set(time.Since(start).Seconds())
	c.s.log.Info("api: MISP feed generated", "seq", v.Seq, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// release gives a generation back after reading.
func (c *mispCache) release(g *mispGen) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g.refs--
	c.removeIfUnread(g)
}

// removeIfUnread removes a retired generation nobody reads. Called with mu held.
func (c *mispCache) removeIfUnread(g *mispGen) {
	if g.retired && g.refs == 0 {
		if err := os.RemoveAll(g.dir); err != nil {
			c.s.log.Warn("api: removing an old MISP feed", "dir", g.dir, "err", err)
		}
	}
}

// open opens a file of the current generation, or of the one before when the
// current has no such file (an event gone since the manifest a client read).
func (c *mispCache) open(g *mispGen, name string) (*os.File, *mispGen, error) {
	f, err := os.Open(filepath.Join(g.dir, name))
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasSuffix(name, ".json") || name == "manifest.json" {
		return f, g, err
	}
	c.mu.Lock()
	prev := c.prev
	if prev == nil || prev == g || prev.retired {
		c.mu.Unlock()
		return nil, g, err
	}
	prev.refs++
	c.mu.Unlock()
	f, perr := os.Open(filepath.Join(prev.dir, name))
	if perr != nil {
		c.release(prev)
		return nil, g, err
	}
	return f, prev, nil
}

// close removes every generation (and a temporary root).
func (c *mispCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, g := range []*mispGen{c.cur, c.prev} {
		if g != nil {
			errs = append(errs, os.RemoveAll(g.dir))
		}
	}
	c.cur, c.prev = nil, nil
	if c.owned {
		errs = append(errs, os.RemoveAll(c.root))
	}
	return errors.Join(errs...)
}

// mispFile answers GET /misp/{file} from the feed of the exports' version.
func (s *Server) mispFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if !mispFileRE.MatchString(name) {
		writeError(w, http.StatusNotFound, "no MISP feed file %q: the feed holds manifest.json, hashes.csv and <uuid>.json events", name)
		return
	}
	v, err := s.currentVersion(r.Context())
	if err != nil {
		s.refused.note("postgres", "version", "api: reading the exports' version", "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot serve the MISP feed now; try again later")
		return
	}
	g, err := s.misp.acquire(r.Context(), v)
	if err != nil {
		if r.Context().Err() == nil {
			s.refused.note("misp", "generate", "api: generating the MISP feed", "err", err)
			writeError(w, http.StatusServiceUnavailable, "cannot generate the MISP feed now; try again later")
		}
		return
	}
	defer s.misp.release(g)
	f, from, err := s.misp.open(g, name)
	if err != nil {
		writeError(w, http.StatusNotFound, "the MISP feed has no %s", name)
		return
	}
	defer f.Close()
	if from != g {
		defer s.misp.release(from)
	}
	ctype := "application/json"
	if strings.HasSuffix(name, ".csv") {
		ctype = "text/csv; charset=utf-8"
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("ETag", etag(s.cfg.Build, from.version, "misp", strconv.FormatFloat(s.cfg.MinScore, 'g', -1, 64), name))
	// ServeContent answers If-None-Match, If-Modified-Since and ranges.
	http.ServeContent(w, r, name, from.version.Modified, f)
}
