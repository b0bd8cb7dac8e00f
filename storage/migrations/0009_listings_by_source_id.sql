-- Loads write only what changed (issue 4). A load used to rewrite every listing
-- of its source and every indicator it saw (last_seen = now()), which made a
-- feed of a million lines take several times a bare COPY of it. Now:
--
-- * An active listing's last_seen is its source's last successful load
--   (sources.last_success): every such load sees everything the source still
--   lists, so the two were always equal. A listing stores its own last_seen only
--   once it stops being active, and a load touches a listing only when it starts
--   or stops being active.
-- * indicators.last_seen had no reader and was rewritten for every entry of
--   every load; when a source last listed an indicator is in listings.
-- * Listings are keyed by a small integer source id instead of the name, and
--   the key leads with the indicator, so one index serves both the upsert and
--   the lookups by indicator. They carry no foreign keys: the loader writes ids it
--   has just read or inserted in the same transaction, and neither sources nor
--   indicators are ever deleted; the per-row checks cost more than the insert.
--
-- The listings view keeps the old shape (source name, derived last_seen) for
-- every reader; writers use source_listings.

ALTER TABLE sources ADD COLUMN id integer GENERATED ALWAYS AS IDENTITY UNIQUE;

-- (Columns widest first: no alignment padding in a row.)
CREATE TABLE source_listings (
    indicator_id bigint      NOT NULL, -- indicators.id
    first_seen   timestamptz NOT NULL,
    -- set when the listing stops being active; while it is, it is the source's
    -- last_success
    last_seen    timestamptz CHECK ((last_seen IS NULL) = active),
    removed_at   timestamptz,
    source_id    integer     NOT NULL, -- sources.id
    active       boolean     NOT NULL DEFAULT true,
    PRIMARY KEY (indicator_id, source_id)
);
CREATE INDEX source_listings_active ON source_listings (source_id) WHERE active;

INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active, removed_at)
SELECT s.id, l.indicator_id, l.first_seen, CASE WHEN l.active THEN NULL ELSE l.last_seen END, l.active, l.removed_at
  FROM listings l JOIN sources s ON s.name = l.source
 ORDER BY l.indicator_id, s.id;

DROP TABLE listings;

-- A listing written outside a load may belong to a source that never loaded:
-- its last_seen is then its first_seen.
CREATE VIEW listings AS
SELECT s.name AS source, l.indicator_id, l.first_seen,
       coalesce(l.last_seen, s.last_success, l.first_seen) AS last_seen,
       l.active, l.removed_at
  FROM source_listings l JOIN sources s ON s.id = l.source_id;

ALTER TABLE indicators DROP COLUMN last_seen;

-- An indicator's first and last sighting by any source, the indicator-level
-- dates the dropped column gave, derived from its listings.
CREATE VIEW indicator_sightings AS
SELECT i.id, i.type, i.value, i.registrable, i.first_seen, max(l.last_seen) AS last_seen
  FROM indicators i JOIN listings l ON l.indicator_id = i.id
 GROUP BY i.id;
