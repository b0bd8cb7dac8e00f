-- What a source says of each listing (issue 21): its category where the feed
-- gives one per entry (else the source's), the malware family or phishing
-- target, the C2 port, the source's own reference (an SBL id, a URLhaus link)
-- and when the source says it first listed the entry. NULL: the feed does not
-- say. And per source, what it lists and the terms it shares it under.
ALTER TABLE source_listings
    ADD COLUMN listed_at timestamptz,
    ADD COLUMN category  text,
    ADD COLUMN malware   text,
    ADD COLUMN port      text,
    ADD COLUMN ref       text;

ALTER TABLE sources
    ADD COLUMN category text NOT NULL DEFAULT '',
    ADD COLUMN licence  text NOT NULL DEFAULT '',
    ADD COLUMN tlp      text NOT NULL DEFAULT 'clear'
        CHECK (tlp IN ('clear', 'green', 'amber', 'amber+strict', 'red'));

-- The loads before this migration threw the context away, and a feed whose
-- content did not change is not loaded again. Forgetting the validators makes
-- every source's next run download and load its list whole, which fills the
-- context of the listings it still lists (removed ones keep none).
UPDATE sources SET etag = '', last_modified = '', content_sha256 = '';

CREATE OR REPLACE VIEW listings AS
SELECT s.name AS source, l.indicator_id, l.first_seen,
       coalesce(l.last_seen, s.last_success, l.first_seen) AS last_seen,
       l.active, l.removed_at,
       l.listed_at, coalesce(l.category, nullif(s.category, '')) AS category, l.malware, l.port, l.ref
  FROM source_listings l JOIN sources s ON s.id = l.source_id;
