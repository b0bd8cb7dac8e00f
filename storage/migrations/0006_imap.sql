-- IMAP spamtrap mailboxes: how far each was read (RFC 3501 UIDVALIDITY and the
-- last UID stored), so a poll fetches only new mail.
CREATE TABLE imap_cursors (
    mailbox      text        PRIMARY KEY,
    uid_validity bigint      NOT NULL,
    last_uid     bigint      NOT NULL,
    polled_at    timestamptz NOT NULL DEFAULT now(),
    fetched      bigint      NOT NULL DEFAULT 0 -- messages fetched in all
);
