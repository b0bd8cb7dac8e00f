-- The flux probers' schedule: one row per domain a monitor registered (a
-- monitor started by this release, or one that checked its domain itself and
-- handed over). The monitor writes its bounds, pause and pinned interval (seq
-- moves on with each such change, which is how a prober finds them); the prober
-- that owns the domain's bucket writes its compact state with every check, in
-- the check's transaction, and a checkpoint of its metrics at every summary.
-- A prober reads the rows whose xid is at least the oldest transaction running
-- when it last read (a sequence alone would let a change whose transaction
-- commits after a later one's be missed); seq orders a domain's changes.
CREATE SEQUENCE flux_schedule_seq;
CREATE TABLE flux_schedule (
    domain       text        PRIMARY KEY,
    bucket       integer     NOT NULL, -- contract.MonitorBucket(domain)
    seq          bigint      NOT NULL DEFAULT nextval('flux_schedule_seq'),
    xid          xid8        NOT NULL DEFAULT pg_current_xact_id(), -- the transaction of the last change
    active       boolean     NOT NULL DEFAULT true, -- false once the monitor ended
    paused       boolean     NOT NULL DEFAULT false,
    min_check_ms bigint      NOT NULL,
    max_check_ms bigint      NOT NULL,
    pinned_ms    bigint      NOT NULL DEFAULT 0, -- set-interval; 0: TTL-driven
    nxdomain_ms  bigint      NOT NULL DEFAULT 0, -- the monitor ends after this long of NXDOMAIN; 0: never
    -- The prober's compact state, written with every check.
    due          timestamptz, -- the next check; null: at once
    checks       integer     NOT NULL DEFAULT 0,
    stable       integer     NOT NULL DEFAULT 0, -- checks in a row without a new address
    ttl          integer     NOT NULL DEFAULT 0, -- the TTL the cadence follows
    nx_since     timestamptz, -- the first NXDOMAIN of the current run of them
    state        text        NOT NULL DEFAULT 'watching', -- watching or stable
    -- The metrics (flux.Metrics, JSON) folded up to metrics_at; the observations
    -- after it are folded in at the next summary.
    metrics      bytea,
    metrics_at   timestamptz,
    summary_at   timestamptz  -- the last report to the monitor
) WITH (fillfactor = 80);
CREATE INDEX flux_schedule_xid_idx ON flux_schedule (xid);
