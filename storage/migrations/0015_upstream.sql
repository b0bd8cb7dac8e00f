-- Workers and the upstreams they share: however many workers run, TIP asks no
-- more of an outside server than one worker would.
--
-- workers: each `tip worker` says it is alive every few seconds; a worker takes
-- its share of the per-server DNS rate (flux.qps / the live workers) and deletes
-- its row when it stops. A row not refreshed for a while is a worker that died.
CREATE TABLE workers (
    identity   text        PRIMARY KEY,
    task_queue text        NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL
);

-- upstream_leases: the slots of an upstream (a feed or archive host); a download
-- holds one for its duration, renewing it while it runs. A lease of a worker that
-- died expires: its slot frees itself.
CREATE TABLE upstream_leases (
    upstream   text        NOT NULL,
    slot       integer     NOT NULL,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (upstream, slot)
);
