-- Data lifecycle (storage/retention.go): flux observations in weekly partitions,
-- hourly summaries of the expired ones, passive DNS of the name servers.

-- tip_flux_partitions makes the weekly partitions holding due times from lo
-- to hi (RecordFluxChecks when a check falls past them, the retention run four
-- weeks ahead) and returns how many it made.
--
-- The partitions of flux_observations are weeks (Monday 00:00 UTC) of the due
-- time, named flux_observations_pYYYYMMDD. A unique index of a partitioned table
-- must hold its partition key, so the key is the due time and the one check per
-- (domain, due) that RecordFluxChecks relies on is the primary key. A check with
-- no due time gets its own time as due: (domain, due) then keeps one row per
-- (domain, at), as the old key did. at >= due (a check runs when due or late).
CREATE FUNCTION tip_flux_partitions(lo timestamptz, hi timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    w timestamptz := date_trunc('week', lo AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    made integer := 0;
    name text;
BEGIN
    WHILE w <= hi LOOP
        name := 'flux_observations_p' || to_char(w AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF flux_observations FOR VALUES FROM (%L) TO (%L)',
                               name, w, w + interval '7 days');
                made := made + 1;
            EXCEPTION WHEN duplicate_table THEN
                NULL; -- another writer made it at the same time
            END;
        END IF;
        w := w + interval '7 days';
    END LOOP;
    RETURN made;
END $$;

ALTER TABLE flux_observations RENAME TO flux_observations_0021;
ALTER INDEX flux_observations_pkey RENAME TO flux_observations_0021_pkey;
ALTER INDEX flux_observations_due RENAME TO flux_observations_0021_due;

CREATE TABLE flux_observations (
    domain  text        NOT NULL,
    at      timestamptz NOT NULL,
    status  text        NOT NULL,
    addrs   integer     NOT NULL, -- A and AAAA records in the answer
    min_ttl integer,
    data    jsonb       NOT NULL, -- the whole observation (flux.Observation)
    late_ms integer     NOT NULL DEFAULT 0, -- how long after it was due the check ran
    due     timestamptz NOT NULL, -- when the check was due (its at when it had no due time)
    PRIMARY KEY (domain, due)
) PARTITION BY RANGE (due);
CREATE INDEX flux_observations_at ON flux_observations (domain, at);

SELECT tip_flux_partitions(coalesce((SELECT min(coalesce(due, at)) FROM flux_observations_0021), now()), now() + interval '28 days');
INSERT INTO flux_observations (domain, at, status, addrs, min_ttl, data, late_ms, due)
SELECT domain, at, status, addrs, min_ttl, data, late_ms, coalesce(due, at) FROM flux_observations_0021
    ON CONFLICT DO NOTHING;
DROP TABLE flux_observations_0021;

-- Hourly summaries of the checks older than the full-resolution window
-- (retention.flux_full_days): one row per domain and hour (of at) with checks,
-- what the timelines of `tip flux show` and the report draw.
CREATE TABLE flux_hours (
    domain          text        NOT NULL,
    hour            timestamptz NOT NULL,
    checks          integer     NOT NULL,
    answered        integer     NOT NULL, -- NOERROR with addresses
    nxdomain        integer     NOT NULL,
    failed          integer     NOT NULL, -- SERVFAIL, errors, NODATA
    max_answer      integer     NOT NULL, -- most addresses (A and AAAA) in one answer
    max_answer_asns integer     NOT NULL, -- most distinct origin ASNs in one answer
    addrs           integer     NOT NULL, -- distinct addresses answered in the hour
    asns            integer     NOT NULL, -- their distinct origin ASNs
    ns_names        integer     NOT NULL, -- distinct NS names in the hour
    min_ttl         integer,              -- lowest TTL of an answer; null: no answer
    max_late_ms     integer     NOT NULL,
    max_score       double precision,     -- highest Holz score of consecutive answers in the hour; null: no pair
    last_at         timestamptz NOT NULL, -- the hour's last check
    last_status     text        NOT NULL, -- and how it ended
    PRIMARY KEY (domain, hour)
);

-- Passive DNS of the name servers: per domain the NS names it was delegated to,
-- per NS name the addresses it had, each with first and last seen and how many
-- checks saw it (as flux_ips for the A and AAAA answers).
CREATE TABLE flux_ns (
    domain     text        NOT NULL,
    ns         text        NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    seen       integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (domain, ns)
);
CREATE INDEX flux_ns_ns ON flux_ns (ns);

CREATE TABLE flux_ns_addrs (
    ns         text        NOT NULL,
    ip         inet        NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    seen       integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (ns, ip)
);
CREATE INDEX flux_ns_addrs_ip ON flux_ns_addrs (ip);

INSERT INTO flux_ns (domain, ns, first_seen, last_seen, seen)
SELECT o.domain, lower(ns->>'name'), min(o.at), max(o.at), count(*)
  FROM flux_observations o, jsonb_array_elements(coalesce(o.data->'ns', '[]')) ns
 WHERE coalesce(ns->>'name', '') <> ''
 GROUP BY 1, 2;

INSERT INTO flux_ns_addrs (ns, ip, first_seen, last_seen, seen)
SELECT lower(ns->>'name'), (r->>'addr')::inet, min(o.at), max(o.at), count(*)
  FROM flux_observations o, jsonb_array_elements(coalesce(o.data->'ns', '[]')) ns,
       jsonb_array_elements(coalesce(ns->'addrs', '[]')) r
 WHERE coalesce(ns->>'name', '') <> ''
 GROUP BY 1, 2;

-- Every check updates the passive-DNS rows of its answers (last seen, count),
-- columns no index holds: with room left on each page the new version stays
-- on its page (a HOT update), and the old one is reclaimed there without a
-- vacuum, so the tables stay near their live size.
ALTER TABLE flux_ips SET (fillfactor = 70);
ALTER TABLE flux_ns SET (fillfactor = 70);
ALTER TABLE flux_ns_addrs SET (fillfactor = 70);
