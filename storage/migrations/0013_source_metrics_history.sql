-- Source metrics over time, for the report's charts of weights and health: every
-- refresh appends each source's metrics (a copy of its source_metrics row) in the
-- transaction that stores them, and drops rows older than a year
-- (storage.MetricsHistoryKeep). About 150 bytes a row: 25 sources refreshed hourly
-- make 220,000 rows a year; the lab's 2-minute refresh thirty times more.
CREATE TABLE source_metrics_history (
    computed_at     timestamptz NOT NULL,
    source          text        NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    volume          bigint      NOT NULL,
    added_share     double precision NOT NULL,
    churn_share     double precision NOT NULL,
    exclusive_share double precision NOT NULL,
    shared          bigint      NOT NULL,
    mean_latency_s  double precision,
    persistence_s   double precision,
    accuracy        double precision NOT NULL,
    health          double precision NOT NULL,
    weight          double precision NOT NULL,
    allowlisted     bigint      NOT NULL,
    reserved        bigint      NOT NULL,
    -- led by the time: the report reads a time range of every source, and the
    -- pruning deletes the oldest
    PRIMARY KEY (computed_at, source)
);

-- The source runs of a time range (the report's health over time), whatever the source.
CREATE INDEX source_runs_finished ON source_runs (finished_at);
