-- Fast-flux: every domain triaged with its verdict, the monitor watching it, what
-- each of the monitor's resolutions saw, and the addresses (flux agents) seen
-- behind each domain.
CREATE TABLE flux_domains (
    domain        text             PRIMARY KEY,
    verdict       text             NOT NULL, -- flux, double-flux, benign, cdn-allowlisted, nxdomain, error
    score         double precision NOT NULL DEFAULT 0, -- Holz flux-score at the last triage
    reason        text             NOT NULL DEFAULT '',
    features      jsonb            NOT NULL DEFAULT '{}',
    origin        text             NOT NULL DEFAULT '', -- who first asked: spam, blacklist, cli
    triaged_at    timestamptz      NOT NULL,
    triages       integer          NOT NULL DEFAULT 1,
    seen_at       timestamptz      NOT NULL, -- last time a module mentioned it
    monitor       text,                      -- null: never monitored; watching, stable, paused, stopped
    monitor_since timestamptz,
    monitor_ended timestamptz,
    summary       jsonb,                     -- the monitor's latest summary (its final one once stopped)
    network       text                       -- flux network: the first domain, by name, of those sharing addresses with it
);
CREATE INDEX flux_domains_monitor ON flux_domains (monitor) WHERE monitor IS NOT NULL;

CREATE TABLE flux_observations (
    domain  text        NOT NULL,
    at      timestamptz NOT NULL,
    status  text        NOT NULL,
    addrs   integer     NOT NULL, -- A and AAAA records in the answer
    min_ttl integer,
    data    jsonb       NOT NULL, -- the whole observation (flux.Observation)
    late_ms integer     NOT NULL DEFAULT 0, -- how long after it was due the check ran
    PRIMARY KEY (domain, at)
);

-- role: 'a' for an A or AAAA address of the domain, 'ns' for an address of one of
-- its name servers (double flux puts bots there too).
CREATE TABLE flux_ips (
    domain     text        NOT NULL,
    ip         inet        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('a', 'ns')),
    asn        bigint      NOT NULL DEFAULT 0,
    country    text        NOT NULL DEFAULT '',
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    seen       integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (domain, ip, role)
);
CREATE INDEX flux_ips_ip ON flux_ips (ip);
