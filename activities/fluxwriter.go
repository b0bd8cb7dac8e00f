package activities

import (
	"context"
	"time"

	"github.com/tip-project/tip/storage"
)

// Bounds of one write of the flux writer.
const (
	fluxWriteMax  = 500                    // checks per transaction
	fluxWriteWait = 200 * time.Millisecond // how long the first check of a write waits for others
)

// fluxWriter gathers the checks of every monitor running on this worker into
// few transactions: thousands of monitors each writing its own row would cost a
// transaction per check. A check's write returns once its transaction commits,
// so a check that returned is recorded.
type fluxWriter struct {
	db   FluxStore
	reqs chan fluxWriteReq
}

type fluxWriteReq struct {
	w    storage.FluxWrite
	done chan error
}

func (a *Flux) fluxWriter() *fluxWriter {
	a.writerOnce.Do(func() {
		a.writer = &fluxWriter{db: a.Store, reqs: make(chan fluxWriteReq, fluxWriteMax)}
		go a.writer.run()
	})
	return a.writer
}

// write records one check, together with whatever other checks arrive meanwhile.
func (f *fluxWriter) write(ctx context.Context, w storage.FluxWrite) error {
	r := fluxWriteReq{w: w, done: make(chan error, 1)}
	select {
	case f.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the write may still commit: a retried check is keyed by its time, not recorded twice
	}
}

// run writes batches for the worker's lifetime: the first request opens a batch,
// which closes after fluxWriteWait or at fluxWriteMax checks.
func (f *fluxWriter) run() {
	for first := range f.reqs {
		batch := []fluxWriteReq{first}
		timer := time.NewTimer(fluxWriteWait)
	gather:
		for len(batch) < fluxWriteMax {
			select {
			case r := <-f.reqs:
				batch = append(batch, r)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		ws := make([]storage.FluxWrite, len(batch))
		for i, r := range batch {
			ws[i] = r.w
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := f.db.RecordFluxChecks(ctx, ws)
		cancel()
		for _, r := range batch {
			r.done <- err
		}
	}
}
