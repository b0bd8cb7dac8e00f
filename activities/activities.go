// Package activities holds every Temporal activity of TIP: thin adapters from the
// domain packages to I/O. Activities are idempotent: a retry never duplicates a row
// (natural keys and upserts) or an object (content-addressed keys).
package activities

import (
	"net/http"
	"sync"

	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/storage"
)

// Activities carries the clients every activity uses. One value is registered with
// the worker; workflows refer to its methods through a nil *Activities.
type Activities struct {
	DB    *storage.DB
	Blobs *storage.BlobStore
	// ASNTableAllowPrivate lets the ASN tables be downloaded from loopback and
	// private addresses, as the lab's are (flux.asn_table_allow_private). Every
	// other download's allowance is its catalog's (allow_private).
	ASNTableAllowPrivate bool
	// CatalogPath is the source catalog (YAML) the blacklist module reads.
	CatalogPath string
	// SpamCatalogPath is the spamtrap catalog (YAML): traps, archives, mailboxes.
	SpamCatalogPath string
	// Identity names the worker process in reports (the Temporal client identity).
	Identity string
	// Temporal starts and signals flux monitors (Signal-With-Start).
	Temporal client.Client
	// Resolver resolves domains for flux triage and monitors.
	Resolver FluxResolver
	// Flux configures triage and monitors.
	Flux FluxConfig
	// FetchesPerHost bounds the downloads (feeds, spam archives) in flight to one
	// host at once, across every worker sharing the database; 0: no bound.
	FetchesPerHost int

	writerOnce sync.Once
	writer     *fluxWriter
	asnUnset   sync.Once // flux.asn_table unset is logged once (fluxASNs)

	// httpClients make every download from outside (safehttp's, made on first
	// use): [0] connects to public addresses only, [1] to private ones too.
	httpOnce    sync.Once
	httpClients [2]*http.Client
}
