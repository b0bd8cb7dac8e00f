package dnsserve

import (
	"strconv"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics.
type metrics struct {
	registry  *prometheus.Registry
	queries   *prometheus.CounterVec
	transfers *prometheus.CounterVec
	notifies  *prometheus.CounterVec
	serials   *prometheus.GaugeVec
	limited   prometheus.Counter
	listings  prometheus.Gauge
	changes   prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tip_dns_queries_total",
			Help: "DNS queries answered, by zone, query type and rcode."}, []string{"zone", "qtype", "rcode"}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tip_dns_transfers_total",
			Help: "Zone transfers, by zone and kind (axfr, ixfr, current: the client was up to date, refused)."}, []string{"zone", "kind"}),
		notifies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tip_dns_notifies_total",
			Help: "NOTIFY messages to secondaries, by zone and result."}, []string{"zone", "result"}),
		serials: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tip_dns_zone_serial",
			Help: "The SOA serial of each RPZ zone."}, []string{"zone"}),
		limited: prometheus.NewCounter(prometheus.CounterOpts{Name: "tip_dns_rate_limited_total",
			Help: "Queries dropped by the per-client rate limit."}),
		listings: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tip_dns_index_listings",
			Help: "Listed indicators the index holds."}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{Name: "tip_dns_index_changes_total",
			Help: "Listing changes applied to the index."}),
	}
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tip_dns_index_age_seconds",
		Help: "Seconds since the index was last brought up to date."}, func() float64 {
		s.updateMu.Lock()
		defer s.updateMu.Unlock()
		if s.updatedAt.IsZero() {
			return 0
		}
		return time.Since(s.updatedAt).Seconds()
	})
	m.registry.MustRegister(m.queries, m.transfers, m.notifies, m.serials, m.limited, m.listings, m.changes, age)
	return m
}

func (m *metrics) query(zone, qtype string, rcode int) {
	rc := dns.RcodeToString[rcode]
	if rc == "" {
		rc = strconv.Itoa(rcode)
	}
	m.queries.WithLabelValues(zone, qtype, rc).Inc()
}

func (m *metrics) transfer(zone, kind string) { m.transfers.WithLabelValues(zone, kind).Inc() }
func (m *metrics) notify(zone, result string) { m.notifies.WithLabelValues(zone, result).Inc() }

func (m *metrics) loaded(d *data) { m.updated(d, 0) }

// updated records the index's size and the zones' serials (d unlocked).
func (m *metrics) updated(d *data, changes int) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	m.listings.Set(float64(len(d.entries)))
	m.changes.Add(float64(changes))
	for _, z := range d.rpz {
		m.serials.WithLabelValues(z.origin).Set(float64(z.serial))
	}
}
