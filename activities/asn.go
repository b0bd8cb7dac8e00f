package activities

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/tip-project/tip/ipasn"
)

// asnTableTTL is how long a worker keeps an ASN table before asking for a newer
// one (iptoasn.com updates hourly; a day is plenty for attributing senders).
const asnTableTTL = 24 * time.Hour

// asnCache holds the ASN tables a worker loaded, by URL.
type asnCache struct {
	mu     sync.Mutex
	tables map[string]*asnEntry
}

type asnEntry struct {
	table  *ipasn.Table
	etag   string
	loaded time.Time
}

var asnTables = &asnCache{tables: map[string]*asnEntry{}}

// ASNTable returns the ASN table at url, loading it once per worker and day
// (conditionally, with the ETag of the copy held). A table that cannot be
// refreshed keeps serving the copy held; with none, the error is returned.
func (a *Activities) ASNTable(ctx context.Context, url string) (*ipasn.Table, error) {
	if url == "" {
		return nil, nil
	}
	asnTables.mu.Lock()
	defer asnTables.mu.Unlock()
	e := asnTables.tables[url]
	if e != nil && time.Since(e.loaded) < asnTableTTL {
		return e.table, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("asn table: %w", err)
	}
	req.Header.Set("User-Agent", userAgent)
	if e != nil && e.etag != "" {
		req.Header.Set("If-None-Match", e.etag)
	}
	resp, err := a.httpClient().Do(req)
	if err != nil {
		if e != nil {
			return e.table, nil
		}
		return nil, fmt.Errorf("asn table %s: %w", url, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && e != nil:
		e.loaded = time.Now()
		return e.table, nil
	case resp.StatusCode != http.StatusOK:
		if e != nil {
			return e.table, nil
		}
		return nil, fmt.Errorf("asn table %s answers %s", url, resp.Status)
	}
	t, _, err := ipasn.Load(resp.Body)
	if err != nil {
		if e != nil {
			return e.table, nil
		}
		return nil, fmt.Errorf("asn table %s: %w", url, err)
	}
	asnTables.tables[url] = &asnEntry{table: t, etag: resp.Header.Get("ETag"), loaded: time.Now()}
	return t, nil
}
