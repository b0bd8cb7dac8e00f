-- When each spam collector (an archive index, an IMAP mailbox) last ran, so each
-- runs only as often as its catalog interval says even when the module runs more
-- often.
CREATE TABLE collector_runs (
    name     text        PRIMARY KEY,
    last_run timestamptz NOT NULL
);
