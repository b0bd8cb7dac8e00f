-- Spamtraps: one row per distinct raw mail (its SHA-256 is also its S3 key), the
-- facts extracted from it, and where it was seen (archive members, IMAP UIDs,
-- agent batches), which is what makes every ingest idempotent and incremental.
CREATE TABLE spam_messages (
    sha256         text        PRIMARY KEY,
    size           bigint      NOT NULL,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    received_at    timestamptz,          -- when the trap's MX received it (its Received header)
    sender_ip      inet,                 -- the true sender by the trap's trust rules
    sender_asn     integer,
    sender_country text        NOT NULL DEFAULT '',
    helo           text        NOT NULL DEFAULT '',
    envelope_from  text        NOT NULL DEFAULT '',
    from_addr      text        NOT NULL DEFAULT '',
    reply_to       text        NOT NULL DEFAULT '',
    trap           text        NOT NULL DEFAULT '',
    message_id     text        NOT NULL DEFAULT '',
    subject        text        NOT NULL DEFAULT '',
    date_skew_s    bigint,
    x_mailer       text        NOT NULL DEFAULT '',
    campaign       text        NOT NULL DEFAULT '',
    defects        text[]      NOT NULL DEFAULT '{}',
    facts          jsonb       NOT NULL  -- the whole extraction: hops, URLs, attachments
);
CREATE INDEX spam_messages_received ON spam_messages (received_at);
CREATE INDEX spam_messages_sender ON spam_messages (sender_ip);
CREATE INDEX spam_messages_campaign ON spam_messages (campaign);

CREATE TABLE spam_urls (
    sha256      text NOT NULL REFERENCES spam_messages (sha256) ON DELETE CASCADE,
    url         text NOT NULL,
    host        text NOT NULL,
    registrable text NOT NULL DEFAULT '',
    PRIMARY KEY (sha256, url)
);
CREATE INDEX spam_urls_registrable ON spam_urls (registrable);

CREATE TABLE spam_attachments (
    sha256         text    NOT NULL REFERENCES spam_messages (sha256) ON DELETE CASCADE,
    idx            integer NOT NULL,
    name           text    NOT NULL DEFAULT '',
    type           text    NOT NULL DEFAULT '',
    size           bigint  NOT NULL,
    content_sha256 text    NOT NULL,
    PRIMARY KEY (sha256, idx)
);

-- origin names a collector ("archive:https://.../2026-09.7z", "imap:trap",
-- "agent:mx1"); name is the mail's name there (archive path, UIDVALIDITY/UID, ...).
CREATE TABLE spam_sightings (
    origin  text        NOT NULL,
    name    text        NOT NULL,
    sha256  text        NOT NULL REFERENCES spam_messages (sha256) ON DELETE CASCADE,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (origin, name)
);
CREATE INDEX spam_sightings_sha ON spam_sightings (sha256);

-- Archives of a public spam archive and how far their ingest got.
CREATE TABLE spam_archives (
    url            text        PRIMARY KEY,
    name           text        NOT NULL,
    period         text        NOT NULL,
    etag           text        NOT NULL DEFAULT '',
    last_modified  text        NOT NULL DEFAULT '',
    content_sha256 text        NOT NULL DEFAULT '', -- of the archive last ingested completely
    members        integer     NOT NULL DEFAULT 0,
    ingested_at    timestamptz,
    error          text        NOT NULL DEFAULT ''
);
