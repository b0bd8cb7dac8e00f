-- The blacklist module: sources from the catalog, indicators, which source lists
-- which indicator since when, and one row per source run.

CREATE TABLE sources (
    name                 text        PRIMARY KEY,
    url                  text        NOT NULL,
    format               text        NOT NULL,
    type                 text        NOT NULL,
    prior                double precision NOT NULL CHECK (prior BETWEEN 0 AND 1),
    enabled              boolean     NOT NULL,
    -- validators of the last content that was loaded, for conditional GETs
    etag                 text        NOT NULL DEFAULT '',
    last_modified        text        NOT NULL DEFAULT '',
    content_sha256       text        NOT NULL DEFAULT '',
    last_success         timestamptz,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE indicators (
    id          bigserial   PRIMARY KEY,
    type        text        NOT NULL,
    value       text        NOT NULL,
    registrable text        NOT NULL DEFAULT '',
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    UNIQUE (type, value)
);
CREATE INDEX indicators_registrable ON indicators (registrable) WHERE registrable <> '';

CREATE TABLE listings (
    source       text        NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    indicator_id bigint      NOT NULL REFERENCES indicators (id) ON DELETE CASCADE,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    active       boolean     NOT NULL DEFAULT true,
    removed_at   timestamptz,
    PRIMARY KEY (source, indicator_id)
);
CREATE INDEX listings_indicator ON listings (indicator_id);
CREATE INDEX listings_active ON listings (source) WHERE active;

CREATE TABLE source_runs (
    id          bigserial   PRIMARY KEY,
    source      text        NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    -- the refresh that ran it (workflow ID), so a retried load records one row
    run_key     text        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    status      text        NOT NULL CHECK (status IN ('loaded', 'unchanged', 'dead', 'malformed', 'failed')),
    http_status integer     NOT NULL DEFAULT 0,
    bytes       bigint      NOT NULL DEFAULT 0,
    blob_sha256 text        NOT NULL DEFAULT '',
    entries     integer     NOT NULL DEFAULT 0,
    added       integer     NOT NULL DEFAULT 0,
    removed     integer     NOT NULL DEFAULT 0,
    bad_lines   integer     NOT NULL DEFAULT 0,
    dropped     integer     NOT NULL DEFAULT 0,
    error       text        NOT NULL DEFAULT '',
    UNIQUE (source, run_key)
);
CREATE INDEX source_runs_recent ON source_runs (source, finished_at DESC);
