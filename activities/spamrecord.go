package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"

	"go.temporal.io/sdk/activity"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/mail"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// spamBatch is how many mails are recorded per transaction, per pack of raw
// mails and per heartbeat; spamBatchBytes bounds the raw mail a batch holds in
// memory.
const (
	spamBatch      = 200
	spamBatchBytes = 32 << 20
)

// spamRecorder records the mails of one collector run in batches: each mail's
// facts are extracted as it is added; a flush stores the batch's raw mails in S3
// as one pack (storage.PutMailPack) and then its facts, with where each raw mail
// is in the pack, in one transaction, so a recorded mail has its raw copy
// whenever the collector had one (an agent may send facts alone), and a crash
// loses at most the batch in flight, which the next attempt records again: the
// same mails make the same pack under the same key, and the places already
// recorded stay.
type spamRecorder struct {
	a                *Spamtraps
	cfg              mail.Config
	asn              *ipasn.Table
	origin           string
	res              *contract.IngestResult
	domains, senders map[string]bool
	batch            []storage.SpamRecord
	raws             [][]byte // the raw mails of batch that go to S3
	rawOf            []int    // the index in batch of each of raws
	bytes            int
}

func (a *Spamtraps) newSpamRecorder(cfg mail.Config, asn *ipasn.Table, res *contract.IngestResult) *spamRecorder {
	return &spamRecorder{a: a, cfg: cfg, asn: asn, origin: res.Origin, res: res, domains: map[string]bool{}, senders: map[string]bool{}}
}

// add extracts a mail seen under name and queues it; full says the batch should
// be flushed now.
func (r *spamRecorder) add(name string, raw []byte, truncated bool) (full bool, err error) {
	facts := mail.Extract(raw, r.cfg)
	if truncated {
		facts.Defects = append(facts.Defects, fmt.Sprintf("larger than the %d-byte limit: stored and parsed truncated", r.cfg.Limits.MaxSize))
	}
	return r.queue(name, facts, raw) // Extract hashed raw itself: nothing to check
}

// addFacts queues a mail whose facts were extracted elsewhere (by an agent), with
// its raw copy when there is one; a raw copy must hash to the facts' SHA-256.
func (r *spamRecorder) addFacts(name string, facts mail.Facts, raw []byte) (full bool, err error) {
	if raw != nil {
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != facts.SHA256 {
			return false, fmt.Errorf("mail %s: the raw copy does not hash to %s", name, facts.SHA256)
		}
		if d := mail.Digest(raw); facts.Digest != "" && facts.Digest != d {
			return false, fmt.Errorf("mail %s: the raw copy's digest is %s, not %s", name, d, facts.Digest)
		} else {
			facts.Digest = d
		}
	}
	// Facts without a digest (an agent older than digests, keeping no raw copy) are
	// known by their SHA-256 alone.
	if !agent.ValidSHA256(facts.Digest) {
		facts.Digest = facts.SHA256
	}
	return r.queue(name, facts, raw)
}

// queue adds a mail's record (and raw copy, if any) to the batch.
func (r *spamRecorder) queue(name string, facts mail.Facts, raw []byte) (full bool, err error) {
	rec, err := spamRecord(facts, r.asn)
	if err != nil {
		return false, err
	}
	rec.Origin, rec.Name = r.origin, name
	if len(rec.Defects) > 0 {
		r.res.Defective++
	}
	collect(rec, r.domains, r.senders)
	r.batch = append(r.batch, rec)
	if raw != nil {
		r.raws, r.rawOf = append(r.raws, raw), append(r.rawOf, len(r.batch)-1)
		r.bytes += len(raw)
	}
	return len(r.batch) >= spamBatch || r.bytes >= spamBatchBytes, nil
}

// flush stores the queued mails: raw copies first, then the facts.
func (r *spamRecorder) flush(ctx context.Context) error {
	if len(r.batch) == 0 {
		return nil
	}
	// No raw copy (an agent that keeps none) is recorded as facts alone.
	pack, err := r.a.Blobs.PutMailPack(ctx, r.raws)
	if err != nil {
		return err
	}
	for i, at := range r.rawOf {
		r.batch[at].Raw = &pack.Mails[i]
	}
	n, err := r.a.Store.RecordSpam(ctx, r.batch)
	if err != nil {
		return err
	}
	r.res.New += n
	clear(r.raws)
	clear(r.batch)
	r.batch, r.raws, r.rawOf, r.bytes = r.batch[:0], r.raws[:0], r.rawOf[:0], 0
	return nil
}

// done fills the result's events.
func (r *spamRecorder) done() {
	r.res.Domains, r.res.SenderIPs = bounded(r.domains), bounded(r.senders)
}

// heartbeat reports progress when running as an activity.
func heartbeat(ctx context.Context, details ...any) {
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, details...)
	}
}

// spamRecord is the row of a mail's facts, its sender mapped to an ASN and country.
func spamRecord(facts mail.Facts, asn *ipasn.Table) (storage.SpamRecord, error) {
	js, err := json.Marshal(facts)
	if err != nil {
		return storage.SpamRecord{}, err
	}
	rec := storage.SpamRecord{SHA256: facts.SHA256, Digest: facts.Digest, Size: facts.Size, ReceivedAt: facts.Received, HELO: facts.HELO,
		EnvelopeFrom: facts.EnvelopeFrom, From: facts.From, ReplyTo: facts.ReplyTo, Trap: facts.To, MessageID: facts.MessageID,
		Subject: facts.Subject, XMailer: facts.XMailer, Campaign: facts.CampaignKey, Defects: facts.Defects, Facts: js}
	if facts.Received != nil && facts.DateParsed != nil {
		skew := facts.DateSkewSeconds
		rec.DateSkew = &skew
	}
	if ip, err := netip.ParseAddr(facts.SenderIP); err == nil {
		rec.SenderIP = ip
		if asn != nil {
			if as, ok := asn.Lookup(ip); ok {
				rec.SenderASN, rec.SenderCountry = int(as.Number), as.Country
			}
		}
	}
	for _, u := range facts.URLs {
		rec.URLs = append(rec.URLs, storage.SpamURL{URL: u.URL, Host: u.Host, Registrable: u.Registrable})
	}
	for _, at := range facts.Attachments {
		rec.Attachments = append(rec.Attachments, storage.SpamAttachment{Name: at.Name, Type: at.Type, Size: at.Size, ContentSHA256: at.SHA256})
	}
	return rec, nil
}
