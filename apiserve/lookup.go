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

// lookupGET answers GET /v1/lookup?q=VALUE with the value's document, the
// one `tip lookup --json` prints; many values are POST's.
func (s *Server) lookupGET(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	for k := range query {
		if k != "q" {
			writeError(w, http.StatusBadRequest, "unknown parameter %q: want q=VALUE", k)
			return
		}
	}
	switch vs := query["q"]; {
	case len(vs) == 0:
		writeError(w, http.StatusBadRequest, "no value to look up: GET ?q=VALUE, or POST {\"values\": [...]}")
	case len(vs) > 1:
		writeError(w, http.StatusBadRequest, "%d values: GET looks one up; POST {\"values\": [...]} looks up many", len(vs))
	default:
		q, err := lookup.Parse(vs[0])
		if err != nil {
			writeError(w, http.StatusBadRequest, "%s", err.Error())
			return
		}
		doc, ok := s.lookupOne(w, r, vs[0], q)
		if ok {
			writeJSON(w, http.StatusOK, doc)
		}
	}
}

// lookupOne looks one parsed value up; on a failure of the lookup itself it
// answers 503 (or nothing, when the client left) and returns false.
func (s *Server) lookupOne(w http.ResponseWriter, r *http.Request, v string, q lookup.Query) (lookup.Document, bool) {
	doc, err := s.lookup.Lookup(r.Context(), q)
	if err != nil {
		if r.Context().Err() == nil {
			s.refused.note("lookup", "failed", "api: lookup failed", "err", err)
			writeError(w, http.StatusServiceUnavailable, "cannot look %q up now; try again later", v)
		}
		return doc, false
	}
	return doc, true
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
	if err == nil {
		// A second value, or the end; a body over the bound is too large
		// whatever it holds.
		switch err2 := dec.Decode(&struct{}{}); {
		case err2 == io.EOF:
		case errors.As(err2, new(*http.MaxBytesError)):
			err = err2
		default:
			err = errors.New("more than one JSON value")
		}
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
		writeError(w, http.StatusBadRequest, "no value to look up: POST {\"values\": [...]}")
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
		doc, ok := s.lookupOne(w, r, v, q)
		if !ok {
			return
		}
		resp.Results = append(resp.Results, lookupResult{doc: &doc})
	}
	writeJSON(w, http.StatusOK, resp)
}
