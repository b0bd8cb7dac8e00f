-- What changes what is listed, for the live DNS zones (tip serve dns): a load
-- that changes a source's listings stamps the rows it changed with one number
-- of listing_change_seq and records that number in listing_changes; a metrics
-- run (the sources' weights) and an override or allowlist change (what is
-- suppressed) record one too. Each recording sends NOTIFY tip_listings, which
-- PostgreSQL delivers when the transaction commits.
CREATE SEQUENCE listing_change_seq;

ALTER TABLE source_listings ADD COLUMN changed_seq bigint;
CREATE INDEX source_listings_changed ON source_listings (changed_seq) WHERE changed_seq IS NOT NULL;

CREATE TABLE listing_changes (
    seq       bigint      PRIMARY KEY,
    kind      text        NOT NULL CHECK (kind IN ('listings', 'weights', 'suppressions')),
    source_id integer, -- sources.id, for 'listings'
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX listing_changes_at ON listing_changes (at);
