// Package feeds serves the lab's public blacklist feeds in their real formats —
// Spamhaus DROP and ASN-DROP, abuse.ch Feodo Tracker, URLhaus and SSLBL,
// blocklist.de, CINS, DShield, OpenPhish, PhishTank, FireHOL and a hosts file —
// with content generated from the lab's world and lab clock. Every indicator has
// a ground-truth bad-from time; each feed lists it after its own delay and drops
// it after its own persistence, so feeds overlap with known latencies and carry
// known false positives. Some feeds misbehave on purpose (dead, HTML error page,
// slow, truncated, very large) so collectors meet real failures offline.
package feeds

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/tip-project/tip/lab/world"
)

// Options tune the faulty feeds.
type Options struct {
	// SlowChunkDelay is the pause between two chunks of the slow feed (default 2s).
	SlowChunkDelay time.Duration
	// LargeLines is the number of lines of the large feed (default 1,000,000).
	LargeLines int
}

// Behaviour is how a feed answers.
type Behaviour string

const (
	OK        Behaviour = "ok"         // serves its list
	Dead      Behaviour = "dead"       // 404: withdrawn
	HTMLError Behaviour = "html-error" // an HTML error page with status 200
	Slow      Behaviour = "slow"       // the list, dripped in small chunks
	Truncated Behaviour = "truncated"  // the list, cut in the middle of its last line
	Large     Behaviour = "large"      // over a million lines, streamed
)

// IndicatorType is what a feed's entries are.
type IndicatorType string

const (
	IPv4   IndicatorType = "ipv4"
	IPv6   IndicatorType = "ipv6"
	CIDR   IndicatorType = "cidr"
	ASN    IndicatorType = "asn"
	Domain IndicatorType = "domain"
	URL    IndicatorType = "url"
	SHA1   IndicatorType = "sha1"
)

// Feed is one entry of the lab's source catalog.
type Feed struct {
	Name      string        `json:"name"`
	Path      string        `json:"path"`   // under the lab's HTTP server
	Format    string        `json:"format"` // the parser it needs
	Indicator IndicatorType `json:"indicator"`
	// RealURL is where the real feed lives; empty for lab-only feeds.
	RealURL     string    `json:"real_url,omitempty"`
	Behaviour   Behaviour `json:"behaviour"`
	ContentType string    `json:"content_type"`
	// Quirks name the real-world oddities a parser of this feed must survive.
	Quirks      []string `json:"quirks,omitempty"`
	Description string   `json:"description"`
}

// feedDef is a catalog entry with what the server needs to produce it.
type feedDef struct {
	Feed
	list   string // the timeline it shows; empty for feeds with no list
	status bool   // shows online/offline
	daily  bool   // shows a last-online stamp that a daily check refreshes
	render func(s *Server, v view) []byte
}

// view is what a renderer sees: the lab time, the feed's last change, and the
// listings active now in their list's order.
type view struct {
	now, mod time.Time
	rows     []*listing
}

// Server serves the lab's feeds. It is immutable after New and safe for
// concurrent use; all time comes from the lab clock.
type Server struct {
	w     *world.World
	clock *world.Clock
	opts  Options
	feeds []*feedDef
	lists map[string][]*listing
	birth time.Time // before every listing: the Last-Modified of an empty history
	mux   *http.ServeMux
}

// New builds the feeds of a world. Everything is a pure function of the world's
// seed; only the clock moves what is served.
func New(w *world.World, clock *world.Clock, opts Options) *Server {
	if opts.SlowChunkDelay <= 0 {
		opts.SlowChunkDelay = 2 * time.Second
	}
	if opts.LargeLines <= 0 {
		opts.LargeLines = 1_000_000
	}
	s := &Server{w: w, clock: clock, opts: opts, feeds: catalog(),
		lists: timelines(w, generate(w)), birth: w.Start.Add(-horizonBefore)}
	s.mux = http.NewServeMux()
	for _, f := range s.feeds {
		s.mux.HandleFunc("GET "+f.Path+suffix(f.Path), s.serve(f))
	}
	s.mux.HandleFunc("GET /feeds/{$}", s.serveIndex)
	s.mux.HandleFunc("GET /feeds/index.json", s.serveIndex)
	return s
}

