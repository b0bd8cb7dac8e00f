package activities

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/safehttp"
	"github.com/tip-project/tip/textcap"
)

// asnTableTTL is how long a worker keeps an ASN table before asking for a newer
// one (iptoasn.com updates hourly; a day is plenty for attributing senders).
const asnTableTTL = 24 * time.Hour

// ASNTables loads the ASN tables addresses are mapped with (flux.asn_table, a
// spam catalog's asn_table), each once per worker and day, shared by every
// activity of the worker (the cache is the process's).
type ASNTables struct {
	Client *http.Client // safehttp's: flux.asn_table_allow_private lets it reach private addresses
	Limits ipasn.Limits // bound every table loaded; zero fields: ipasn's defaults
}

// NewASNTables is the ASN tables of a worker, downloaded with a safehttp client
// that reaches private addresses when allowPrivate.
func NewASNTables(allowPrivate bool, limits ipasn.Limits) *ASNTables {
	return &ASNTables{Client: safehttp.NewClient(safehttp.Options{AllowPrivate: allowPrivate}), Limits: limits}
}

// asnCache holds the ASN tables a worker loaded, by URL.
type asnCache struct {
	mu     sync.Mutex
	tables map[string]*asnEntry
}

type asnEntry struct {
	table  *ipasn.Table // nil until one loaded
	etag   string
	loaded time.Time // when the table held was fetched or found unchanged
	failed time.Time // when a fetch last failed
	err    error     // why
	// reported is the failure last logged: a table server that stays down, or a
	// table that stays too large, is reported once, not at every retry.
	reported string
	// loading is closed when the download under way ends; nil when none is.
	loading chan struct{}
}

// asnRetry is how long after a failed fetch the next is tried: the checks of
// thousands of monitors ask for the table, and a server that is down must not get
// (nor hold them up with) a request each.
const asnRetry = time.Minute

// asnFetchTimeout bounds one download of a table (the real one, ~10 MB gzipped,
// takes seconds): a server that sends a byte a minute fails it instead of
// holding the worker's table forever.
var asnFetchTimeout = 5 * time.Minute

var asnTables = &asnCache{tables: map[string]*asnEntry{}}

// Table returns the ASN table at url, loading it once per worker and day
// (conditionally, with the ETag of the copy held). A table that cannot be
// refreshed keeps serving the copy held; with none, the error is returned. After
// a failure the table is not asked for again for asnRetry.
//
// One caller downloads while the others go on: with a copy held they get it at
// once, without one they wait for the download or their own context. A download
// takes asnFetchTimeout at most, so a server that trickles its table holds
// nobody for long.
func (t *ASNTables) Table(ctx context.Context, url string) (*ipasn.Table, error) {
	if url == "" {
		return nil, nil
	}
	for {
		asnTables.mu.Lock()
		e := asnTables.tables[url]
		if e == nil {
			e = &asnEntry{}
			asnTables.tables[url] = e
		}
		switch {
		case e.table != nil && time.Since(e.loaded) < asnTableTTL:
			defer asnTables.mu.Unlock()
			return e.table, nil
		case time.Since(e.failed) < asnRetry:
			defer asnTables.mu.Unlock()
			if e.table != nil {
				return e.table, nil
			}
			return nil, e.err
		case e.loading != nil && e.table != nil:
			defer asnTables.mu.Unlock()
			return e.table, nil
		case e.loading != nil:
			done := e.loading
			asnTables.mu.Unlock()
			select {
			case <-done:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("asn table %s: waiting for its download: %w", url, ctx.Err())
			}
		}
		done := make(chan struct{})
		e.loading = done
		asnTables.mu.Unlock()
		return t.load(ctx, url, e, done)
	}
}

// load downloads the table of entry e and records the outcome; done
// closes when it is recorded. Only the caller that set e.loading writes e
// meanwhile, so the download reads e's table and ETag without the lock.
func (t *ASNTables) load(ctx context.Context, url string, e *asnEntry, done chan struct{}) (*ipasn.Table, error) {
	fctx, cancel := context.WithTimeout(ctx, asnFetchTimeout)
	tab, etag, err := t.fetch(fctx, url, e)
	cancel()
	asnTables.mu.Lock()
	defer asnTables.mu.Unlock()
	e.loading = nil
	close(done)
	switch {
	case err != nil:
		if ctx.Err() == nil { // a cancelled caller says nothing about the server
			e.failed, e.err = time.Now(), err
			asnReport(ctx, url, e, err)
		}
		if e.table != nil {
			return e.table, nil
		}
		return nil, err
	case tab != nil:
		e.table, e.etag = tab, etag
	}
	if e.reported != "" {
		asnLogger(ctx).Info("ASN table loaded again", "url", url)
		e.reported = ""
	}
	e.loaded = time.Now()
	return e.table, nil
}

// asnReport logs a failure to load the table at url once, until it loads or
// fails for another reason.
func asnReport(ctx context.Context, url string, e *asnEntry, err error) {
	if err.Error() == e.reported {
		return
	}
	e.reported = err.Error()
	held := "none: addresses go without origin ASNs"
	if e.table != nil {
		held = "the copy loaded " + e.loaded.UTC().Format(time.RFC3339)
	}
	asnLogger(ctx).Warn("ASN table unavailable", "url", url, "error", err, "serving", held)
}

// asnLogger is the activity's logger in an activity, and slog's otherwise (the CLI).
func asnLogger(ctx context.Context) interface {
	Info(string, ...any)
	Warn(string, ...any)
} {
	if activity.IsActivity(ctx) {
		return activity.GetLogger(ctx)
	}
	return slog.Default()
}

// fetch asks for the table at url, conditionally when e holds one; a nil
// table without error means unchanged. The answer is read within t.Limits:
// a table larger than they allow is refused, and the copy held serves on.
func (t *ASNTables) fetch(ctx context.Context, url string, e *asnEntry) (*ipasn.Table, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", fmt.Errorf("asn table: %w", err)
	}
	req.Header.Set("User-Agent", userAgent)
	if e.table != nil && e.etag != "" {
		req.Header.Set("If-None-Match", e.etag)
	}
	resp, err := t.Client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("asn table %s: %w", url, err)
	}
	defer resp.Body.Close()
	lim := t.Limits.WithDefaults()
	switch {
	case resp.StatusCode == http.StatusNotModified && e.table != nil:
		return nil, "", nil
	case resp.StatusCode != http.StatusOK:
		return nil, "", fmt.Errorf("asn table %s answers %s", url, textcap.Cap(resp.Status, 100))
	case resp.ContentLength > lim.MaxInput:
		return nil, "", fmt.Errorf("asn table %s: %w: %d bytes to download, more than %d (ipasn.Limits.MaxInput)", url, ipasn.ErrTooLarge, resp.ContentLength, lim.MaxInput)
	}
	tab, _, err := lim.Load(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("asn table %s: %w", url, err)
	}
	etag := resp.Header.Get("ETag")
	if len(etag) > 256 { // not a validator worth sending back
		etag = ""
	}
	return tab, etag, nil
}
