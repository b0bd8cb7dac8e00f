-- Where each raw mail stored in a pack is: the pack's object key (spampack/…),
-- the offset and length of the group of mails holding it (storage/mailpack.go),
-- and the mail's size. A row
-- is written in the transaction that records the mail's facts, after the pack
-- was stored, so every row names a pack that exists. Mails stored before packs
-- have no row: each is an object of its own under its SHA-256 (sha256/…).
CREATE TABLE spam_raw (
    sha256      text   PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    pack_key    text   NOT NULL,
    pack_offset bigint NOT NULL CHECK (pack_offset >= 0),
    pack_length bigint NOT NULL CHECK (pack_length > 0),
    size        bigint NOT NULL CHECK (size >= 0)
);
