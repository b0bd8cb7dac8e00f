// Package taxii is TIP's read-only TAXII 2.1 server (OASIS, 2021): an
// http.Handler that `tip serve api` mounts under /taxii2/ behind its token
// authentication. It serves one API root, /taxii2/tip/, with three collections:
// the listed indicators scoring at least a minimum, the indicators TIP's own
// sources list, and the fast-flux networks, as STIX 2.1 objects. Every version
// an object had is kept with the time it was added (storage.SyncTAXII makes
// them), so a client pages by date added and never misses a version.
package taxii

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/storage"
)

// The media types: of every TAXII response, and of the STIX objects the
// collections hold.
const (
	MediaTAXII = "application/taxii+json;version=2.1"
	MediaSTIX  = "application/stix+json;version=2.1"
)

// APIRoot is the name of TIP's one API root (/taxii2/tip/).
const APIRoot = "tip"

// Config configures the server.
type Config struct {
	// Prefix is the path the handler is mounted at: /taxii2/ when empty. A
	// handler mounted behind http.StripPrefix serves the same paths.
	Prefix string
	// BaseURL is Prefix's absolute URL as clients reach it (behind a proxy, say),
	// for the discovery resource's API root URLs; when empty it is made from the
	// request (its Host, https when TLS or X-Forwarded-Proto says so).
	BaseURL string
	// Title, Description and Contact describe the server in its discovery
	// resource; Title defaults to "TIP".
	Title, Description, Contact string
	// MinScore is the score the indicators collection's indicators reach (FromDB
	// syncs with it; the collection's description says it).
	MinScore float64
	// PageSize is how many objects a page holds when the client sets no limit
	// (1000 when zero); MaxPageSize the most a client may ask for (10000 when
	// zero).
	PageSize, MaxPageSize int
	// MaxContentLength is the API root's max_content_length: the largest request
	// body accepted (the server takes none: it is read-only); 1 MiB when zero.
	MaxContentLength int
	// SyncEvery is how often FromDB's source brings the collections up to date
	// (storage.SyncTAXII, in the background) when requests come: every minute
	// when zero, never when negative.
	SyncEvery time.Duration
	// Log receives the errors of the source; slog's default logger when nil.
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "/taxii2/"
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.Title == "" {
		c.Title = "TIP"
	}
	if c.PageSize <= 0 {
		c.PageSize = 1000
	}
	if c.MaxPageSize <= 0 {
		c.MaxPageSize = 10000
	}
	c.PageSize = min(c.PageSize, c.MaxPageSize)
	if c.MaxContentLength <= 0 {
		c.MaxContentLength = 1 << 20
	}
	if c.SyncEvery == 0 {
		c.SyncEvery = time.Minute
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Collection is one of TIP's collections.
type Collection struct {
	Key         string   `json:"-"` // storage's key (storage.TAXIIIndicators, ...)
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Alias       string   `json:"alias"`
	CanRead     bool     `json:"can_read"`
	CanWrite    bool     `json:"can_write"`
	MediaTypes  []string `json:"media_types"`
}

// CollectionID is the id of a collection: a version-5 UUID of its key in TIP's
// namespace, the same on every TIP.
func CollectionID(key string) string { return export.UUIDv5("tip:taxii-collection:" + key) }

// Collections are TIP's collections; minScore is the indicators collection's.
func Collections(minScore float64) []Collection {
	c := func(key, title, desc string) Collection {
		return Collection{Key: key, ID: CollectionID(key), Title: title, Description: desc, Alias: key,
			CanRead: true, MediaTypes: []string{MediaSTIX}}
	}
	return []Collection{
		c(storage.TAXIIIndicators, "TIP indicators",
			fmt.Sprintf("Every indicator TIP's sources list that scores %.2f or more, as STIX 2.1 indicators; revoked when TIP stops standing by it.", minScore)),
		c(storage.TAXIIOwnSources, "TIP's own sources",
			"The indicators TIP's own sources list (tip-spamtrap-senders, tip-flux-agents, ...), whatever their score."),
		c(storage.TAXIIFluxNetworks, "Fast-flux networks",
			"The fast-flux networks TIP watches: an infrastructure (botnet) per network, consisting of its domains and flux agents' addresses."),
	}
}

// Source reads the versions of a collection's objects (storage's TAXIIObjects;
// FromDB).
type Source interface {
	Objects(ctx context.Context, q Query) ([]Entry, error)
}

// Query, Entry and Position are storage's: what a source is asked and answers.
type (
	Query    = storage.TAXIIQuery
	Entry    = storage.TAXIIEntry
	Position = storage.TAXIIPosition
)

// New is the TAXII 2.1 server reading from src.
func New(cfg Config, src Source) http.Handler {
	cfg = cfg.withDefaults()
	s := &server{cfg: cfg, src: src, collections: map[string]Collection{}}
	for _, c := range Collections(cfg.MinScore) {
		s.collections[c.ID] = c
		s.order = append(s.order, c.ID)
	}
	return s
}

type server struct {
	cfg         Config
	src         Source
	collections map[string]Collection
	order       []string
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, http.StatusMethodNotAllowed, "Method not allowed", "TIP's TAXII server is read-only: it answers GET and HEAD.")
		return
	}
	if !acceptable(r.Header.Values("Accept")) {
		s.fail(w, http.StatusNotAcceptable, "Not acceptable", "This server answers "+MediaTAXII+" only.")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, s.cfg.Prefix)
	if !ok {
		rest = strings.TrimPrefix(r.URL.Path, "/") // mounted behind http.StripPrefix
	}
	var seg []string
	if rest = strings.Trim(rest, "/"); rest != "" {
		seg = strings.Split(rest, "/")
	}
	switch {
	case len(seg) == 0:
		s.discovery(w, r)
		return
	case seg[0] != APIRoot:
	case len(seg) == 1:
		s.write(w, http.StatusOK, map[string]any{"title": s.cfg.Title, "description": "TIP's threat intelligence: blacklists weighed, spamtraps, fast-flux networks.",
			"versions": []string{MediaTAXII}, "max_content_length": s.cfg.MaxContentLength})
		return
	case seg[1] != "collections":
	case len(seg) == 2:
		list := make([]Collection, len(s.order))
		for i, id := range s.order {
			list[i] = s.collections[id]
		}
		s.write(w, http.StatusOK, map[string]any{"collections": list})
		return
	default:
		c, known := s.collections[seg[2]]
		switch {
		case !known:
			s.fail(w, http.StatusNotFound, "Collection not found", fmt.Sprintf("There is no collection %q in this API root.", seg[2]))
			return
		case len(seg) == 3:
			s.write(w, http.StatusOK, c)
			return
		case len(seg) == 4 && seg[3] == "objects":
			s.objects(w, r, c, "")
			return
		case len(seg) == 4 && seg[3] == "manifest":
			s.manifest(w, r, c)
			return
		case len(seg) == 5 && seg[3] == "objects":
			s.objects(w, r, c, seg[4])
			return
		case len(seg) == 6 && seg[3] == "objects" && seg[5] == "versions":
			s.versions(w, r, c, seg[4])
			return
		}
	}
	s.fail(w, http.StatusNotFound, "Not found", fmt.Sprintf("%s is no TAXII resource of this server.", r.URL.Path))
}

