package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// SpamRecord is one mail to record: its facts (as columns and as the whole
// extraction in JSON) and where it was seen.
type SpamRecord struct {
	SHA256        string // of the raw copy: its S3 key, and the mail's key once recorded
	Digest        string // mail.Digest: a second copy of the mail (other line ends) is a sighting of the first
	Size          int64
	ReceivedAt    *time.Time
	SenderIP      netip.Addr // invalid when none was found
	SenderASN     int
	SenderCountry string
	HELO          string
	EnvelopeFrom  string
	From          string
	ReplyTo       string
	Trap          string
	MessageID     string
	Subject       string
	DateSkew      *int64
	XMailer       string
	Campaign      string
	Defects       []string
	URLs          []SpamURL
	Attachments   []SpamAttachment
	Facts         json.RawMessage
	// Origin and Name: where the mail was seen ("archive:<url>", its path there).
	Origin, Name string
	// Raw is where the mail's raw copy was packed; nil when the collector had
	// none (an agent that keeps no raw mail).
	Raw *PackedMail
}

// SpamURL is one URL of a mail.
type SpamURL struct{ URL, Host, Registrable string }

// SpamAttachment is one attachment of a mail.
type SpamAttachment struct {
	Name, Type    string
	Size          int64
	ContentSHA256 string
}

