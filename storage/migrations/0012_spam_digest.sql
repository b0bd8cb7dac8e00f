-- A mail is known by its digest (mail.Digest: the SHA-256 of the message with CRLF
-- read as LF), so the same mail read from a file and fetched over IMAP, which sends
-- CRLF, is one mail seen twice. Mails recorded before keep their SHA-256 as digest.
ALTER TABLE spam_messages ADD COLUMN digest text;
UPDATE spam_messages SET digest = sha256;
ALTER TABLE spam_messages ALTER COLUMN digest SET NOT NULL;
CREATE UNIQUE INDEX spam_messages_digest ON spam_messages (digest);
