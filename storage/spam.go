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
// before, and every sighting. It returns how many mails were new to TIP; a
// repeated batch (a retried activity) changes nothing.
func (db *DB) RecordSpam(ctx context.Context, batch []SpamRecord) (newMails int, err error) {
	if len(batch) == 0 {
		return 0, nil
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, r := range batch {
			if r.Digest == "" {
				r.Digest = r.SHA256
			}
			var ip *netip.Addr
			if r.SenderIP.IsValid() {
				a := r.SenderIP
				ip = &a
			}
			var asn *int
			if r.SenderASN > 0 {
				asn = &r.SenderASN
			}
			defects := r.Defects
			if defects == nil {
				defects = []string{}
			}
			facts := r.Facts
			if len(facts) == 0 {
				facts = json.RawMessage("{}")
			}
			// A mail already recorded under its digest (another copy of it, with
			// other line ends) keeps its row: this copy is a sighting of it.
			b.Queue(`INSERT INTO spam_messages (sha256, digest, size, received_at, sender_ip, sender_asn, sender_country, helo,
				    envelope_from, from_addr, reply_to, trap, message_id, subject, date_skew_s, x_mailer, campaign, defects, facts)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
				ON CONFLICT DO NOTHING`,
				r.SHA256, r.Digest, r.Size, r.ReceivedAt, ip, asn, r.SenderCountry, r.HELO, r.EnvelopeFrom, r.From, r.ReplyTo, r.Trap,
				r.MessageID, r.Subject, r.DateSkew, r.XMailer, r.Campaign, defects, facts)
			for _, u := range r.URLs {
				b.Queue(`INSERT INTO spam_urls (sha256, url, host, registrable)
					SELECT sha256, $2, $3, $4 FROM spam_messages WHERE digest = $1 ON CONFLICT DO NOTHING`,
					r.Digest, u.URL, u.Host, u.Registrable)
			}
			for i, a := range r.Attachments {
				b.Queue(`INSERT INTO spam_attachments (sha256, idx, name, type, size, content_sha256)
					SELECT sha256, $2, $3, $4, $5, $6 FROM spam_messages WHERE digest = $1 ON CONFLICT DO NOTHING`,
					r.Digest, i, a.Name, a.Type, a.Size, a.ContentSHA256)
			}
			b.Queue(`INSERT INTO spam_sightings (origin, name, sha256)
				SELECT $1, $2, sha256 FROM spam_messages WHERE digest = $3 ON CONFLICT DO NOTHING`, r.Origin, r.Name, r.Digest)
		}
		br := tx.SendBatch(ctx, b)
		for _, r := range batch {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return fmt.Errorf("record mail %s: %w", r.SHA256, err)
			}
			newMails += int(tag.RowsAffected())
			for range len(r.URLs) + len(r.Attachments) + 1 {
				if _, err := br.Exec(); err != nil {
					br.Close()
					return fmt.Errorf("record mail %s: %w", r.SHA256, err)
				}
			}
		}
		return br.Close()
	})
	if err != nil {
		return 0, err
	}
	return newMails, nil
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
