package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"

	"go.temporal.io/sdk/activity"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/mail"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// spamBatch is how many mails are recorded per transaction, per pack of raw
// mails and per heartbeat: enough that the commit's and the upload's waits for
// the disk are shared by many mails. spamBatchBytes bounds the raw mail a batch
// holds in memory (an IMAP batch is the server's answer to one fetch, bounded
// the same). A recorder holds at most five batches at once (one filled by the
// collector, one being extracted, one uploaded, two committed), so its raw
// mail stays under 20 MiB (24 MiB for IMAP, whose client holds one more
// batch while it fetches), and the facts extracted from it with it.
const (
	spamBatch      = 250
	spamBatchBytes = 4 << 20
	// spamCommitters is how many batches are committed at once: a batch's
	// statements keep one PostgreSQL backend busy, and the next batch need not
	// wait for it.
	spamCommitters = 2
)

// spamRecorder records the mails of one collector run in batches, in a
// pipeline of stages so that reading the mail, extracting it, uploading it and
// committing it overlap: the collector adds mails to a batch and flushes it;
// an extract stage extracts the batch's facts (on every core); an upload stage
// stores its raw mails in S3 as one pack (storage.PutMailPack); a commit stage
// records the facts, with where each raw mail is in the pack, in one
// transaction (spamCommitters batches at once); and what the collector asked
// to follow a batch (a cursor moved, a heartbeat) runs once that batch and
// every batch flushed before it are committed, in the order flushed. A batch
// is committed only after its pack is stored, so a recorded mail has its raw
// copy whenever the collector had one (an agent may send facts alone), and a
// crash loses at most the batches in flight, which the next attempt records
// again (a cursor never moved past them): the same mails make the same pack
// under the same key, and the facts and places already recorded stay. The
// first error stops the pipeline; add and flush report it, and wait returns
// it.
type spamRecorder struct {
	a                *Spamtraps
	cfg              mail.Config
	asn              *ipasn.Table
	origin           string
	res              *contract.IngestResult
	domains, senders map[string]bool

	cur       *spamRecBatch // being filled by the collector
	seq       int           // of the next batch flushed
	extract   chan *spamRecBatch
	upload    chan *spamRecBatch
	store     chan *spamRecBatch
	committed chan *spamRecBatch
	stopped   chan struct{} // closed when every stage has ended
	mu        sync.Mutex
	err       error         // the first error of a stage
	errc      chan struct{} // closed when err is set
}

// spamRecBatch is one batch on its way through the recorder.
type spamRecBatch struct {
	seq   int
	mails []pendingMail
	bytes int
	recs  []storage.SpamRecord
	raws  [][]byte // the raw mails of recs that go to S3
	rawOf []int    // the index in recs of each of raws
	then  func() error
}

// pendingMail is a mail added and not yet extracted: its raw copy to extract
// (facts nil), or the facts an agent extracted, with its raw copy if any.
type pendingMail struct {
	name      string
	raw       []byte
	truncated bool
	facts     *mail.Facts
}

func (a *Spamtraps) newSpamRecorder(cfg mail.Config, asn *ipasn.Table, res *contract.IngestResult) *spamRecorder {
	return &spamRecorder{a: a, cfg: cfg, asn: asn, origin: res.Origin, res: res, domains: map[string]bool{}, senders: map[string]bool{},
		errc: make(chan struct{})}
}

// add queues a mail seen under name, to be extracted; full says the batch
// should be flushed now.
func (r *spamRecorder) add(name string, raw []byte, truncated bool) (full bool, err error) {
	return r.queue(pendingMail{name: name, raw: raw, truncated: truncated})
}

// addFacts queues a mail whose facts were extracted elsewhere (by an agent), with
// its raw copy when there is one; a raw copy must hash to the facts' SHA-256.
func (r *spamRecorder) addFacts(name string, facts mail.Facts, raw []byte) (full bool, err error) {
	return r.queue(pendingMail{name: name, raw: raw, facts: &facts})
}

func (r *spamRecorder) queue(m pendingMail) (full bool, err error) {
	if err := r.failed(); err != nil {
		return false, err
	}
	if r.cur == nil {
		r.cur = &spamRecBatch{}
	}
	r.cur.mails = append(r.cur.mails, m)
	r.cur.bytes += len(m.raw)
	return len(r.cur.mails) >= spamBatch || r.cur.bytes >= spamBatchBytes, nil
}

// flush hands the queued mails on to be extracted and stored.
func (r *spamRecorder) flush(ctx context.Context) error {
	return r.flushThen(ctx, nil)
}

