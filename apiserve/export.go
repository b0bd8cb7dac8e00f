package apiserve

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/storage"
)

// formatInfo is how an export format is served: its media type and the
// extension of the file it is saved as.
type formatInfo struct {
	ContentType string
	Ext         string
}

// formats serves every format of export.Formats.
var formats = map[string]formatInfo{
	"plain":               {"text/plain; charset=utf-8", "txt"},
	"csv":                 {"text/csv; charset=utf-8", "csv"},
	"json":                {"application/x-ndjson", "jsonl"}, // a row a line
	"rpz":                 {"text/dns", "zone"},              // a zone file, RFC 4027
	"nft":                 {"text/plain; charset=utf-8", "nft"},
	"zeek":                {"text/plain; charset=utf-8", "intel"},
	"suricata":            {"text/csv; charset=utf-8", "list"},
	"suricata-categories": {"text/csv; charset=utf-8", "txt"},
	"stix":                {"application/stix+json;version=2.1", "json"},
}

// exportParams are an export's query parameters.
type exportParams struct {
	Types       []string // sorted; empty: every type
	MinScore    float64
	Allowlisted bool // include_allowlisted
}

// parseExportParams reads type (repeated or comma-separated), min_score and
// include_allowlisted; an unknown parameter is an error, so a typo is not
// silently an export of everything.
func parseExportParams(q url.Values, minScore float64) (exportParams, error) {
	p := exportParams{MinScore: minScore}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "type":
			for _, v := range vs {
				for t := range strings.SplitSeq(v, ",") {
					if t = strings.TrimSpace(t); t == "" {
						continue
					}
					if !slices.Contains(catalog.Types, t) {
						return p, fmt.Errorf("type %q: want one of %s", t, strings.Join(catalog.Types, ", "))
					}
					if !slices.Contains(p.Types, t) {
						p.Types = append(p.Types, t)
					}
				}
			}
		case "min_score":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				return p, fmt.Errorf("min_score %q: want a number from 0 to 1", v)
			}
			p.MinScore = f
		case "include_allowlisted":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return p, fmt.Errorf("include_allowlisted %q: want true or false", v)
			}
			p.Allowlisted = b
		default:
			return p, fmt.Errorf("unknown parameter %q: want type, min_score or include_allowlisted", k)
		}
	}
	slices.Sort(p.Types)
	return p, nil
}

// etag is a strong validator of what derives from the exports' version v
// (and this binary) and the parts given: equal only for equal bytes.
func etag(build string, v storage.ExportVersion, parts ...string) string {
	h := sha256.New()
	for _, p := range append([]string{build, v.Key}, parts...) {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

// notModified says whether a GET's validators match the current ETag, or
// (without If-None-Match) whether nothing changed since If-Modified-Since.
func notModified(r *http.Request, tag string, modified time.Time) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for c := range strings.SplitSeq(inm, ",") {
			c = strings.TrimPrefix(strings.TrimSpace(c), "W/") // a weak comparison, as RFC 9110 has it for GET
			if c == "*" || c == tag {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !modified.Truncate(time.Second).After(t) {
			return true
		}
	}
	return false
}

// export answers GET /v1/export/{format}: the listed indicators, streamed
// from PostgreSQL as they come, with an ETag and Last-Modified of the
// exports' version, or 304 when the client has them.
func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	format := r.PathValue("format")
	info, ok := formats[format]
	if !ok || !slices.Contains(export.Formats, format) {
		writeError(w, http.StatusNotFound, "no export format %q: want one of %s", format, strings.Join(export.Formats, ", "))
		return
	}
	p, err := parseExportParams(r.URL.Query(), s.cfg.MinScore)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	v, err := s.currentVersion(r.Context())
	if err != nil {
		s.refused.note("postgres", "version", "api: reading the exports' version", "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot export now; try again later")
		return
	}
	tag := etag(s.cfg.Build, v, "export", format, strings.Join(p.Types, ","), strconv.FormatFloat(p.MinScore, 'g', -1, 64), strconv.FormatBool(p.Allowlisted))
	h := w.Header()
	h.Set("ETag", tag)
	h.Set("Last-Modified", v.Modified.UTC().Format(http.TimeFormat))
	h.Set("Cache-Control", "private, no-cache")
	if notModified(r, tag, v.Modified) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", info.ContentType)
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="tip-%s.%s"`, format, info.Ext))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	out := &streamWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}
	out.extend(time.Now()) // the query sorts before its first row
	// Stamped with the version's time, the same version gives the same bytes
	// on every replica.
	ew, err := export.NewWith(format, out, v.Modified, export.STIXOptions{MinScore: p.MinScore, HalfLife: storage.ScoreHalfLife})
	if err == nil {
		err = s.store.ExportListed(r.Context(), p.Types, p.MinScore, p.Allowlisted, ew.Write)
		if err == nil {
			err = ew.Close()
		}
	}
	if err == nil || r.Context().Err() != nil {
		return
	}
	s.refused.note("export", format, "api: export failed", "err", err)
	if out.n == 0 {
		writeError(w, http.StatusServiceUnavailable, "cannot export now; try again later")
		return
	}
	// The head is sent: break the stream off so the client sees it incomplete.
	panic(http.ErrAbortHandler)
}

// streamWriter writes a streamed answer, moving the write deadline on as it
// goes: WriteTimeout bounds each write, not the whole export.
type streamWriter struct {
	w        io.Writer
	rc       *http.ResponseController
	timeout  time.Duration
	n        int64
	extended time.Time
}

func (s *streamWriter) extend(now time.Time) {
	_ = s.rc.SetWriteDeadline(now.Add(s.timeout)) // not every connection has deadlines
	s.extended = now
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(s.extended) > time.Second {
		s.extend(now)
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}