// acceptable says whether an Accept header allows TAXII 2.1's media type: no
// header, */*, application/*, application/taxii+json, with version=2.1 if any.
func acceptable(values []string) bool {
	var ranges []string
	for _, v := range values {
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				ranges = append(ranges, r)
			}
		}
	}
	if len(ranges) == 0 {
		return true
	}
	for _, r := range ranges {
		typ, params, err := mime.ParseMediaType(r)
		if err != nil {
			continue
		}
		if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q == 0 {
			continue
		}
		switch typ {
		case "*/*", "application/*":
			return true
		case "application/taxii+json":
			if v, ok := params["version"]; !ok || v == "2.1" {
				return true
			}
		}
	}
	return false
}

func (s *server) discovery(w http.ResponseWriter, r *http.Request) {
	base := s.cfg.BaseURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
			scheme = "https"
		}
		base = scheme + "://" + r.Host + s.cfg.Prefix
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	d := map[string]any{"title": s.cfg.Title, "default": base + APIRoot + "/", "api_roots": []string{base + APIRoot + "/"}}
	if s.cfg.Description != "" {
		d["description"] = s.cfg.Description
	}
	if s.cfg.Contact != "" {
		d["contact"] = s.cfg.Contact
	}
	s.write(w, http.StatusOK, d)
}