// RecordSpam stores a batch of mails in one transaction: facts of mails not seen
// before, every sighting, and where the raw copies packed for them are. It
// returns how many mails were new to TIP; a repeated batch (a retried activity)
// changes nothing. Each table takes one statement for the whole batch (its rows
// as arrays): the mails first, which returns the digests that made a row; the
// digests recorded before are looked up in one query; the other tables, which
// name a mail by its row's SHA-256, in one more round trip.
func (db *DB) RecordSpam(ctx context.Context, batch []SpamRecord) (newMails int, err error) {
	if len(batch) == 0 {
		return 0, nil
	}
	var m spamColumns
	for _, r := range batch {
		m.add(r)
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// A mail already recorded under its digest (another copy of it, with
		// other line ends, earlier or in this batch) keeps its row: this copy is
		// a sighting of it.
		rows, err := tx.Query(ctx, `INSERT INTO spam_messages (sha256, digest, size, received_at, sender_ip, sender_asn, sender_country, helo,
			    envelope_from, from_addr, reply_to, trap, message_id, subject, date_skew_s, x_mailer, campaign, defects, facts)
			SELECT sha256, digest, size, received_at, sender_ip::inet, sender_asn, sender_country, helo, envelope_from, from_addr,
			       reply_to, trap, message_id, subject, date_skew_s, x_mailer, campaign,
			       ARRAY(SELECT jsonb_array_elements_text(defects::jsonb)), facts::jsonb
			  FROM unnest($1::text[], $2::text[], $3::int8[], $4::timestamptz[], $5::text[], $6::int4[], $7::text[], $8::text[],
			              $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::int8[], $16::text[],
			              $17::text[], $18::text[], $19::text[])
			       WITH ORDINALITY AS m(sha256, digest, size, received_at, sender_ip, sender_asn, sender_country, helo,
			            envelope_from, from_addr, reply_to, trap, message_id, subject, date_skew_s, x_mailer, campaign, defects, facts, i)
			 ORDER BY i
			ON CONFLICT DO NOTHING
			RETURNING digest, sha256`,
			m.sha, m.digest, m.size, m.received, m.ip, m.asn, m.country, m.helo, m.envFrom, m.from, m.replyTo, m.trap,
			m.messageID, m.subject, m.skew, m.xMailer, m.campaign, m.defects, m.facts)
		if err != nil {
			return fmt.Errorf("record %d mails: %w", len(batch), err)
		}
		// owner is the SHA-256 of the row each digest of the batch has: the
		// mails' other rows name it.
		owner := make(map[string]string, len(batch))
		var digest, sha string
		_, err = pgx.ForEachRow(rows, []any{&digest, &sha}, func() error {
			owner[digest] = sha
			newMails++
			return nil
		})
		if err != nil {
			return fmt.Errorf("record %d mails: %w", len(batch), err)
		}
		var known []string
		for _, d := range m.digest {
			if _, ok := owner[d]; !ok {
				known = append(known, d)
			}
		}
		if len(known) > 0 {
			rows, err := tx.Query(ctx, `SELECT digest, sha256 FROM spam_messages WHERE digest = ANY($1::text[])`, known)
			if err == nil {
				_, err = pgx.ForEachRow(rows, []any{&digest, &sha}, func() error { owner[digest] = sha; return nil })
			}
			if err != nil {
				return fmt.Errorf("record %d mails: %w", len(batch), err)
			}
		}
		ownerOf := func(digests []string) ([]string, error) {
			out := make([]string, len(digests))
			for i, d := range digests {
				if out[i] = owner[d]; out[i] == "" {
					return nil, fmt.Errorf("record %d mails: no mail of digest %s", len(batch), d)
				}
			}
			return out, nil
		}
		urlSHA, err := ownerOf(m.urlDigest)
		if err != nil {
			return err
		}
		attSHA, err := ownerOf(m.attDigest)
		if err != nil {
			return err
		}
		seenSHA, err := ownerOf(m.digest)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO spam_urls (sha256, url, host, registrable)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
			ON CONFLICT DO NOTHING`, urlSHA, m.url, m.urlHost, m.urlReg)
		b.Queue(`INSERT INTO spam_attachments (sha256, idx, name, type, size, content_sha256)
			SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::int8[], $6::text[])
			ON CONFLICT DO NOTHING`, attSHA, m.attIdx, m.attName, m.attType, m.attSize, m.attSHA)
		b.Queue(`INSERT INTO spam_sightings (origin, name, sha256)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
			ON CONFLICT DO NOTHING`, m.origin, m.name, seenSHA)
		// The first place a raw copy was stored stays its place: a later copy
		// (a retried batch, the same mail from another collector) is another
		// pack's spare.
		b.Queue(`INSERT INTO spam_raw (sha256, pack_key, pack_offset, pack_length, size)
			SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[])
			ON CONFLICT DO NOTHING`, m.rawSHA, m.rawPack, m.rawOffset, m.rawLength, m.rawSize)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return 0, err
	}
	return newMails, nil
}

// spamColumns are a batch's rows as one array per column, for unnest.
type spamColumns struct {
	sha, digest, country, helo, envFrom, from, replyTo, trap, messageID, subject, xMailer, campaign, defects, facts []string
	size                                                                                                            []int64
	received                                                                                                        []*time.Time
	ip                                                                                                              []*string
	asn                                                                                                             []*int32
	skew                                                                                                            []*int64

	urlDigest, url, urlHost, urlReg []string

	attDigest, attName, attType, attSHA []string
	attIdx                              []int32
	attSize                             []int64

	origin, name []string

	rawSHA, rawPack               []string
	rawOffset, rawLength, rawSize []int64
}

func (c *spamColumns) add(r SpamRecord) {
	if r.Digest == "" {
		r.Digest = r.SHA256
	}
	var ip *string
	if r.SenderIP.IsValid() {
		s := r.SenderIP.String()
		ip = &s
	}
	var asn *int32
	if r.SenderASN > 0 {
		n := int32(r.SenderASN)
		asn = &n
	}
	defects := "[]"
	if len(r.Defects) > 0 {
		js, _ := json.Marshal(r.Defects) // strings always marshal
		defects = string(js)
	}
	facts := "{}"
	if len(r.Facts) > 0 {
		facts = string(r.Facts)
	}
	c.sha, c.digest, c.size, c.received, c.ip, c.asn = append(c.sha, r.SHA256), append(c.digest, r.Digest), append(c.size, r.Size),
		append(c.received, r.ReceivedAt), append(c.ip, ip), append(c.asn, asn)
	c.country, c.helo, c.envFrom, c.from, c.replyTo, c.trap = append(c.country, r.SenderCountry), append(c.helo, r.HELO),
		append(c.envFrom, r.EnvelopeFrom), append(c.from, r.From), append(c.replyTo, r.ReplyTo), append(c.trap, r.Trap)
	c.messageID, c.subject, c.skew, c.xMailer, c.campaign = append(c.messageID, r.MessageID), append(c.subject, r.Subject),
		append(c.skew, r.DateSkew), append(c.xMailer, r.XMailer), append(c.campaign, r.Campaign)
	c.defects, c.facts = append(c.defects, defects), append(c.facts, facts)
	for _, u := range r.URLs {
		c.urlDigest, c.url, c.urlHost, c.urlReg = append(c.urlDigest, r.Digest), append(c.url, u.URL), append(c.urlHost, u.Host), append(c.urlReg, u.Registrable)
	}
	for i, a := range r.Attachments {
		c.attDigest, c.attIdx, c.attName, c.attType, c.attSize, c.attSHA = append(c.attDigest, r.Digest), append(c.attIdx, int32(i)),
			append(c.attName, a.Name), append(c.attType, a.Type), append(c.attSize, a.Size), append(c.attSHA, a.ContentSHA256)
	}
	c.origin, c.name = append(c.origin, r.Origin), append(c.name, r.Name)
	if p := r.Raw; p != nil {
		c.rawSHA, c.rawPack, c.rawOffset, c.rawLength, c.rawSize = append(c.rawSHA, p.SHA256), append(c.rawPack, p.Pack),
			append(c.rawOffset, p.Offset), append(c.rawLength, p.Length), append(c.rawSize, p.Size)
	}
}

// SeenNames returns the mail names already recorded for an origin: what a delta
// ingest skips.
func (db *DB) SeenNames(ctx context.Context, origin string) (map[string]bool, error) {
	rows, err := db.pool.Query(ctx, `SELECT name FROM spam_sightings WHERE origin = $1`, origin)
	if err != nil {
		return nil, fmt.Errorf("seen names of %s: %w", origin, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

// SpamArchiveRow is what TIP remembers of one archive of a public spam archive.
type SpamArchiveRow struct {
	URL, Name, Period       string
	ETag, LastModified, SHA string
	Members                 int
	IngestedAt              *time.Time
	Error                   string
}

// SpamArchive reads an archive's row; a never-seen archive is a zero row with its URL.
func (db *DB) SpamArchive(ctx context.Context, url string) (SpamArchiveRow, error) {
	r := SpamArchiveRow{URL: url}
	err := db.pool.QueryRow(ctx, `SELECT name, period, etag, last_modified, content_sha256, members, ingested_at, error
		FROM spam_archives WHERE url = $1`, url).Scan(&r.Name, &r.Period, &r.ETag, &r.LastModified, &r.SHA, &r.Members, &r.IngestedAt, &r.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("spam archive %s: %w", url, err)
	}
	return r, nil
}

// SpamArchiveIngested records that an archive's content was ingested completely.
func (db *DB) SpamArchiveIngested(ctx context.Context, r SpamArchiveRow) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO spam_archives (url, name, period, etag, last_modified, content_sha256, members, ingested_at, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8)
		ON CONFLICT (url) DO UPDATE SET name = excluded.name, period = excluded.period, etag = excluded.etag,
		    last_modified = excluded.last_modified, content_sha256 = excluded.content_sha256, members = excluded.members,
		    ingested_at = excluded.ingested_at, error = excluded.error`,
		r.URL, r.Name, r.Period, r.ETag, r.LastModified, r.SHA, r.Members, ErrorText(r.Error))
	if err != nil {
		return fmt.Errorf("record spam archive %s: %w", r.URL, err)
	}
	return nil
}

