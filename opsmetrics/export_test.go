package opsmetrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// For the integration tests (package opsmetrics_test): gathering a collector
// as a registry serves it, and checking series.
var Absent = absent

func Scrape(t *testing.T, c prometheus.Collector) map[string]float64 { t.Helper(); return scrape(t, c) }

func Check(t *testing.T, got, want map[string]float64) { t.Helper(); check(t, got, want) }
