package worker

import (
	"context"
	"log/slog"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/tip-project/tip/flux/resolver"
	"github.com/tip-project/tip/storage"
)

const (
	// presenceEvery is how often a worker records that it is alive and learns how
	// many workers share the upstreams' limits.
	presenceEvery = 10 * time.Second
	// presenceLive: a worker not heard from for this long is counted gone.
	presenceLive = 3 * presenceEvery
)

// presence records a worker in the workers table and gives its resolver its share
// of the DNS rate all workers of the task queue share: flux.qps / live workers.
// A new worker counts itself at once; the others learn of it within
// presenceEvery, so for that long the servers may see up to one worker's share
// more than flux.qps.
type presence struct {
	db       *storage.DB
	identity string
	queue    string
	qps      float64
	res      *resolver.Resolver
	log      *slog.Logger

	live  int
	gauge prom.Gauge
	share prom.Gauge
}

func newPresence(db *storage.DB, identity, queue string, qps float64, res *resolver.Resolver, registry *prom.Registry, log *slog.Logger) *presence {
	p := &presence{db: db, identity: identity, queue: queue, qps: qps, res: res, log: log,
		gauge: prom.NewGauge(prom.GaugeOpts{Name: "tip_worker_live_workers",
			Help: "Workers of this task queue alive in the workers table, this one included."}),
		share: prom.NewGauge(prom.GaugeOpts{Name: "tip_flux_dns_qps_share",
			Help: "This worker's share of flux.qps: the most queries per second it sends to one DNS server."}),
	}
	registry.MustRegister(p.gauge, p.share)
	return p
}

// beat records the worker alive and applies its share; a failure keeps the share
// it had (the database may be restarting).
func (p *presence) beat(ctx context.Context) {
	live, err := p.db.WorkerAlive(ctx, p.identity, p.queue, presenceLive)
	if err != nil {
		p.log.Warn("worker presence not recorded; the DNS rate share stays", "err", err, "live_workers", p.live)
		return
	}
	if live == p.live {
		return
	}
	share := p.qps / float64(live)
	p.res.SetRate(share)
	p.gauge.Set(float64(live))
	p.share.Set(share)
	p.log.Info("workers sharing the upstreams", "live_workers", live, "dns_qps_per_server", share, "flux_qps", p.qps)
	p.live = live
}

// run beats every presenceEvery until ctx ends, then removes the worker so the
// others take its share at their next beat.
func (p *presence) run(ctx context.Context) {
	t := time.NewTicker(presenceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := p.db.WorkerGone(gctx, p.identity); err != nil {
				p.log.Warn("worker presence not removed; it expires", "err", err)
			}
			return
		case <-t.C:
			p.beat(ctx)
		}
	}
}
