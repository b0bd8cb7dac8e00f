package apiserve

import (
	"net/http"
	"time"

	"github.com/tip-project/tip/storage"
)

// Source is one blacklist source as /v1/sources shows it: its health, its
// last run and attempt, its metrics and the weight its listings count with.
type Source struct {
	Name    string `json:"name"`
	Format  string `json:"format"`
	Enabled bool   `json:"enabled"`
	// Health is ok, failing, dead or never-run (storage.DeadAfter failures
	// in a row, or a feed gone, make it dead).
	Health              string     `json:"health"`
	Dead                bool       `json:"dead"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	LastRun             *time.Time `json:"last_run"`    // null: never ran
	LastStatus          string     `json:"last_status"` // loaded, unchanged, dead, malformed, failed; "" never ran
	LastError           string     `json:"last_error"`
	LastSuccess         *time.Time `json:"last_success"` // the last run that fetched the feed
	LastAttempt         *time.Time `json:"last_attempt"` // the last request sent to the feed's host
	LastAttemptError    string     `json:"last_attempt_error"`
	ActiveListings      int64      `json:"active_listings"`
	Prior               float64    `json:"prior"`
	// Weight is what scores use: the computed weight, or the prior until the
	// first metrics.
	Weight  float64       `json:"weight"`
	Metrics SourceMetrics `json:"metrics"`
}

// SourceMetrics is what the last refresh measured of a source; ComputedAt
// null: not yet measured.
type SourceMetrics struct {
	ComputedAt     *time.Time `json:"computed_at"`
	Weight         float64    `json:"weight"`
	ExclusiveShare float64    `json:"exclusive_share"`
	MeanLatency    *float64   `json:"mean_latency_s"`
	Accuracy       float64    `json:"accuracy"`
	Allowlisted    int64      `json:"allowlisted"`
	Reserved       int64      `json:"reserved"`
	LastHTTPStatus int        `json:"last_http_status"`
	LastEntries    int        `json:"last_entries"`
	LastAdded      int        `json:"last_added"`
	LastRemoved    int        `json:"last_removed"`
	LastBadLines   int        `json:"last_bad_lines"`
}

// sourcesResponse is the answer of /v1/sources.
type sourcesResponse struct {
	Sources []Source `json:"sources"`
}

// sources answers GET /v1/sources: what `tip sources` shows, and each
// source's last success and last attempt.
func (s *Server) sources(w http.ResponseWriter, r *http.Request) {
	hs, err := s.store.SourcesHealth(r.Context())
	var states []storage.SourceState
	if err == nil {
		states, err = s.store.SourceStates(r.Context())
	}
	if err != nil {
		if r.Context().Err() == nil {
			s.refused.note("postgres", "sources", "api: reading the sources", "err", err)
			writeError(w, http.StatusServiceUnavailable, "cannot read the sources now; try again later")
		}
		return
	}
	byName := make(map[string]storage.SourceState, len(states))
	for _, st := range states {
		byName[st.Name] = st
	}
	resp := sourcesResponse{Sources: make([]Source, 0, len(hs))}
	for _, h := range hs {
		st := byName[h.Name]
		src := Source{Name: h.Name, Format: h.Format, Enabled: h.Enabled, Health: h.Health, Dead: h.Health == "dead",
			ConsecutiveFailures: h.ConsecutiveFailures, LastStatus: h.LastStatus, LastError: h.LastError,
			LastSuccess: st.LastSuccess, LastAttempt: st.LastAttempt, LastAttemptError: st.LastAttemptError,
			ActiveListings: h.Active, Prior: h.Prior, Weight: st.Weight,
			Metrics: SourceMetrics{ComputedAt: st.MetricsAt, Weight: h.Weight, ExclusiveShare: h.ExclusiveShare, MeanLatency: h.MeanLatency,
				Accuracy: h.Accuracy, Allowlisted: h.Allowlisted, Reserved: h.Reserved, LastHTTPStatus: h.LastHTTPStatus,
				LastEntries: h.LastEntries, LastAdded: h.LastAdded, LastRemoved: h.LastRemoved, LastBadLines: h.LastBad}}
		if h.LastStatus != "" {
			run := h.LastRun
			src.LastRun = &run
		}
		if _, ok := byName[h.Name]; !ok { // a source added between the two reads
			src.Weight = h.Prior
		}
		resp.Sources = append(resp.Sources, src)
	}
	writeJSON(w, http.StatusOK, resp)
}
