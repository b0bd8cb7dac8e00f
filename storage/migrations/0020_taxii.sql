-- The collections of TIP's TAXII 2.1 server (tip serve api, package taxii):
-- every version of every STIX object each collection holds, with the time it
-- was added to it. A sync (SyncTAXII) compares what TIP knows now with what
-- it last published and adds versions: it runs under an advisory lock, and each
-- of its transactions stamps what it adds with one time, later than every
-- stamp committed before it, so a client paging by date added never misses a
-- version that commits after it read.

-- What TIP last published of each object it versions (an indicator, a flux
-- network, one of its relationships), across collections: the STIX id (a new
-- one after a revocation: a revoked object never comes back), the latest
-- version and what it says, and the collections that hold it (each gets every
-- later version, its revocation too).
CREATE TABLE taxii_state (
    key          text        PRIMARY KEY, -- indicator:<indicators.id>, flux-network:<name>, flux-rel:<name>|<target id>
    indicator_id bigint      UNIQUE,      -- indicators.id, for an indicator
    episode      integer     NOT NULL,    -- the revocations before this id
    stix_id      text        NOT NULL UNIQUE,
    created      timestamptz NOT NULL,
    modified     timestamptz NOT NULL,    -- the latest version
    valid_until  timestamptz,             -- indicators
    confidence   integer,                 -- indicators, as the latest version says it
    digest       text        NOT NULL,    -- what the latest version says (export.STIXIndicator.Digest)
    revoked      boolean     NOT NULL,
    held         text[]      NOT NULL     -- the collections holding it (each holds its latest version)
);

-- Every version in every collection. version is the object's modified
-- timestamp (created for a marking definition, the date added for a
-- cyber-observable, which has neither); latest marks the newest version of
-- each object in each collection.
CREATE TABLE taxii_objects (
    collection text        NOT NULL,
    stix_id    text        NOT NULL,
    version    timestamptz NOT NULL,
    date_added timestamptz NOT NULL,
    type       text        NOT NULL,
    revoked    boolean     NOT NULL DEFAULT false,
    latest     boolean     NOT NULL,
    object     text        NOT NULL, -- the STIX object, JSON
    PRIMARY KEY (collection, stix_id, version)
);
-- Paging: (date added, id, version) is unique and the cursor.
CREATE INDEX taxii_objects_added ON taxii_objects (collection, date_added, stix_id, version);
CREATE UNIQUE INDEX taxii_objects_latest ON taxii_objects (collection, stix_id) WHERE latest;
-- Pruning: superseded versions, and revocations, added long enough ago.
CREATE INDEX taxii_objects_superseded ON taxii_objects (date_added) WHERE NOT latest;
CREATE INDEX taxii_objects_revoked ON taxii_objects (date_added) WHERE latest AND revoked;

-- The last sync: its stamp (the next is later), and what it synced from.
CREATE TABLE taxii_sync (
    id            integer          PRIMARY KEY CHECK (id = 1),
    stamp         timestamptz      NOT NULL,
    exports_key   text             NOT NULL DEFAULT '', -- storage.ExportVersion's key at the last indicator pass
    min_score     double precision,
    indicators_at timestamptz                            -- the last indicator pass
);
