-- Every raw object TIP keeps in S3 (feed snapshots, raw mails, archives), once per
-- content: the key in the bucket is derived from sha256, so this table is the index
-- that lets later modules join facts to the raw material they came from.
CREATE TABLE blobs (
    sha256       text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size         bigint      NOT NULL CHECK (size >= 0),
    stored_size  bigint      NOT NULL CHECK (stored_size >= 0),
    encoding     text        NOT NULL CHECK (encoding IN ('identity', 'zstd')),
    content_type text        NOT NULL DEFAULT '',
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    seen_count   bigint      NOT NULL DEFAULT 1
);

CREATE INDEX blobs_first_seen ON blobs (first_seen);
