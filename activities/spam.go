package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/mail"
	"github.com/tip-project/tip/safehttp"
	"github.com/tip-project/tip/spamarchive"
	"github.com/tip-project/tip/spamimap"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// Spamtraps is what every spam collector shares: the spamtrap catalog, the
// store of the mails' facts and cursors, the blob store of raw mail, and the ASN
// tables senders are mapped with.
type Spamtraps struct {
	Store   SpamStore
	Blobs   SpamBlobs
	ASN     *ASNTables
	Catalog string // the spamtrap catalog (YAML): traps, archives, mailboxes, agents
}

// SpamBlobs is the blob store of the spam collectors (storage.BlobStore):
// archives and batches as blobs, raw mails in packs.
type SpamBlobs interface {
	Blobs
	PutMailPack(ctx context.Context, mails [][]byte) (storage.MailPack, error)
}

// Spam is the spam module's activities: the catalog, the public archives, the
// IMAP mailboxes, and the senders listed as TIP's own source.
type Spam struct {
	Spamtraps
	Downloads *Downloads
}

// ReadSpamCatalog loads the spamtrap catalog and returns its enabled collectors.
// No catalog configured is not an error: there is nothing to collect.
func (a *Spam) ReadSpamCatalog(ctx context.Context) (contract.SpamPlan, error) {
	if a.Catalog == "" {
		return contract.SpamPlan{}, nil
	}
	c, err := catalog.LoadSpam(a.Catalog)
	if err != nil {
		return contract.SpamPlan{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("spam catalog: %v", err), "BadCatalog", err)
	}
	p := contract.SpamPlan{ASNTable: c.ASNTable}
	for _, ar := range c.Archives {
		if ar.Enabled {
			p.Archives = append(p.Archives, ar)
		}
	}
	for _, m := range c.Mailboxes {
		if m.Enabled {
			p.Mailboxes = append(p.Mailboxes, m)
		}
	}
	for _, ag := range c.Agents {
		if ag.Enabled {
			p.Agents = append(p.Agents, ag)
		}
	}
	return p, nil
}

// spamSetup is what a collector needs from the spam catalog, read once per
// activity: the extraction setting of its trap, the ASN table (nil when none is
// configured or it cannot be had: senders then stay unmapped), and the catalog.
func (a *Spamtraps) spamSetup(ctx context.Context, trap string) (*catalog.Spam, mail.Config, *ipasn.Table, error) {
	c, err := catalog.LoadSpam(a.Catalog)
	if err != nil {
		return nil, mail.Config{}, nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("spam catalog: %v", err), "BadCatalog", err)
	}
	t, ok := c.Rules(trap)
	if !ok {
		return nil, mail.Config{}, nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("spam catalog: no trap %q", trap), "BadCatalog", nil)
	}
	cfg := mail.Config{TrapMX: t.MX, TrapMXAddrs: t.MXAddrs, TrustedRelays: t.Trusted, Limits: mail.DefaultLimits()}
	asn, err := a.ASN.Table(ctx, c.ASNTable)
	if err != nil {
		activity.GetLogger(ctx).Warn("sender ASNs unknown", "error", err)
	}
	return c, cfg, asn, nil
}

// ListSpamArchives reads an archive's index and returns the archives that may hold
// mail TIP has not ingested: those never ingested completely, and the two newest
// (the current month grows in place; the previous one may still be rewritten once).
// Each is then asked for conditionally, so an unchanged archive costs a 304.
func (a *Spam) ListSpamArchives(ctx context.Context, src catalog.SpamArchive) (due []spamarchive.Archive, err error) {
	claim := "archive:" + src.Name
	if ok, err := a.claimRun(ctx, claim, src.Interval); err != nil || !ok {
		return nil, err // not due: nothing to do this time
	}
	defer func() { err = a.releaseOnError(ctx, claim, err) }()
	base, err := url.Parse(src.Index)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("archive index %s: %v", src.Index, err), "BadURL", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.Index, nil)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "BadURL", err)
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := a.Downloads.client(src.AllowPrivate).Do(req)
	var refused *safehttp.RefusedError
	switch {
	case errors.As(err, &refused):
		return nil, temporal.NewNonRetryableApplicationError("archive index "+refusal(src.Index, refused), "Refused", err)
	case err != nil:
		return nil, fmt.Errorf("archive index %s: %w", src.Index, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("archive index %s answers %s", src.Index, resp.Status)
	}
	all, err := spamarchive.ParseIndex(resp.Body, base)
	if err != nil {
		return nil, err
	}
	var out []spamarchive.Archive
	for i, ar := range all {
		row, err := a.Store.SpamArchive(ctx, ar.URL)
		if err != nil {
			return nil, err
		}
		if row.IngestedAt == nil || i >= len(all)-2 {
			out = append(out, ar)
		}
	}
	return out, nil
}