// envelope is TAXII's envelope of objects; manifest and versions have theirs.
type envelope struct {
	More    bool              `json:"more"`
	Next    string            `json:"next,omitempty"`
	Objects []json.RawMessage `json:"objects,omitempty"`
}

type manifestRecord struct {
	ID        string `json:"id"`
	DateAdded string `json:"date_added"`
	Version   string `json:"version"`
	MediaType string `json:"media_type"`
}

// dateAdded formats a date added as TAXII timestamps are, to the microsecond.
func dateAdded(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func (s *server) objects(w http.ResponseWriter, r *http.Request, c Collection, id string) {
	q, limit, ok := s.query(w, r, c, id, true)
	if !ok {
		return
	}
	page, more, ok := s.read(w, r, q, limit)
	if !ok {
		return
	}
	if len(page) == 0 && id != "" && !s.exists(w, r, c, id) {
		return
	}
	env := envelope{More: more}
	for _, e := range page {
		env.Objects = append(env.Objects, e.Object)
	}
	if more {
		env.Next = encodeNext(page[len(page)-1])
	}
	s.dated(w, page)
	s.write(w, http.StatusOK, env)
}

func (s *server) manifest(w http.ResponseWriter, r *http.Request, c Collection) {
	q, limit, ok := s.query(w, r, c, "", false)
	if !ok {
		return
	}
	page, more, ok := s.read(w, r, q, limit)
	if !ok {
		return
	}
	m := struct {
		More    bool             `json:"more"`
		Next    string           `json:"next,omitempty"`
		Objects []manifestRecord `json:"objects,omitempty"`
	}{More: more}
	for _, e := range page {
		m.Objects = append(m.Objects, manifestRecord{ID: e.ID, DateAdded: dateAdded(e.DateAdded), Version: export.STIXTime(e.Version), MediaType: MediaSTIX})
	}
	if more {
		m.Next = encodeNext(page[len(page)-1])
	}
	s.dated(w, page)
	s.write(w, http.StatusOK, m)
}

func (s *server) versions(w http.ResponseWriter, r *http.Request, c Collection, id string) {
	q, limit, ok := s.query(w, r, c, id, false)
	if !ok {
		return
	}
	q.Last, q.First, q.All, q.At = false, false, true, nil
	page, more, ok := s.read(w, r, q, limit)
	if !ok {
		return
	}
	if len(page) == 0 && !s.exists(w, r, c, id) {
		return
	}
	v := struct {
		More     bool     `json:"more"`
		Next     string   `json:"next,omitempty"`
		Versions []string `json:"versions,omitempty"`
	}{More: more}
	for _, e := range page {
		v.Versions = append(v.Versions, export.STIXTime(e.Version))
	}
	if more {
		v.Next = encodeNext(page[len(page)-1])
	}
	s.dated(w, page)
	s.write(w, http.StatusOK, v)
}

// query reads a request's filters (TAXII 2.1 §3.5): added_after, limit, next,
// match[id], match[type], match[version], match[spec_version]. An object's
// own resources (id not empty) take no id or type filter.
func (s *server) query(w http.ResponseWriter, r *http.Request, c Collection, id string, objects bool) (Query, int, bool) {
	p := r.URL.Query()
	q := Query{Collection: c.Key, Objects: objects}
	bad := func(format string, args ...any) (Query, int, bool) {
		s.fail(w, http.StatusBadRequest, "Bad request", fmt.Sprintf(format, args...))
		return q, 0, false
	}
	list := func(name string) []string {
		var out []string
		for _, v := range p[name] {
			for _, x := range strings.Split(v, ",") {
				if x = strings.TrimSpace(x); x != "" {
					out = append(out, x)
				}
			}
		}
		return out
	}
	if v := p.Get("added_after"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return bad("added_after %q is no RFC 3339 timestamp.", v)
		}
		q.AddedAfter = t.UTC()
	}
	limit := s.cfg.PageSize
	if v := p.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return bad("limit %q is no positive integer.", v)
		}
		limit = min(n, s.cfg.MaxPageSize)
	}
	if v := p.Get("next"); v != "" {
		pos, err := decodeNext(v)
		if err != nil {
			return bad("next %q is not a cursor this server gave.", v)
		}
		q.After = &pos
	}
	if id != "" {
		q.IDs = []string{id}
	} else {
		q.IDs, q.Types = list("match[id]"), list("match[type]")
	}
	for _, v := range list("match[version]") {
		switch v {
		case "last":
			q.Last = true
		case "first":
			q.First = true
		case "all":
			q.All = true
		default:
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return bad("match[version] %q is neither last, first, all nor a timestamp.", v)
			}
			q.At = append(q.At, t.UTC())
		}
	}
	if sv := list("match[spec_version]"); len(sv) > 0 && !slices.Contains(sv, "2.1") {
		q.Types = []string{"-"} // every object here is STIX 2.1: none matches
	}
	return q, limit, true
}

