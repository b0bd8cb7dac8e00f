package contract

import (
	"time"

	"github.com/tip-project/tip/catalog"
)

// The blacklist module: BlacklistRefresh fans out one SourceRefresh per source.

// Fetch outcomes.
const (
	FetchChanged   = "changed"   // new content stored in S3, to be loaded
	FetchUnchanged = "unchanged" // 304, or the same bytes as the last load
	FetchDead      = "dead"      // 404/410: the feed is gone; not an error of the run
	FetchFailed    = "failed"    // a permanent failure (4xx, over the size limit)
	FetchNotDue    = "not-due"   // fetched successfully less than the source's interval ago
	// FetchRateLimited: the source's rate limit forbids a request now (a manual
	// refresh right after a scheduled one); nothing is recorded.
	FetchRateLimited = "rate-limited"
)

// FetchResult says what a fetch found. Payloads stay small: the content is in S3.
type FetchResult struct {
	Source       string    `json:"source"`
	Status       string    `json:"status"`
	HTTPStatus   int       `json:"http_status"`
	SHA256       string    `json:"sha256,omitempty"`
	Bytes        int64     `json:"bytes"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Error        string    `json:"error,omitempty"`
	StartedAt    time.Time `json:"started_at"`
}

// Run outcomes recorded in source_runs.
const (
	RunLoaded    = "loaded"
	RunUnchanged = "unchanged"
	RunDead      = "dead"
	RunMalformed = "malformed"
	RunFailed    = "failed"
	// RunSkipped is not recorded: the source was not due for a fetch.
	RunSkipped = "skipped"
)

// LoadInput names the fetched content to load and the refresh it belongs to.
type LoadInput struct {
	Source catalog.Source `json:"source"`
	Fetch  FetchResult    `json:"fetch"`
	// RunKey identifies this source run (the child workflow ID): a retried load
	// with the same key records and merges nothing twice.
	RunKey string `json:"run_key"`
}

// LoadResult is the recorded outcome of a source run.
type LoadResult struct {
	Source  string `json:"source"`
	Status  string `json:"status"`
	Entries int    `json:"entries"`
	Added   int    `json:"added"`
	Removed int    `json:"removed"`
	Bad     int    `json:"bad_lines"`
	Dropped int    `json:"dropped"`
	Error   string `json:"error,omitempty"`
}

// AllowlistResult is what a refresh did with one allowlist.
type AllowlistResult struct {
	Name    string `json:"name"`
	Status  string `json:"status"` // loaded, unchanged, not-due, failed
	Entries int    `json:"entries"`
	// Skipped counts entries of the other kind than the list keeps (the
	// addresses of a domain list): a MISP string warninglist mixes them.
	Skipped int    `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
}

// SourceRunID names one source's run in a refresh, e.g.
// "blacklist/spamhaus-drop/20260901T000000Z" (followed by ".<end of the refresh's
// run ID>"); it is also the run's key in source_runs, so a retried load records
// nothing twice.
func SourceRunID(source string, at time.Time) string {
	return "blacklist/" + source + "/" + at.UTC().Format(childIDTimeLayout)
}

// The blacklist module's activities, by their registered names.
const (
	ReadCatalogActivity       = "ReadCatalog"
	FetchSourceActivity       = "FetchSource"
	LoadSourceActivity        = "LoadSource"
	RefreshAllowlistsActivity = "RefreshAllowlists"
	ComputeMetricsActivity    = "ComputeMetrics"
	NewListedDomainsActivity  = "NewListedDomains"
)
