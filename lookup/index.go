package lookup

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/tip-project/tip/storage"
)

// Index answers lookups from memory: every listing, active and removed, with
// its context and its source's terms and weight, built from one snapshot of
// PostgreSQL (Load) and kept up to date by the listing changes storage records
// (Run), as the live DNS zones are. The allowlist entries and overrides
// covering a value come from indexed SQL, as FromDB reads them: an override
// may expire without a change. For the same database state it gives the
// Document FromDB gives.
type Index struct {
	// Poll is how often Run looks for changes besides PostgreSQL's
	// notifications, reading the sources again: a load that changes no listing
	// moves its source's last success, which is every active listing's last
	// sighting, without a notification. 0: every 10 seconds.
	Poll time.Duration

	db  *storage.DB
	log *slog.Logger
	now func() time.Time // the scores' clock

	mu        sync.RWMutex // t and its contents, and what follows
	t         *table       // nil until loaded
	lastSeq   int64
	loadedAt  time.Time
	loadTook  time.Duration
	updatedAt time.Time

	updateMu sync.Mutex          // one load or update at a time
	applied  map[int64]time.Time // the changes applied, by seq, with when they were recorded
}

// ErrNotReady is a lookup before the index's first load.
var ErrNotReady = errors.New("the lookup index is not loaded yet")

// changeWindow is how far back the index looks for changes it has not
// applied: a load's transaction records its change when it starts and commits
// it at most this long after. An index not brought up to date for half of it
// is built again.
const changeWindow = time.Hour

// applyBatch is how many changed listings an update applies at a time, the
// lookups waiting meanwhile.
const applyBatch = 4096

// NewIndex prepares an index of db's listings; Load or Run fills it.
func NewIndex(db *storage.DB, log *slog.Logger) *Index {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Index{db: db, log: log, now: time.Now, applied: map[int64]time.Time{}}
}

// Ready says whether the index has loaded and answers.
func (x *Index) Ready() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.t != nil
}

// Stats describes the index, for health checks.
type Stats struct {
	Ready      bool  `json:"ready"`
	Listings   int   `json:"listings"` // held, active and removed
	Active     int   `json:"active"`
	Indicators int   `json:"indicators"`
	Sources    int   `json:"sources"`
	Memory     int64 `json:"memory_bytes"` // an estimate of the heap it holds
	// LastChange is the highest listing change applied (listing_changes.seq;
	// 0: none since the last load, or none recent at it).
	LastChange  int64     `json:"last_change"`
	LoadedAt    time.Time `json:"loaded_at"` // its last build from a snapshot
	LoadSeconds float64   `json:"load_seconds"`
	UpdatedAt   time.Time `json:"updated_at"` // the last time it was brought up to date
}

// Stats describes the index now.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := Stats{Ready: x.t != nil, LastChange: x.lastSeq, LoadedAt: x.loadedAt, LoadSeconds: x.loadTook.Seconds(), UpdatedAt: x.updatedAt}
	if t := x.t; t != nil {
		s.Listings, s.Active, s.Indicators, s.Memory = len(t.ls), t.active, len(t.inds), t.memory()
		for _, src := range t.srcs {
			if src.known {
				s.Sources++
			}
		}
	}
	return s
}

// Lookup answers a query: the Document FromDB gives, its listings from
// memory.
func (x *Index) Lookup(ctx context.Context, q Query) (Document, error) {
	d := Document{Query: q.Indicator}
	x.mu.RLock()
	t := x.t
	if t != nil {
		d.Listings = t.lookup(q)
	}
	x.mu.RUnlock()
	if t == nil {
		return d, ErrNotReady
	}
	if err := d.suppressions(ctx, x.db, q); err != nil {
		return d, err
	}
	d.normalize(x.now())
	return d, nil
}

// Load builds the index again from one snapshot of every listing, the
// sources and the changes already in it; lookups go on meanwhile from the
// index it replaces.
func (x *Index) Load(ctx context.Context) error {
	x.updateMu.Lock()
	defer x.updateMu.Unlock()
	return x.load(ctx)
}

