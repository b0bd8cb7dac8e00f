package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/feeds"
)

// Blacklist is the blacklist module's activities: the catalog, each source's
// fetch and load, the allowlists, the metrics, and the domains new to the lists.
type Blacklist struct {
	Store     BlacklistStore
	Blobs     Blobs
	Downloads *Downloads
	Catalog   string // the source catalog (YAML)
}

// KnownFormat says whether a parser exists for a format name.
func KnownFormat(name string) bool {
	for _, f := range feeds.Formats() {
		if f.Name == name {
			return true
		}
	}
	return false
}

// ReadCatalog loads the source catalog the worker is configured with and returns
// its enabled sources (a few KB: small enough for a workflow payload). A catalog
// error is not retried: the file must be fixed.
func (a *Blacklist) ReadCatalog(ctx context.Context) ([]catalog.Source, error) {
	if a.Catalog == "" {
		return nil, temporal.NewNonRetryableApplicationError("no source catalog configured (blacklists.catalog / TIP_BLACKLISTS_CATALOG)", "NoCatalog", nil)
	}
	c, err := catalog.Load(a.Catalog, KnownFormat)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("source catalog: %v", err), "BadCatalog", err)
	}
	return c.Enabled(), nil
}
