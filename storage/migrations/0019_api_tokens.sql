-- The tokens of `tip serve api` (tip api token add|list|revoke). Only each
-- token's SHA-256 is kept; the token is shown once, when it is made. Every
-- request looks its token up here by the primary key, so a revocation acts at
-- once on every replica. last_used is written at most once a minute a token.
CREATE TABLE api_tokens (
    sha256     text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    name       text        NOT NULL UNIQUE, -- unique among revoked tokens too, so logs stay unambiguous
    scopes     text[]      NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['lookup', 'export', 'sources', 'all']),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used  timestamptz
);

-- The versions of what the exports hold, each with when an API replica first
-- saw it: the exports' Last-Modified. A version is named by the listing
-- changes recorded (listing_changes) and the overrides expired; a newer
-- version's time is at least a second later than every older one's, so an
-- If-Modified-Since never hides a change, whichever replica answers.
CREATE TABLE api_export_versions (
    key      text        PRIMARY KEY,
    seq      bigint      NOT NULL, -- the latest listing change it holds
    modified timestamptz NOT NULL
);
CREATE INDEX api_export_versions_modified ON api_export_versions (modified);
