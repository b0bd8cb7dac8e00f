package apiserve

import (
	"encoding/json"
	"net/http"
	"net/netip"

	"github.com/tip-project/tip/flux"
)

// passiveDNS answers GET /v1/pdns?q=NAME|IP with what TIP's flux checks saw,
// in the Passive DNS Common Output Format (draft-dulaunoy-dnsop-passive-dns-
// cof): one JSON object a line, rrname, rrtype, rdata, time_first, time_last
// and count, most recently seen first; none is an empty body.
func (s *Server) passiveDNS(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	for k := range query {
		if k != "q" {
			writeError(w, http.StatusBadRequest, "unknown parameter %q: want q=NAME or q=IP", k)
			return
		}
	}
	vs := query["q"]
	if len(vs) != 1 {
		writeError(w, http.StatusBadRequest, "want one q=NAME or q=IP")
		return
	}
	q := vs[0]
	if a, err := netip.ParseAddr(q); err == nil {
		q = a.Unmap().String()
	} else if d, ok := flux.NormalizeDomain(q); ok {
		q = d
	} else {
		writeError(w, http.StatusBadRequest, "%q is neither an address nor a domain name", vs[0])
		return
	}
	rs, err := s.store.PassiveDNS(r.Context(), q)
	if err != nil {
		if r.Context().Err() == nil {
			s.refused.note("pdns", "failed", "api: passive DNS failed", "err", err)
			writeError(w, http.StatusServiceUnavailable, "cannot read the passive DNS of %q now; try again later", q)
		}
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	enc := json.NewEncoder(w)
	for _, rec := range rs {
		if err := enc.Encode(rec); err != nil {
			return
		}
	}
}