// maxEventItems bounds the domains and addresses one ingest reports.
const maxEventItems = 5000

// maxRefusedSample bounds the refusals one poll reports by name.
const maxRefusedSample = 10

// IngestSpamArchive fetches one archive (conditionally; kept in S3 under its
// SHA-256) and ingests every member not ingested before: the raw mails into S3 in
// one pack per batch, their facts and places in the pack into PostgreSQL, in
// batches that each commit with the member names they cover. A retry after a crash skips what is recorded, so it
// resumes at the last stored batch and records every mail exactly once.
func (a *Spam) IngestSpamArchive(ctx context.Context, in contract.ArchiveIngestInput) (contract.IngestResult, error) {
	origin := "archive:" + in.Archive.URL
	res := contract.IngestResult{Origin: origin}
	_, cfg, asn, err := a.spamSetup(ctx, in.Source.Trap)
	if err != nil {
		return res, err
	}
	row, err := a.Store.SpamArchive(ctx, in.Archive.URL)
	if err != nil {
		return res, err
	}
	var f contract.FetchResult
	src := catalog.Source{Name: in.Archive.Name, URL: in.Archive.URL, Timeout: 30 * time.Minute, SizeLimit: 8 << 30, AllowPrivate: in.Source.AllowPrivate}
	if err := a.Downloads.fetch(ctx, src, validators{row.ETag, row.LastModified, row.SHA}, &f); err != nil {
		return res, err
	}
	switch f.Status {
	case contract.FetchUnchanged:
		if row.IngestedAt != nil {
			res.Status = contract.FetchUnchanged
			return res, nil
		}
	case contract.FetchChanged:
	default:
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("archive %s: %s", in.Archive.URL, f.Error), "ArchiveFetch", nil)
	}
	res.Bytes = f.Bytes
	file, err := a.blobToTemp(ctx, f.SHA256)
	if err != nil {
		return res, err
	}
	defer os.Remove(file)

	seen, err := a.Store.SeenNames(ctx, origin)
	if err != nil {
		return res, err
	}
	rec := a.newSpamRecorder(cfg, asn, &res)
	defer rec.stop()
	limit := cfg.Limits.MaxSize
	err = spamarchive.Each(file, func(m spamarchive.Member) error {
		res.Members++
		if seen[m.Name] {
			res.Skipped++
			return nil
		}
		raw, truncated, err := m.Read(limit)
		if err != nil {
			return err
		}
		full, err := rec.add(m.Name, raw, truncated)
		if err != nil || !full {
			return errors.Join(err, ctx.Err())
		}
		members := res.Members
		return rec.flushThen(ctx, func() error { heartbeat(ctx, members); return nil })
	})
	if err == nil {
		err = rec.wait(ctx)
	}
	if err != nil {
		return res, fmt.Errorf("ingest %s: %w", in.Archive.Name, err)
	}
	if err := a.Store.SpamArchiveIngested(ctx, storage.SpamArchiveRow{URL: in.Archive.URL, Name: in.Archive.Name, Period: in.Archive.Period,
		ETag: f.ETag, LastModified: f.LastModified, SHA: f.SHA256, Members: res.Members}); err != nil {
		return res, err
	}
	res.Status = "ingested"
	rec.done()
	return res, nil
}

// claimRun claims a collector's run (DB.ClaimCollectorRun). A retry claims it
// whatever the interval: the run claimed is its own earlier attempt's, which
// released it if it failed, but not if its worker died (SIGKILL, OOM, a lost
// machine); finding that claim, the retry would take its own run for a recent
// one, end as not due, and leave the work the dead attempt did not finish until
// the next run.
func (a *Spamtraps) claimRun(ctx context.Context, collector string, interval time.Duration) (bool, error) {
	if activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt > 1 {
		interval = 0
	}
	return a.Store.ClaimCollectorRun(ctx, collector, interval)
}

