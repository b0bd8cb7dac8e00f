-- Allowlists: benign references (a top-sites ranking, CDN edge ranges) that measure
-- how accurate each source is and keep false positives out of exports. Each list is
-- replaced as a whole when its content changes.
CREATE TABLE allowlists (
    name           text        PRIMARY KEY,
    url            text        NOT NULL,
    format         text        NOT NULL,
    type           text        NOT NULL CHECK (type IN ('domain', 'cidr')),
    etag           text        NOT NULL DEFAULT '',
    last_modified  text        NOT NULL DEFAULT '',
    content_sha256 text        NOT NULL DEFAULT '',
    entries        integer     NOT NULL DEFAULT 0,
    checked_at     timestamptz, -- last fetch that answered (changed or not)
    loaded_at      timestamptz, -- last time the entries were replaced
    error          text        NOT NULL DEFAULT '' -- the last fetch's problem; the old entries stay in use
);

CREATE TABLE allowlist_domains (
    list   text    NOT NULL REFERENCES allowlists (name) ON DELETE CASCADE,
    domain text    NOT NULL,
    rank   integer NOT NULL, -- position in the list, from 1
    PRIMARY KEY (domain, list)
);
CREATE INDEX allowlist_domains_list ON allowlist_domains (list);

CREATE TABLE allowlist_nets (
    list text NOT NULL REFERENCES allowlists (name) ON DELETE CASCADE,
    net  cidr NOT NULL,
    PRIMARY KEY (list, net)
);
CREATE INDEX allowlist_nets_net ON allowlist_nets USING gist (net inet_ops);

-- What the last loaded run of a source dropped as reserved space, for accuracy.
ALTER TABLE source_metrics ADD COLUMN allowlisted bigint NOT NULL DEFAULT 0;
ALTER TABLE source_metrics ADD COLUMN reserved bigint NOT NULL DEFAULT 0;

-- Rate limits: when TIP last sent a request for a source, and what went wrong if it failed.
ALTER TABLE sources ADD COLUMN last_attempt timestamptz;
ALTER TABLE sources ADD COLUMN last_attempt_error text NOT NULL DEFAULT '';