// IMAPCursor reads how far a mailbox was read (zero values before its first poll).
func (db *DB) IMAPCursor(ctx context.Context, mailbox string) (uidValidity, lastUID uint32, err error) {
	var v, u int64
	err = db.pool.QueryRow(ctx, `SELECT uid_validity, last_uid FROM imap_cursors WHERE mailbox = $1`, mailbox).Scan(&v, &u)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("imap cursor %s: %w", mailbox, err)
	}
	return uint32(v), uint32(u), nil
}

// SetIMAPCursor records how far a mailbox was read, after its mail was recorded.
func (db *DB) SetIMAPCursor(ctx context.Context, mailbox string, uidValidity, lastUID uint32, fetched int) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO imap_cursors (mailbox, uid_validity, last_uid, fetched) VALUES ($1, $2, $3, $4)
		ON CONFLICT (mailbox) DO UPDATE SET uid_validity = excluded.uid_validity, last_uid = excluded.last_uid,
		    polled_at = now(), fetched = imap_cursors.fetched + excluded.fetched`,
		mailbox, int64(uidValidity), int64(lastUID), fetched)
	if err != nil {
		return fmt.Errorf("imap cursor %s: %w", mailbox, err)
	}
	return nil
}

// SpamStats summarises the spam TIP holds.
type SpamStats struct {
	Mails     int64         `json:"mails"`
	Senders   int64         `json:"senders"`
	First     *time.Time    `json:"first_received,omitempty"`
	Last      *time.Time    `json:"last_received,omitempty"`
	Defective int64         `json:"defective"`
	ASNs      []CountRow    `json:"top_sender_asns"`
	Countries []CountRow    `json:"top_sender_countries"`
	Domains   []CountRow    `json:"top_url_domains"`
	Campaigns []CampaignRow `json:"top_campaigns"`
	Origins   []CountRow    `json:"origins"` // archive:<index>, imap:<mailbox>, agent:<name>
	// WithSender counts the mails whose true sender was found: what the ASN
	// and country rows share out.
	WithSender int64 `json:"mails_with_sender"`
}

// CountRow is a key and how many mails it has.
type CountRow struct {
	Key   string `json:"key"`
	Mails int64  `json:"mails"`
}

// CampaignRow is one campaign: mails sharing a template.
type CampaignRow struct {
	Key     string    `json:"key"`
	Mails   int64     `json:"mails"`
	Senders int64     `json:"senders"`
	Subject string    `json:"example_subject"`
	First   time.Time `json:"first_received"`
	Last    time.Time `json:"last_received"`
}

// Stats computes the spam summary; top lists hold at most top rows.
func (db *DB) SpamStats(ctx context.Context, top int) (SpamStats, error) {
	var s SpamStats
	err := db.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT sender_ip), count(sender_ip), min(received_at), max(received_at),
		count(*) FILTER (WHERE cardinality(defects) > 0) FROM spam_messages`).Scan(&s.Mails, &s.Senders, &s.WithSender, &s.First, &s.Last, &s.Defective)
	if err != nil {
		return s, fmt.Errorf("spam stats: %w", err)
	}
	counts := func(q string) ([]CountRow, error) {
		rows, err := db.pool.Query(ctx, q, top)
		if err != nil {
			return nil, fmt.Errorf("spam stats: %w", err)
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CountRow, error) {
			var c CountRow
			return c, r.Scan(&c.Key, &c.Mails)
		})
	}
	if s.ASNs, err = counts(`SELECT coalesce('AS' || sender_asn::text, 'unknown'), count(*) FROM spam_messages
		WHERE sender_ip IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1`); err != nil {
		return s, err
	}
	if s.Countries, err = counts(`SELECT coalesce(nullif(sender_country, ''), 'unknown'), count(*) FROM spam_messages
		WHERE sender_ip IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1`); err != nil {
		return s, err
	}
	if s.Domains, err = counts(`SELECT registrable, count(DISTINCT sha256) FROM spam_urls WHERE registrable <> ''
		GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1`); err != nil {
		return s, err
	}
	if s.Origins, err = counts(`SELECT ` + originGroup + `, count(DISTINCT sha256) FROM spam_sightings
		GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1`); err != nil {
		return s, err
	}
	rows, err := db.pool.Query(ctx, `SELECT campaign, count(*), count(DISTINCT sender_ip), min(subject),
		       coalesce(min(received_at), min(first_seen)), coalesce(max(received_at), max(first_seen))
		  FROM spam_messages WHERE campaign <> '' GROUP BY campaign ORDER BY 2 DESC, 1 LIMIT $1`, top)
	if err != nil {
		return s, fmt.Errorf("spam stats: %w", err)
	}
	s.Campaigns, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (CampaignRow, error) {
		var c CampaignRow
		return c, r.Scan(&c.Key, &c.Mails, &c.Senders, &c.Subject, &c.First, &c.Last)
	})
	return s, err
}

