package activities

import (
	"context"
	"time"

	"github.com/tip-project/tip/storage"
)

// Bounds of one write of the flux writers.
const (
	fluxWriteMax  = 500                    // checks per transaction
	fluxWriteWait = 200 * time.Millisecond // how long the first check of a write waits for others
)

// batcher gathers the checks of every monitor and prober running on this
// worker into few transactions: thousands of domains each writing its own row
// would cost a transaction per check. A write returns once its transaction
// commits, so a check whose write returned is recorded.
type batcher[In, Out any] struct {
	write func(ctx context.Context, batch []In) ([]Out, error) // one result per input
	reqs  chan batchReq[In, Out]
}

type batchReq[In, Out any] struct {
	in   In
	done chan batchResult[Out]
}

type batchResult[Out any] struct {
	out Out
	err error
}

func newBatcher[In, Out any](write func(ctx context.Context, batch []In) ([]Out, error)) *batcher[In, Out] {
	b := &batcher[In, Out]{write: write, reqs: make(chan batchReq[In, Out], fluxWriteMax)}
	go b.run()
	return b
}

// do writes one input, together with whatever other inputs arrive meanwhile.
func (b *batcher[In, Out]) do(ctx context.Context, in In) (Out, error) {
	r := batchReq[In, Out]{in: in, done: make(chan batchResult[Out], 1)}
	var zero Out
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.out, res.err
	case <-ctx.Done():
		return zero, ctx.Err() // the write may still commit: a retried check is keyed by its due time, not recorded twice
	}
}

// run writes batches for the worker's lifetime: the first request opens a batch,
// which closes after fluxWriteWait or at fluxWriteMax inputs.
func (b *batcher[In, Out]) run() {
	for first := range b.reqs {
		batch := []batchReq[In, Out]{first}
		timer := time.NewTimer(fluxWriteWait)
	gather:
		for len(batch) < fluxWriteMax {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		ins := make([]In, len(batch))
		for i, r := range batch {
			ins[i] = r.in
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		outs, err := b.write(ctx, ins)
		cancel()
		for i, r := range batch {
			var res batchResult[Out]
			if res.err = err; err == nil && i < len(outs) {
				res.out = outs[i]
			}
			r.done <- res
		}
	}
}

// fluxWriter batches the writes of the monitors' own checks (CheckDomain).
func (a *Flux) fluxWriter() *batcher[storage.FluxWrite, struct{}] {
	a.writerOnce.Do(func() {
		a.writer = newBatcher(func(ctx context.Context, ws []storage.FluxWrite) ([]struct{}, error) {
			return nil, a.Store.RecordFluxChecks(ctx, ws)
		})
	})
	return a.writer
}

// probeWriter batches the probers' checks (RunProber); each write's result is
// how many addresses its domain showed for the first time.
func (a *Flux) probeWriter() *batcher[storage.ProbeCheck, int] {
	a.probeWriterOnce.Do(func() {
		a.probeWriterB = newBatcher(func(ctx context.Context, cs []storage.ProbeCheck) ([]int, error) {
			fresh, err := a.Store.RecordProbeChecks(ctx, cs)
			if err != nil {
				return nil, err
			}
			out := make([]int, len(cs))
			for i, c := range cs {
				out[i] = fresh[c.Write.Obs.Domain]
			}
			return out, nil
		})
	})
	return a.probeWriterB
}
