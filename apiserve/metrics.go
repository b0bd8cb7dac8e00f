package apiserve

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics, on a registry of its own.
type metrics struct {
	registry    *prometheus.Registry
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	refused     *prometheus.CounterVec
	conns       prometheus.Gauge
	verify      prometheus.Histogram
	generations *prometheus.CounterVec
	generation  prometheus.Gauge
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tip_api_requests_total",
			Help: "Requests answered, by route (the pattern; other: no route) and status code (aborted: a stream broken off)."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tip_api_request_duration_seconds",
			Help:    "Time from a request's head to the end of its answer, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"route"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tip_api_refused_total",
			Help: "Connections and requests refused, by reason: max_conns, max_conns_per_client, no_token, unknown_token, expired_token, revoked_token, scope, rate."}, []string{"reason"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tip_api_open_connections",
			Help: "Client connections open."}),
		verify: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tip_api_token_verify_seconds",
			Help:    "Time to verify a request's token in PostgreSQL.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1}}),
		generations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tip_api_misp_generations_total",
			Help: "MISP feeds generated, by result (ok, failed)."}, []string{"result"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tip_api_misp_generation_seconds",
			Help: "How long the last MISP feed took to generate."}),
	}
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tip_api_version_age_seconds",
		Help: "Seconds since the exports' version was last read (0: never)."}, func() float64 {
		at := s.versionAt.Load()
		if at == 0 {
			return 0
		}
		return time.Since(time.Unix(0, at)).Seconds()
	})
	m.registry.MustRegister(m.requests, m.duration, m.refused, m.conns, m.verify, m.generations, m.generation, age)
	return m
}