// releaseOnError lets a failed collector run be retried before its interval is
// over. The error stays what it was (a non-retryable one too) unless the release
// fails as well.
func (a *Spamtraps) releaseOnError(ctx context.Context, collector string, err error) error {
	if err == nil {
		return nil
	}
	if rerr := a.Store.ReleaseCollectorRun(context.WithoutCancel(ctx), collector); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// collect notes a new mail's URL domains and sender address for the events.
func collect(rec storage.SpamRecord, domains, senders map[string]bool) {
	for _, u := range rec.URLs {
		// the registrable domain: a wildcard zone's per-recipient hosts are one candidate
		if u.Registrable != "" && len(domains) < maxEventItems {
			domains[u.Registrable] = true
		}
	}
	if rec.SenderIP.IsValid() && len(senders) < maxEventItems {
		senders[rec.SenderIP.String()] = true
	}
}

func bounded(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// blobToTemp copies a blob to a temporary file (archive readers need random access).
func (a *Spam) blobToTemp(ctx context.Context, sha string) (string, error) {
	body, _, err := a.Blobs.Open(ctx, sha)
	if err != nil {
		return "", err
	}
	defer body.Close()
	tmp, err := os.CreateTemp("", "tip-archive-*")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(tmp, body); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", fmt.Errorf("copy archive %s: %w", sha, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// RefreshSpamSenders lists every sender of spam TIP received in the last
// SpamSenderWindow under SpamSendersSource — merged like a feed's load (new,
// re-listed, removed) and recorded as a run of that source under runKey, so a
// retry changes nothing twice.
func (a *Spam) RefreshSpamSenders(ctx context.Context, runKey string) (contract.LoadResult, error) {
	src := storage.SourceRow{Name: contract.SpamSendersSource, URL: "tip://spamtraps", Format: "tip-spamtraps", Type: "ip", Prior: 0.6, Enabled: true,
		Category: "spam", Licence: "yours: the senders of the spam your spamtraps received", TLP: OwnSourcesTLP}
	return a.Store.RefreshSpamSenders(ctx, src, runKey, contract.SpamSenderWindow)
}

// PollMailbox fetches the new mail of an IMAP spamtrap mailbox: each batch's raw
// mail into S3 (one pack) and facts into PostgreSQL, then the cursor, then the
// mailbox's after policy. A crash between recording a batch and advancing the cursor fetches the
// batch again next time; its sightings ("UIDVALIDITY:UID") make that a no-op.
func (a *Spam) PollMailbox(ctx context.Context, box catalog.Mailbox) (contract.IngestResult, error) {
	origin := "imap:" + box.Name
	res := contract.IngestResult{Origin: origin}
	if due, err := a.claimRun(ctx, origin, box.Interval); err != nil || !due {
		res.Status = contract.FetchNotDue
		return res, err
	}
	res, err := a.pollMailbox(ctx, box, res)
	return res, a.releaseOnError(ctx, origin, err)
}

func (a *Spam) pollMailbox(ctx context.Context, box catalog.Mailbox, res contract.IngestResult) (contract.IngestResult, error) {
	c, cfg, asn, err := a.spamSetup(ctx, box.Trap)
	if err != nil {
		return res, err
	}
	// Secrets never travel through workflow histories: the password is read here,
	// from the catalog (or the environment variable it names).
	for _, m := range c.Mailboxes {
		if m.Name == box.Name {
			box.Password, box.PasswordEnv = m.Password, m.PasswordEnv
		}
	}
	v, last, err := a.Store.IMAPCursor(ctx, box.Name)
	if err != nil {
		return res, err
	}
	rec := a.newSpamRecorder(cfg, asn, &res)
	defer rec.stop()
	// A mailbox whose mail is moved or deleted once stored waits for each batch
	// to be recorded; one that keeps its mail reads on while batches are stored.
	keep := box.After == "" || box.After == "keep"
	opts := spamimap.Options{MaxSize: cfg.Limits.MaxSize, Batch: spamBatch, BatchBytes: spamBatchBytes}
	_, _, err = spamimap.Poll(ctx, box, spamimap.Cursor{UIDValidity: v, LastUID: last}, opts,
		func(batch []spamimap.Mail, next spamimap.Cursor) error {
			fetched := 0
			for _, m := range batch {
				name := fmt.Sprintf("%d:%d", next.UIDValidity, m.UID)
				if m.Refused != "" {
					res.Refused++
					if len(res.RefusedSample) < maxRefusedSample {
						res.RefusedSample = append(res.RefusedSample, "UID "+name+": "+m.Refused)
					}
					activity.GetLogger(ctx).Warn("IMAP message refused", "mailbox", box.Name, "uid", name, "reason", m.Refused)
					continue
				}
				fetched++
				truncated := cfg.Limits.MaxSize > 0 && m.Size > cfg.Limits.MaxSize
				if _, err := rec.add(name, m.Raw, truncated); err != nil {
					return err
				}
			}
			// The whole IMAP batch is recorded before the cursor moves past it.
			res.Members += fetched
			members := res.Members
			err := rec.flushThen(ctx, func() error {
				if err := a.Store.SetIMAPCursor(ctx, box.Name, next.UIDValidity, next.LastUID, fetched); err != nil {
					return err
				}
				heartbeat(ctx, members)
				return nil
			})
			if err == nil && !keep {
				err = rec.sync(ctx)
			}
			return err
		})
	if err == nil {
		err = rec.wait(ctx)
	}
	if err != nil {
		return res, err
	}
	res.Status = "ingested"
	if res.Members == 0 && res.Refused == 0 {
		res.Status = contract.FetchUnchanged
	}
	rec.done()
	return res, nil
}
