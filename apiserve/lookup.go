package apiserve

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/tip-project/tip/lookup"
	"github.com/tip-project/tip/storage"
)

// Lookuper answers what is known of one value: lookup.Index from memory, or
// SQLLookuper.
type Lookuper interface {
	Lookup(ctx context.Context, q lookup.Query) (lookup.Document, error)
}

// SQLLookuper answers lookups with SQL, a few queries a value (lookup.FromDB).
type SQLLookuper struct{ DB *storage.DB }

// Lookup answers q at the time of the call (the score's decay).
func (l SQLLookuper) Lookup(ctx context.Context, q lookup.Query) (lookup.Document, error) {
	return lookup.FromDB(ctx, l.DB, q, time.Now())
}

// lookupResult is one value's answer: its document, or why it has none.
type lookupResult struct {
	doc *lookup.Document
	err *lookupError
}

// lookupError is a value that could not be looked up: not a valid indicator,
// or in space TIP drops.
type lookupError struct {
	Query string `json:"query"`
	Error string `json:"error"`
}

func (r lookupResult) MarshalJSON() ([]byte, error) {
	if r.err != nil {
		return json.Marshal(r.err)
	}
	return json.Marshal(r.doc)
}

// lookupResponse is the answer of /v1/lookup: one result a value, in order.
type lookupResponse struct {
	Results []lookupResult `json:"results"`
}

// lookupRequest is the body of POST /v1/lookup.
type lookupRequest struct {
	Values []string `json:"values"`
}

// lookupGET answers GET /v1/lookup?q=VALUE[&q=VALUE...].
func (s *Server) lookupGET(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	for k := range query {
		if k != "q" {
			writeError(w, http.StatusBadRequest, "unknown parameter %q: want q=VALUE, repeated for more values", k)
			return
		}
	}
	s.answerLookup(w, r, query["q"])
}

// lookupPOST answers POST /v1/lookup with {"values": [...]}.
func (s *Server) lookupPOST(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "send the values as application/json: {\"values\": [...]}")
		return
	}
	var req lookupRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("more than one JSON value")
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "the body is over %d bytes", tooLarge.Limit)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "the body is not {\"values\": [...]}: %v", err)
		return
	}
	s.answerLookup(w, r, req.Values)
}

// answerLookup looks every value up, in order. A value that is no valid
// indicator gets its error inline; a failure of the lookup itself fails the
// request.
func (s *Server) answerLookup(w http.ResponseWriter, r *http.Request, values []string) {
	switch {
	case len(values) == 0:
		writeError(w, http.StatusBadRequest, "no value to look up: GET ?q=VALUE, or POST {\"values\": [...]}")
		return
	case len(values) > s.cfg.MaxLookupValues:
		writeError(w, http.StatusBadRequest, "%d values: at most %d a request", len(values), s.cfg.MaxLookupValues)
		return
	}
	resp := lookupResponse{Results: make([]lookupResult, 0, len(values))}
	for _, v := range values {
		q, err := lookup.Parse(v)
		if err != nil {
			resp.Results = append(resp.Results, lookupResult{err: &lookupError{Query: v, Error: err.Error()}})
			continue
		}
		doc, err := s.lookup.Lookup(r.Context(), q)
		if err != nil {
			if r.Context().Err() != nil {
				return // the client left
			}
			s.refused.note("lookup", "failed", "api: lookup failed", "err", err)
			writeError(w, http.StatusServiceUnavailable, "cannot look %q up now; try again later", v)
			return
		}
		resp.Results = append(resp.Results, lookupResult{doc: &doc})
	}
	writeJSON(w, http.StatusOK, resp)
}
