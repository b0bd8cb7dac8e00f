package taxii

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tip-project/tip/storage"
)

// DBSource is the Source of a TIP database: it reads the versions
// storage.SyncTAXII made, and has them brought up to date in the background,
// at most every Config.SyncEvery, while requests come.
type DBSource struct {
	db    *storage.DB
	opts  storage.TAXIIOptions
	every time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	running bool
	last    time.Time
}

// FromDB is the Source of db, syncing with cfg's MinScore every cfg.SyncEvery.
func FromDB(db *storage.DB, cfg Config) *DBSource {
	cfg = cfg.withDefaults()
	return &DBSource{db: db, opts: storage.TAXIIOptions{MinScore: cfg.MinScore}, every: cfg.SyncEvery, log: cfg.Log}
}

// Objects reads versions of a collection's objects.
func (s *DBSource) Objects(ctx context.Context, q Query) ([]Entry, error) {
	s.kick()
	return s.db.TAXIIObjects(ctx, q)
}

// Sync brings the collections up to date now.
func (s *DBSource) Sync(ctx context.Context) (storage.TAXIISynced, error) {
	res, err := s.db.SyncTAXII(ctx, s.opts)
	s.mu.Lock()
	s.last = time.Now()
	s.mu.Unlock()
	return res, err
}

// kick starts a sync in the background when none runs and the last is older
// than the sync interval. The request does not wait for it: TAXII clients
// poll, and find its versions on their next request.
func (s *DBSource) kick() {
	if s.every < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running || time.Since(s.last) < s.every {
		return
	}
	s.running = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		res, err := s.db.SyncTAXII(ctx, s.opts)
		if err != nil {
			s.log.Error("taxii: sync", "err", err)
		} else if res.Versions > 0 {
			s.log.Info("taxii: synced", "versions", res.Versions, "revoked", res.Revoked)
		}
		s.mu.Lock()
		s.running, s.last = false, time.Now()
		s.mu.Unlock()
	}()
}
