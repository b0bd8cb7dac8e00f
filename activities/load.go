package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/textcap"
	"github.com/tip-project/tip/workflows/contract"
)

// ParserOptions turns a catalog source's parser settings into feeds.Options.
func ParserOptions(s catalog.Source) feeds.Options {
	o := feeds.Options{CommentPrefix: s.Parser.Comment, Separator: s.Parser.Separator, Header: s.Parser.Header,
		Type: feeds.Type(s.Type), MaxBadShare: s.Parser.MaxBad, AllowUnterminated: s.Parser.AllowUnterminated}
	if s.Parser.Column > 0 {
		o.Column = s.Parser.Column - 1 // the catalog counts columns from 1
	}
	return o
}

// LoadSource parses the fetched content straight from S3 into a staging table with
// COPY and merges it into the listings in one transaction, together with the new
// validators and the run's record. Non-loading outcomes (unchanged, dead, failed)
// are recorded too. A retry of a committed load returns the recorded result. The
// result's error text and the error returned are capped at
// storage.MaxErrorText: both may quote the feed, and both travel in Temporal
// payloads (refused above 2 MB) into every refresh's summary.
func (a *Blacklist) LoadSource(ctx context.Context, in contract.LoadInput) (contract.LoadResult, error) {
	res, err := a.loadSource(ctx, in)
	res.Error = storage.ErrorText(res.Error)
	return res, textcap.Error(err, storage.MaxErrorText)
}

func (a *Blacklist) loadSource(ctx context.Context, in contract.LoadInput) (contract.LoadResult, error) {
	res := contract.LoadResult{Source: in.Source.Name}
	if in.Fetch.Status == contract.FetchNotDue || in.Fetch.Status == contract.FetchRateLimited {
		res.Status, res.Error = contract.RunSkipped, in.Fetch.Error
		return res, nil
	}
	if prev, ok, err := a.Store.RecordedRun(ctx, in.Source.Name, in.RunKey); err != nil || ok {
		return prev, err
	}
	switch in.Fetch.Status {
	case contract.FetchUnchanged:
		res.Status = contract.RunUnchanged
		return res, a.recordOutcome(ctx, in, res)
	case contract.FetchDead:
		res.Status, res.Error = contract.RunDead, in.Fetch.Error
		return res, a.recordOutcome(ctx, in, res)
	case contract.FetchFailed:
		res.Status, res.Error = contract.RunFailed, in.Fetch.Error
		return res, a.recordOutcome(ctx, in, res)
	case contract.FetchChanged:
	default:
		return res, fmt.Errorf("load %s: unknown fetch status %q", in.Source.Name, in.Fetch.Status)
	}

	body, _, err := a.Blobs.Open(ctx, in.Fetch.SHA256)
	if err != nil {
		return res, fmt.Errorf("load %s: %w", in.Source.Name, err)
	}
	defer body.Close()

	// Heartbeat on a timer for the whole load, the merge included (one long
	// statement): a worker that died is noticed within the heartbeat timeout.
	stopBeat := heartbeatEvery(ctx, 5*time.Second)
	defer stopBeat()

	listings, err := a.Store.BeginListingLoad(ctx, in.Source.Name)
	if err != nil {
		return res, fmt.Errorf("load %s: %w", in.Source.Name, err)
	}
	defer listings.Rollback(ctx)

	copied, stats, parseErr, copyErr := listings.CopyParsed(ctx, in.Source.Format, ParserOptions(in.Source), body,
		func(rows int) { heartbeat(ctx, rows) })
	res.Entries, res.Bad = int(copied), stats.Bad
	for _, n := range stats.Dropped {
		res.Dropped += n
	}
	switch {
	case parseErr != nil && (errors.Is(parseErr, feeds.ErrMalformed) || errors.Is(parseErr, feeds.ErrUnknownFormat)):
		// The error names the count of bad lines and quotes their samples.
		res.Status, res.Error = contract.RunMalformed, parseErr.Error()
		listings.Rollback(ctx)
		return res, a.recordOutcome(ctx, in, res)
	case copyErr != nil:
		return res, fmt.Errorf("load %s: copy: %w", in.Source.Name, copyErr)
	case parseErr != nil:
		return res, fmt.Errorf("load %s: parse: %w", in.Source.Name, parseErr)
	}
	heartbeat(ctx, res.Entries)

	merged, err := listings.Merge(ctx)
	if err != nil {
		return res, fmt.Errorf("load %s: merge: %w", in.Source.Name, err)
	}
	res.Entries, res.Added, res.Removed = merged.Entries, merged.Added, merged.Removed
	res.Status = contract.RunLoaded
	return res, listings.Commit(ctx, storage.SourceRun{RunKey: in.RunKey, Fetch: in.Fetch, Result: res})
}

// recordOutcome records a run that loads nothing (storage.DB.RecordRunOutcome),
// counting failures for health.
func (a *Blacklist) recordOutcome(ctx context.Context, in contract.LoadInput, res contract.LoadResult) error {
	return a.Store.RecordRunOutcome(ctx, sourceRow(in.Source), storage.SourceRun{RunKey: in.RunKey, Fetch: in.Fetch, Result: res})
}

// heartbeatEvery records a heartbeat every d until stopped (outside an activity,
// in tests, it does nothing).
func heartbeatEvery(ctx context.Context, d time.Duration) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// sourceRow is what storage keeps of a catalog source.
func sourceRow(src catalog.Source) storage.SourceRow {
	return storage.SourceRow{Name: src.Name, URL: src.URL, Format: src.Format, Type: src.Type, Prior: src.Prior,
		Enabled: src.Enabled, Category: src.Category, Licence: src.Licence, TLP: src.TLP}
}

// OwnSourcesTLP is the TLP of TIP's own sources (tip-spamtrap-senders,
// tip-flux-agents): what an operator's own spamtraps and monitors observed is
// shared with its community (green), not published to the world, unless an
// analyst exports it otherwise.
const OwnSourcesTLP = "green"
