-- Domains new to TIP's blacklists go to flux triage after each refresh: this
-- finds them by when they were first seen without reading every indicator.
CREATE INDEX indicators_new_domains ON indicators (first_seen) WHERE type = 'domain';