// flushThen hands the queued mails on; then, unless nil, runs once they (and
// every batch before them) are recorded, even when this batch is empty.
func (r *spamRecorder) flushThen(ctx context.Context, then func() error) error {
	if err := r.failed(); err != nil {
		return err
	}
	b := r.cur
	if b == nil {
		if then == nil {
			return nil
		}
		b = &spamRecBatch{}
	}
	r.cur, b.then, b.seq = nil, then, r.seq
	r.seq++
	if r.extract == nil {
		r.start(ctx)
	}
	select {
	case r.extract <- b:
		return nil
	case <-r.errc:
		return r.failed()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sync flushes what is queued and waits until it is recorded: for a
// collector that must not go on before (an IMAP poll that deletes what it
// stored).
func (r *spamRecorder) sync(ctx context.Context) error {
	recorded := make(chan struct{})
	if err := r.flushThen(ctx, func() error { close(recorded); return nil }); err != nil {
		return err
	}
	select {
	case <-recorded:
		return nil
	case <-r.errc:
		return r.failed()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait flushes what is queued, waits until every batch is recorded and
// returns the first error. The recorder is done after it.
func (r *spamRecorder) wait(ctx context.Context) error {
	err := r.flush(ctx)
	r.stop()
	return errors.Join(err, r.failed())
}

// stop ends the pipeline once what was handed on is done; what is still
// queued is dropped. Calling it again does nothing.
func (r *spamRecorder) stop() {
	if r.extract == nil {
		return
	}
	close(r.extract)
	<-r.stopped
	r.extract = nil
}

func (r *spamRecorder) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *spamRecorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
		close(r.errc)
	}
}

// start runs the stages until stop.
func (r *spamRecorder) start(ctx context.Context) {
	r.extract, r.upload, r.store = make(chan *spamRecBatch), make(chan *spamRecBatch), make(chan *spamRecBatch)
	r.committed, r.stopped = make(chan *spamRecBatch), make(chan struct{})
	// stage passes each batch of in through do, then on to out; after the
	// first error it only drains in.
	stage := func(in <-chan *spamRecBatch, out chan<- *spamRecBatch, do func(*spamRecBatch) error) {
		for b := range in {
			if r.failed() != nil {
				continue
			}
			if err := do(b); err != nil {
				r.fail(err)
				continue
			}
			out <- b
		}
	}
	go func() {
		defer close(r.upload)
		stage(r.extract, r.upload, r.prepare)
	}()
	go func() {
		defer close(r.store)
		stage(r.upload, r.store, func(b *spamRecBatch) error { return r.pack(ctx, b) })
	}()
	var committers sync.WaitGroup
	for range spamCommitters {
		committers.Go(func() { stage(r.store, r.committed, func(b *spamRecBatch) error { return r.record(ctx, b) }) })
	}
	go func() {
		committers.Wait()
		close(r.committed)
	}()
	// What follows each batch runs in the order flushed, once every batch
	// before it is committed too.
	go func() {
		defer close(r.stopped)
		waiting := map[int]*spamRecBatch{}
		next, thenFailed := 0, false
		for b := range r.committed {
			waiting[b.seq] = b
			// A later batch's failure does not hold back what follows the
			// batches committed before it.
			for w, ok := waiting[next]; ok && !thenFailed; w, ok = waiting[next] {
				delete(waiting, next)
				next++
				if w.then != nil {
					if err := w.then(); err != nil {
						r.fail(err)
						thenFailed = true
					}
				}
			}
		}
	}()
}

// prepare extracts a batch's mails (or checks an agent's facts against the raw
// copy), on every core, and turns them into records in the order added.
func (r *spamRecorder) prepare(b *spamRecBatch) error {
	facts := make([]mail.Facts, len(b.mails))
	errs := make([]error, len(b.mails))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(b.mails)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(b.mails); i = int(next.Add(1) - 1) {
				facts[i], errs[i] = r.facts(b.mails[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.recs = make([]storage.SpamRecord, 0, len(b.mails))
	for i, m := range b.mails {
		rec, err := spamRecord(facts[i], r.asn)
		if err != nil {
			return err
		}
		rec.Origin, rec.Name = r.origin, m.name
		if len(rec.Defects) > 0 {
			r.res.Defective++
		}
		collect(rec, r.domains, r.senders)
		b.recs = append(b.recs, rec)
		if m.raw != nil {
			b.raws, b.rawOf = append(b.raws, m.raw), append(b.rawOf, len(b.recs)-1)
		}
	}
	b.mails = nil
	return nil
}

// facts are a mail's facts: extracted here, or an agent's, checked against
// the raw copy when there is one.
func (r *spamRecorder) facts(m pendingMail) (mail.Facts, error) {
	if m.facts == nil {
		facts := mail.Extract(m.raw, r.cfg) // Extract hashes raw itself: nothing to check
		if m.truncated {
			facts.Defects = append(facts.Defects, fmt.Sprintf("larger than the %d-byte limit: stored and parsed truncated", r.cfg.Limits.MaxSize))
		}
		return facts, nil
	}
	facts := *m.facts
	if m.raw != nil {
		if sum := sha256.Sum256(m.raw); hex.EncodeToString(sum[:]) != facts.SHA256 {
			return facts, fmt.Errorf("mail %s: the raw copy does not hash to %s", m.name, facts.SHA256)
		}
		if d := mail.Digest(m.raw); facts.Digest != "" && facts.Digest != d {
			return facts, fmt.Errorf("mail %s: the raw copy's digest is %s, not %s", m.name, d, facts.Digest)
		} else {
			facts.Digest = d
		}
	}
	// Facts without a digest (an agent older than digests, keeping no raw copy) are
	// known by their SHA-256 alone.
	if !agent.ValidSHA256(facts.Digest) {
		facts.Digest = facts.SHA256
	}
	return facts, nil
}

// pack stores a batch's raw copies in S3 as one pack and notes where each is.
func (r *spamRecorder) pack(ctx context.Context, b *spamRecBatch) error {
	// No raw copy (an agent that keeps none) is recorded as facts alone.
	pack, err := r.a.Blobs.PutMailPack(ctx, b.raws)
	if err != nil {
		return err
	}
	for i, at := range b.rawOf {
		b.recs[at].Raw = &pack.Mails[i]
	}
	b.raws = nil
	return nil
}

// record commits a batch's facts.
func (r *spamRecorder) record(ctx context.Context, b *spamRecBatch) error {
	if len(b.recs) == 0 {
		return nil
	}
	n, err := r.a.Store.RecordSpam(ctx, b.recs)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.res.New += n
	r.mu.Unlock()
	b.recs = nil
	return nil
}

// done fills the result's events; call it after wait.
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
