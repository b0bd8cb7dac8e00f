-- Analyst overrides: what an analyst says TIP has wrong, with who, when and why.
-- An "allow" keeps a value (an exact indicator, a CIDR, or a domain with its
-- subdomains) out of every export; an "fp" marks a source's listing (or every
-- source's, source = '') a false positive. Both act at once, in the queries that
-- export and weigh; none is ever deleted: removing one stamps it, so the record
-- of who decided what stays.
CREATE TABLE overrides (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('allow', 'fp')),
    match          text        NOT NULL CHECK (match IN ('exact', 'cidr', 'suffix')),
    type           text        NOT NULL, -- the indicator type of value
    value          text        NOT NULL, -- normalised as the feeds normalise it
    net            cidr,                 -- the block of an address or CIDR value, for && lookups
    source         text        NOT NULL DEFAULT '', -- fp: the source wrong about it; '' for every source
    reason         text        NOT NULL CHECK (reason <> ''),
    author         text        NOT NULL CHECK (author <> ''),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz,
    removed_at     timestamptz,
    removed_by     text        NOT NULL DEFAULT '',
    CHECK (kind = 'fp' OR source = ''),
    CHECK (match <> 'cidr' OR net IS NOT NULL)
);
-- One standing override of a kind per value (and source): adding again replaces it.
CREATE UNIQUE INDEX overrides_standing ON overrides (kind, type, value, source) WHERE removed_at IS NULL;
CREATE INDEX overrides_net ON overrides USING gist (net inet_ops) WHERE removed_at IS NULL AND net IS NOT NULL;
