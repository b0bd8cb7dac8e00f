-- A monitor's check is recorded once per due time: a check re-run because the
-- worker running it died before Temporal heard of its end (its local activity is
-- retried on another worker) finds its due time taken and records nothing twice,
-- so the addresses' seen counts are not inflated. Checks with no due time (none
-- today) are not constrained.
ALTER TABLE flux_observations ADD COLUMN due timestamptz;
CREATE UNIQUE INDEX flux_observations_due ON flux_observations (domain, due);
