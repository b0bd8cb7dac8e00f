-- Per-source metrics and weights after each refresh (README: "Source weights"), and
-- the pairwise overlap matrix O[A,B] = |A ∩ B| / |A| over active listings.
CREATE TABLE source_metrics (
    source          text        PRIMARY KEY REFERENCES sources (name) ON DELETE CASCADE,
    computed_at     timestamptz NOT NULL,
    volume          bigint      NOT NULL, -- active listings
    added_share     double precision NOT NULL, -- last loaded run: added / volume
    churn_share     double precision NOT NULL, -- last loaded run: removed / volume
    exclusive_share double precision NOT NULL, -- Uniq(A): listed by no other source
    shared          bigint      NOT NULL, -- indicators also listed elsewhere
    mean_latency_s  double precision,     -- over shared indicators, vs the first source to list them
    persistence_s   double precision,     -- mean time listed of removed entries
    accuracy        double precision NOT NULL, -- share not on allowlists (1 without allowlists)
    health          double precision NOT NULL, -- 1 ok, 0.5 failing, 0 dead
    weight          double precision NOT NULL
);

CREATE TABLE source_overlap (
    a      text NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    b      text NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    shared bigint NOT NULL,
    share  double precision NOT NULL, -- |A ∩ B| / |A|
    PRIMARY KEY (a, b)
);