func (x *Index) load(ctx context.Context) error {
	start := time.Now()
	t := newTable()
	seen, sources, err := x.db.LookupSnapshot(ctx, changeWindow, func(l storage.LookupListing) error {
		t.apply(&l)
		return nil
	})
	if err != nil {
		return err
	}
	t.setSources(sources)
	t.compact()
	applied := map[int64]time.Time{}
	var last int64
	for _, c := range seen {
		applied[c.Seq] = c.At
		last = max(last, c.Seq)
	}
	now := time.Now()
	x.mu.Lock()
	x.t, x.lastSeq = t, last
	x.loadedAt, x.loadTook, x.updatedAt = now, now.Sub(start), now
	x.mu.Unlock()
	x.applied = applied
	x.log.Info("lookup index loaded", "listings", len(t.ls), "indicators", len(t.inds), "took", now.Sub(start).Round(time.Millisecond),
		"memory_mb", t.memory()>>20, "last_change", last)
	return nil
}

// Update applies the listing changes recorded since the last update and reads
// the sources again. It builds the index instead when it has not loaded yet,
// when it was not brought up to date for longer than the changes are looked
// for, or when replaced context has left much garbage.
func (x *Index) Update(ctx context.Context) error {
	x.updateMu.Lock()
	defer x.updateMu.Unlock()
	x.mu.RLock()
	t, updatedAt := x.t, x.updatedAt
	x.mu.RUnlock()
	if t == nil || time.Since(updatedAt) > changeWindow/2 || t.staleSaid > max(len(t.said)/2, 1<<16) {
		return x.load(ctx)
	}
	changes, err := x.db.ListingChanges(ctx, time.Now().Add(-changeWindow))
	if err != nil {
		return err
	}
	var todo []storage.ListingChange
	for _, c := range changes {
		if _, ok := x.applied[c.Seq]; !ok {
			todo = append(todo, c)
		}
	}
	// Changed listings are applied as they are read, a batch at a time under the
	// lock; a lookup meanwhile may see part of a change.
	batch := make([]storage.LookupListing, 0, applyBatch)
	flush := func() {
		x.mu.Lock()
		for i := range batch {
			t.apply(&batch[i])
		}
		x.mu.Unlock()
		batch = batch[:0]
	}
	listings := 0
	for _, c := range todo {
		if c.Kind != storage.ChangeListings {
			continue // weights come with the sources; suppressions are read at each lookup
		}
		err := x.db.ChangedLookupListings(ctx, c.Seq, func(l storage.LookupListing) error {
			if batch = append(batch, l); len(batch) == applyBatch {
				flush()
			}
			listings++
			return nil
		})
		if err != nil {
			flush()
			return err
		}
	}
	flush()
	sources, err := x.db.LookupSources(ctx) // after the listings: a new source's are in
	if err != nil {
		return err
	}
	now := time.Now()
	x.mu.Lock()
	t.setSources(sources)
	for _, c := range todo {
		x.lastSeq = max(x.lastSeq, c.Seq)
	}
	x.updatedAt = now
	x.mu.Unlock()
	for _, c := range todo {
		x.applied[c.Seq] = c.At
	}
	for seq, at := range x.applied {
		if now.Sub(at) > 2*changeWindow {
			delete(x.applied, seq)
		}
	}
	if len(todo) > 0 {
		x.log.Debug("lookup index updated", "changes", len(todo), "listings", listings)
	}
	return nil
}

// Run keeps the index up to date until ctx ends, loading it first unless it
// is: at every change PostgreSQL notifies and every Poll. It logs what fails
// and tries again. It returns nil when ctx ends.
func (x *Index) Run(ctx context.Context) error {
	wake := storage.WakeOnListingChanges(ctx, x.db, func(err error) {
		x.log.Warn("lookup index: waiting for listing changes", "err", err)
	})
	poll := x.Poll
	if poll <= 0 {
		poll = 10 * time.Second
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if err := x.Update(ctx); err != nil && ctx.Err() == nil {
			x.log.Warn("lookup index: update", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick.C:
		}
	}
}