// originGroup names a sighting's collector: a mailbox or an agent by its origin,
// an archive by its index (its months together).
const originGroup = `CASE WHEN origin LIKE 'archive:%' THEN regexp_replace(origin, '/[^/]*$', '/') ELSE origin END`

// SpamFacts returns a stored mail's extracted facts (JSON) and where it was seen.
func (db *DB) SpamFacts(ctx context.Context, sha string) (json.RawMessage, []string, error) {
	var facts json.RawMessage
	err := db.pool.QueryRow(ctx, `SELECT facts FROM spam_messages WHERE sha256 = $1`, sha).Scan(&facts)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fmt.Errorf("%w: no mail %s", ErrNotFound, sha)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("spam mail %s: %w", sha, err)
	}
	rows, err := db.pool.Query(ctx, `SELECT origin || ' ' || name FROM spam_sightings WHERE sha256 = $1 ORDER BY seen_at`, sha)
	if err != nil {
		return nil, nil, err
	}
	seen, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return facts, seen, err
}

// ClaimCollectorRun records that the collector name runs now, unless it ran less
// than interval ago; one atomic statement, so two workers never both run it.
func (db *DB) ClaimCollectorRun(ctx context.Context, name string, interval time.Duration) (bool, error) {
	tag, err := db.pool.Exec(ctx, `
		INSERT INTO collector_runs (name, last_run) VALUES ($1, now())
		ON CONFLICT (name) DO UPDATE SET last_run = now()
		 WHERE collector_runs.last_run <= now() - $2::interval`, name, interval*9/10)
	if err != nil {
		return false, fmt.Errorf("collector %s: %w", name, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseCollectorRun forgets a claimed run that failed, so a retry may run at once.
func (db *DB) ReleaseCollectorRun(ctx context.Context, name string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM collector_runs WHERE name = $1`, name); err != nil {
		return fmt.Errorf("collector %s: %w", name, err)
	}
	return nil
}