// suffix makes a directory-style path (URLhaus's /csv_recent/) match only itself.
func suffix(path string) string {
	if path[len(path)-1] == '/' {
		return "{$}"
	}
	return ""
}

// Handler serves every feed under /feeds/ and the catalog at /feeds/.
func (s *Server) Handler() http.Handler { return s.mux }

// Catalog lists every feed the server offers.
func (s *Server) Catalog() []Feed {
	out := make([]Feed, len(s.feeds))
	for i, f := range s.feeds {
		out[i] = f.Feed
	}
	return out
}

// Index is what /feeds/ answers.
type Index struct {
	LabTime time.Time `json:"lab_time"`
	Feeds   []Feed    `json:"feeds"`
}

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(Index{LabTime: s.clock.Now(), Feeds: s.Catalog()})
}

func (s *Server) serve(f *feedDef) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		now := s.clock.Now()
		switch f.Behaviour {
		case Dead:
			serveDead(w)
			return
		case Large:
			s.serveLarge(w, r, now)
			return
		}
		body, mod := s.body(f, now)
		w.Header().Set("Content-Type", f.ContentType)
		w.Header().Set("ETag", etag(body))
		var out http.ResponseWriter = w
		if f.Behaviour == Slow {
			out = &drip{ResponseWriter: w, ctx: r.Context(), delay: s.opts.SlowChunkDelay, chunk: slowChunk}
		}
		// ServeContent answers HEAD, If-None-Match, If-Modified-Since and ranges.
		http.ServeContent(out, r, "", mod, bytes.NewReader(body))
	}
}

// body renders a feed at lab time now, with its Last-Modified.
func (s *Server) body(f *feedDef, now time.Time) ([]byte, time.Time) {
	if f.Behaviour == HTMLError {
		return []byte(htmlErrorPage), s.w.Start
	}
	mod := s.lastModified(f, now)
	b := f.render(s, view{now: now, mod: mod, rows: s.active(f.list, now)})
	if f.Behaviour == Truncated {
		b = truncate(b)
	}
	return b, mod
}

// lastModified is the last lab time at or before now when the feed's content
// changed; banners print it, so content and validators change together.
func (s *Server) lastModified(f *feedDef, now time.Time) time.Time {
	mod := s.birth
	for _, l := range s.lists[f.list] {
		if c := l.changedAt(now, f.status, f.daily); c.After(mod) {
			mod = c
		}
	}
	return mod
}

func etag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// drip writes its body in small chunks with a pause between them, flushing each.
type drip struct {
	http.ResponseWriter
	ctx     context.Context
	delay   time.Duration
	chunk   int
	started bool
}

const slowChunk = 64

func (d *drip) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if d.started {
			t := time.NewTimer(d.delay)
			select {
			case <-d.ctx.Done():
				t.Stop()
				return n, d.ctx.Err()
			case <-t.C:
			}
		}
		d.started = true
		k := min(d.chunk, len(p))
		m, err := d.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		_ = http.NewResponseController(d.ResponseWriter).Flush()
		p = p[k:]
	}
	return n, nil
}

// truncate cuts the body in the middle of its last line, as a transfer that died.
func truncate(b []byte) []byte {
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	start := bytes.LastIndexByte(b[:end], '\n') + 1
	if end-start < 2 {
		return b[:end]
	}
	return b[:start+(end-start)/2]
}

func serveDead(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(notFoundPage))
}

const notFoundPage = `<html>
<head><title>404 Not Found</title></head>
<body>
<center><h1>404 Not Found</h1></center>
<hr><center>nginx</center>
</body>
</html>
`

// htmlErrorPage is what a feed behind a broken proxy or a maintenance page serves
// with status 200 — a collector must not take it for an empty list.
const htmlErrorPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Maintenance - blocklist.de</title>
</head>
<body>
<h1>Wartungsarbeiten / Maintenance</h1>
<p>The lists are being regenerated. Please try again in a few minutes.</p>
</body>
</html>
`