// read reads a page: up to limit versions, and whether more follow.
func (s *server) read(w http.ResponseWriter, r *http.Request, q Query, limit int) ([]Entry, bool, bool) {
	q.Limit = limit + 1
	page, err := s.src.Objects(r.Context(), q)
	if err != nil {
		s.cfg.Log.Error("taxii: read", "collection", q.Collection, "err", err)
		s.fail(w, http.StatusInternalServerError, "Internal error", "The collection could not be read; try again later.")
		return nil, false, false
	}
	more := len(page) > limit
	if more {
		page = page[:limit]
	}
	return page, more, true
}

// exists says whether the collection holds the object, answering 404 when not.
func (s *server) exists(w http.ResponseWriter, r *http.Request, c Collection, id string) bool {
	page, err := s.src.Objects(r.Context(), Query{Collection: c.Key, IDs: []string{id}, All: true, Limit: 1})
	if err != nil {
		s.cfg.Log.Error("taxii: read", "collection", c.Key, "err", err)
		s.fail(w, http.StatusInternalServerError, "Internal error", "The collection could not be read; try again later.")
		return false
	}
	if len(page) == 0 {
		s.fail(w, http.StatusNotFound, "Object not found", fmt.Sprintf("The collection holds no object %q.", id))
		return false
	}
	return true
}

// dated sets the headers naming the first and last date added of a page.
func (s *server) dated(w http.ResponseWriter, page []Entry) {
	if len(page) == 0 {
		return
	}
	w.Header().Set("X-TAXII-Date-Added-First", dateAdded(page[0].DateAdded))
	w.Header().Set("X-TAXII-Date-Added-Last", dateAdded(page[len(page)-1].DateAdded))
}

// cursor is what next holds: the place of the page's last version.
type cursor struct {
	DateAdded time.Time `json:"a"`
	ID        string    `json:"i"`
	Version   time.Time `json:"v"`
}

func encodeNext(e Entry) string {
	b, _ := json.Marshal(cursor{e.DateAdded, e.ID, e.Version})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeNext(s string) (Position, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Position{}, err
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return Position{}, err
	}
	if c.ID == "" || c.DateAdded.IsZero() {
		return Position{}, errors.New("incomplete cursor")
	}
	return Position{DateAdded: c.DateAdded.UTC(), ID: c.ID, Version: c.Version.UTC()}, nil
}

func (s *server) write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.cfg.Log.Error("taxii: encode", "err", err)
		status, b = http.StatusInternalServerError, []byte(`{"title":"Internal error","http_status":"500"}`)
	}
	w.Header().Set("Content-Type", MediaTAXII)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b) //nolint:errcheck
}

// fail answers TAXII's error message.
func (s *server) fail(w http.ResponseWriter, status int, title, description string) {
	s.write(w, status, map[string]string{"title": title, "description": description, "http_status": strconv.Itoa(status)})
}
