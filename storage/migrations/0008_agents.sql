-- Spamtrap agents this collector pulls batches from: the id the agent reports (a
-- reinstalled agent restarts its numbering under a new id) and the last batch
-- whose mails are recorded, so a sync fetches only the batches after it.
CREATE TABLE agent_cursors (
    agent     text        PRIMARY KEY, -- the agent's name in the spam catalog
    agent_id  text        NOT NULL,
    version   bigint      NOT NULL CHECK (version >= 0),
    mails     bigint      NOT NULL DEFAULT 0, -- mails recorded from it in all
    synced_at timestamptz NOT NULL DEFAULT now()
);
