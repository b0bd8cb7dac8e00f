package trap

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"html"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tip-project/tip/lab/world"
)

// Archive serves the lab's spam the way the untroubled.org archive does: an index page
// linking monthly YYYY-MM.7z archives from the lab epoch's month to the current one,
// each unpacking to a tree rooted at the year (YYYY/MM/DD/<name>, one raw RFC 822 file
// per spam). The current month grows in place as lab time passes; completed months
// never change. Beside each archive a YYYY-MM.json sidecar lists its members: the
// ground truth of what a harvester should find inside.
//
// Archives are real 7z files made by Debian's 7-Zip and cached on disk, keyed by month
// and content, so a completed month is built once and survives restarts.
type Archive struct {
	src      Source
	clock    *world.Clock
	start    time.Time
	dir      string
	sevenZip string

	mu     sync.Mutex
	months map[string]*month
}

// Member is one file of a monthly archive, as its sidecar lists it.
type Member struct {
	Path   string    `json:"path"` // inside the archive: YYYY/MM/DD/<name>
	Name   string    `json:"name"`
	Time   time.Time `json:"time"` // lab time the trap received it (also the file's mtime)
	Size   int       `json:"size"`
	SHA256 string    `json:"sha256"`
}

// Sidecar is a month's ground truth: exactly what its archive holds at lab time AsOf.
type Sidecar struct {
	Month    string    `json:"month"`
	Archive  string    `json:"archive"`
	ETag     string    `json:"etag"`     // the archive's ETag for this content
	Complete bool      `json:"complete"` // the month is over: its archive will not change again
	AsOf     time.Time `json:"as_of"`    // mail received before this lab time is included
	Count    int       `json:"count"`
	Members  []Member  `json:"members"`
}

// month is what the archive of one month holds so far, and what is built of it.
type month struct {
	mu      sync.Mutex
	name    string    // "2026-09"
	from    time.Time // first instant of the month, or the lab epoch if later
	end     time.Time // first instant of the next month
	upTo    time.Time // mail received in [from, upTo) is in members
	sum     hash.Hash // over every member, in order: the content key
	members []Member
	paths   map[string]bool
	latest  time.Time

	// The staging tree under the cache folder holds members[:staged], the mail of
	// [from, stagedUpTo); it is wiped when the month is (re)started in this process.
	staged     int
	stagedUpTo time.Time
	stageWiped bool

	builtKey string // content key of the archive file last built or found on disk
}

// NewArchive publishes src from the lab epoch start on, building archives in cacheDir.
// It fails if 7-Zip is not installed.
func NewArchive(src Source, clock *world.Clock, start time.Time, cacheDir string) (*Archive, error) {
	sevenZip, err := findSevenZip()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("spam archive cache: %w", err)
	}
	return &Archive{src: src, clock: clock, start: start.UTC(), dir: cacheDir, sevenZip: sevenZip,
		months: map[string]*month{}}, nil
}

// findSevenZip locates Debian's 7-Zip command-line tool.
func findSevenZip() (string, error) {
	for _, name := range []string{"7z", "7zz", "7za"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("spam archive: 7-Zip not found (no 7z, 7zz or 7za in PATH); install it with `apt-get install p7zip-full`")
}

// Months lists the archives published at lab time at, oldest first: "YYYY-MM" from
// the lab epoch's month to at's month.
func (a *Archive) Months(at time.Time) []string {
	if at.Before(a.start) {
		return nil
	}
	var out []string
	for m := monthStart(a.start); !m.After(at); m = m.AddDate(0, 1, 0) {
		out = append(out, m.Format("2006-01"))
	}
	return out
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// Handler serves the index at "/", the archives at "/YYYY-MM.7z" and the sidecars at
// "/YYYY-MM.json". Mount it with http.StripPrefix.
func (a *Archive) Handler() http.Handler { return http.HandlerFunc(a.serveHTTP) }

func (a *Archive) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	switch {
	case name == "" || name == "index.html":
		a.serveIndex(w, r)
	case strings.HasSuffix(name, ".7z"):
		a.serveArchive(w, r, strings.TrimSuffix(name, ".7z"))
	case strings.HasSuffix(name, ".json"):
		a.serveSidecar(w, r, strings.TrimSuffix(name, ".json"))
	default:
		http.NotFound(w, r)
	}
}

func (a *Archive) serveArchive(w http.ResponseWriter, r *http.Request, name string) {
	now := a.clock.Now()
	m := a.month(name, now)
	if m == nil {
		http.NotFound(w, r)
		return
	}
	f, key, mod, err := a.open(m, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-7z-compressed")
	w.Header().Set("ETag", etag(name, key))
	http.ServeContent(w, r, name+".7z", mod, f)
}

func (a *Archive) serveSidecar(w http.ResponseWriter, r *http.Request, name string) {
	now := a.clock.Now()
	m := a.month(name, now)
	if m == nil {
		http.NotFound(w, r)
		return
	}
	sc, mod, err := a.sidecar(m, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", strings.TrimSuffix(sc.ETag, `"`)+`-json"`)
	http.ServeContent(w, r, name+".json", mod, bytes.NewReader(append(body, '\n')))
}

// serveIndex writes a directory listing as Apache's mod_autoindex does (FancyIndexing
// with HTMLTable, the format of untroubled.org/spam/): one table row per file, sorted
// by name. Sizes show for archives already built for their current content, "-"
// otherwise: listing builds nothing, so it stays fast while the current month grows.
func (a *Archive) serveIndex(w http.ResponseWriter, r *http.Request) {
	now := a.clock.Now()
	title := "/"
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil && u.Path != "" {
		title = u.Path
	}
	if len(title) > 1 {
		title = strings.TrimSuffix(title, "/")
	}
	var b strings.Builder
	b.WriteString("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html>\n <head>\n")
	fmt.Fprintf(&b, "  <title>Index of %s</title>\n </head>\n <body>\n<h1>Index of %s</h1>\n", html.EscapeString(title), html.EscapeString(title))
	b.WriteString("  <table>\n   <tr><th valign=\"top\"><img src=\"/icons/blank.gif\" alt=\"[ICO]\"></th>" +
		"<th><a href=\"?C=N;O=D\">Name</a></th><th><a href=\"?C=M;O=A\">Last modified</a></th>" +
		"<th><a href=\"?C=S;O=A\">Size</a></th><th><a href=\"?C=D;O=A\">Description</a></th></tr>\n" +
		"   <tr><th colspan=\"5\"><hr></th></tr>\n" +
		"<tr><td valign=\"top\"><img src=\"/icons/back.gif\" alt=\"[PARENTDIR]\"></td><td><a href=\"../\">Parent Directory</a></td>" +
		"<td>&nbsp;</td><td align=\"right\">  - </td><td>&nbsp;</td></tr>\n")
	for _, name := range a.Months(now) {
		m := a.month(name, now)
		m.mu.Lock()
		err := m.catchUp(a.src, now)
		mod, key := m.modTime(), m.key()
		size := "  - "
		if fi, statErr := os.Stat(a.archivePath(name, key)); statErr == nil {
			size = humanSize(fi.Size())
		}
		m.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		indexRow(&b, name+".7z", mod, size, "[   ]")
		indexRow(&b, name+".json", mod, "  - ", "[TXT]")
	}
	b.WriteString("   <tr><th colspan=\"5\"><hr></th></tr>\n</table>\n</body></html>\n")
	w.Header().Set("Content-Type", "text/html;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "index.html", time.Time{}, strings.NewReader(b.String()))
}

func indexRow(b *strings.Builder, name string, mod time.Time, size, alt string) {
	icon := "/icons/unknown.gif"
	if alt == "[TXT]" {
		icon = "/icons/text.gif"
	}
	fmt.Fprintf(b, "<tr><td valign=\"top\"><img src=\"%s\" alt=\"%s\"></td><td><a href=\"%s\">%s</a></td>"+
		"<td align=\"right\">%s  </td><td align=\"right\">%s</td><td>&nbsp;</td></tr>\n",
		icon, alt, html.EscapeString(name), html.EscapeString(name), mod.UTC().Format("2006-01-02 15:04"), size)
}

// humanSize formats a size as Apache's listing does: "512 ", "9.5K", " 12M".
func humanSize(n int64) string {
	if n < 973 {
		return fmt.Sprintf("%3d ", n)
	}
	v := float64(n)
	for _, unit := range []string{"K", "M", "G", "T"} {
		v /= 1024
		if v < 9.95 {
			return fmt.Sprintf("%.1f%s", v, unit)
		}
		if v < 973 || unit == "T" {
			return fmt.Sprintf("%3.0f%s", v, unit)
		}
	}
	return fmt.Sprint(n)
}

// Sidecar is the ground truth of month name ("YYYY-MM") at lab time at.
func (a *Archive) Sidecar(name string, at time.Time) (Sidecar, error) {
	m := a.month(name, at)
	if m == nil {
		return Sidecar{}, fmt.Errorf("spam archive: no month %q at %s", name, at.Format(time.RFC3339))
	}
	sc, _, err := a.sidecar(m, at)
	return sc, err
}

func (a *Archive) sidecar(m *month, now time.Time) (Sidecar, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.catchUp(a.src, now); err != nil {
		return Sidecar{}, time.Time{}, err
	}
	return m.sidecar(m.key(), now), m.modTime(), nil
}

// month returns the state of a published month, or nil if name is not one at now.
func (a *Archive) month(name string, now time.Time) *month {
	from, err := time.Parse("2006-01", name)
	if err != nil || from.Format("2006-01") != name {
		return nil
	}
	if now.Before(a.start) || from.Before(monthStart(a.start)) || from.After(now) {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.months[name]
	if m == nil {
		m = &month{name: name, end: from.AddDate(0, 1, 0)}
		if from.Before(a.start) {
			from = a.start
		}
		m.from = from
		m.reset()
		a.months[name] = m
	}
	return m
}

func (a *Archive) archivePath(name, key string) string {
	return filepath.Join(a.dir, name+"."+key+".7z")
}

// open returns the month's archive as of now, building it if its content changed.
func (a *Archive) open(m *month, now time.Time) (*os.File, string, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.catchUp(a.src, now); err != nil {
		return nil, "", time.Time{}, err
	}
	key := m.key()
	p := a.archivePath(m.name, key)
	if m.builtKey != key {
		if _, err := os.Stat(p); err != nil {
			if err := a.build(m, p, !now.Before(m.end)); err != nil {
				return nil, "", time.Time{}, fmt.Errorf("spam archive %s: %w", m.name, err)
			}
		}
		m.builtKey = key
		a.removeStale(m.name, p)
	}
	f, err := os.Open(p)
	return f, key, m.modTime(), err
}

// build stages the month's mail as files and packs them with 7-Zip into dst.
func (a *Archive) build(m *month, dst string, complete bool) error {
	stage := filepath.Join(a.dir, "staging", m.name)
	if !m.stageWiped {
		if err := os.RemoveAll(stage); err != nil {
			return err
		}
		m.stageWiped = true
	}
	if err := os.MkdirAll(filepath.Join(stage, filepath.FromSlash(m.from.Format("2006/01"))), 0o755); err != nil {
		return err
	}
	if m.staged < len(m.members) {
		mails := m.srcBetween(a.src, m.stagedUpTo, m.upTo)
		if len(mails) != len(m.members)-m.staged {
			return fmt.Errorf("source is not deterministic: %d mails in [%s, %s), want %d",
				len(mails), m.stagedUpTo.Format(time.RFC3339), m.upTo.Format(time.RFC3339), len(m.members)-m.staged)
		}
		for i, ml := range mails {
			mem := m.members[m.staged+i]
			if ml.Name != mem.Name {
				return fmt.Errorf("source is not deterministic: got %q, want %q", ml.Name, mem.Name)
			}
			p := filepath.Join(stage, filepath.FromSlash(mem.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, ml.Raw, 0o644); err != nil {
				return err
			}
			if err := os.Chtimes(p, ml.Time, ml.Time); err != nil {
				return err
			}
		}
	}
	m.staged, m.stagedUpTo = len(m.members), m.upTo
	// Folders get their newest mail's time too, so the archive depends only on content.
	dirTimes := map[string]time.Time{m.from.Format("2006"): m.modTime(), m.from.Format("2006/01"): m.modTime()}
	for _, mem := range m.members {
		if d := path.Dir(mem.Path); mem.Time.After(dirTimes[d]) {
			dirTimes[d] = mem.Time
		}
	}
	for d, t := range dirTimes {
		if err := os.Chtimes(filepath.Join(stage, filepath.FromSlash(d)), t, t); err != nil {
			return err
		}
	}

	// A completed month is built once for good: compress it harder. The growing month
	// is rebuilt whenever new mail arrives: keep that fast.
	level := "-mx=1"
	if complete {
		level = "-mx=5"
	}
	partial := strings.TrimSuffix(dst, ".7z") + ".partial.7z"
	_ = os.Remove(partial)
	cmd := exec.Command(a.sevenZip, "a", "-t7z", level, "-bd", "-y", "--", partial, m.from.Format("2006"))
	cmd.Dir = stage
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(partial)
		return fmt.Errorf("%s a: %w: %s", filepath.Base(a.sevenZip), err, bytes.TrimSpace(out))
	}
	if err := syncFile(partial); err != nil {
		return err
	}
	if err := os.Rename(partial, dst); err != nil {
		return err
	}
	if complete {
		// Nothing will be added: free the staging tree (a later rebuild restages).
		m.stageWiped, m.staged, m.stagedUpTo = false, 0, m.from
		return os.RemoveAll(stage)
	}
	return nil
}

// removeStale deletes the month's archives other than keep: older content.
func (a *Archive) removeStale(name, keep string) {
	old, _ := filepath.Glob(filepath.Join(a.dir, name+".*.7z"))
	for _, p := range old {
		if p != keep {
			_ = os.Remove(p)
		}
	}
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// reset forgets what the month holds: at creation, or when lab time went backwards.
func (m *month) reset() {
	m.upTo, m.sum, m.members, m.paths, m.latest = m.from, sha256.New(), nil, map[string]bool{}, time.Time{}
	m.staged, m.stagedUpTo, m.stageWiped, m.builtKey = 0, m.from, false, ""
}

// catchUp adds the mail received since the last call, up to now or the month's end.
func (m *month) catchUp(src Source, now time.Time) error {
	to := now
	if to.After(m.end) {
		to = m.end
	}
	if to.Before(m.upTo) {
		m.reset()
	}
	if !to.After(m.upTo) {
		return nil
	}
	for _, ml := range m.srcBetween(src, m.upTo, to) {
		if err := checkName(ml.Name); err != nil {
			return fmt.Errorf("spam archive %s: %w", m.name, err)
		}
		t := ml.Time.UTC()
		p := path.Join(t.Format("2006/01/02"), ml.Name)
		if m.paths[p] {
			return fmt.Errorf("spam archive %s: two mails named %s", m.name, p)
		}
		m.paths[p] = true
		d := sha256.Sum256(ml.Raw)
		m.members = append(m.members, Member{Path: p, Name: ml.Name, Time: t, Size: len(ml.Raw), SHA256: hex.EncodeToString(d[:])})
		var n [8]byte
		m.sum.Write([]byte(p))
		binary.BigEndian.PutUint64(n[:], uint64(t.UnixNano()))
		m.sum.Write(n[:])
		m.sum.Write(d[:])
		if t.After(m.latest) {
			m.latest = t
		}
	}
	m.upTo = to
	return nil
}

// srcBetween is src.Between, keeping only mail inside the month (a source might
// round its window).
func (m *month) srcBetween(src Source, from, to time.Time) []Mail {
	mails := src.Between(from, to)
	out := mails[:0:0]
	for _, ml := range mails {
		if !ml.Time.Before(from) && ml.Time.Before(to) {
			out = append(out, ml)
		}
	}
	return out
}

// key identifies the month's content so far.
func (m *month) key() string { return hex.EncodeToString(m.sum.Sum(nil))[:16] }

// modTime is when the archive last changed in lab time: its newest mail.
func (m *month) modTime() time.Time {
	if m.latest.IsZero() {
		return m.from
	}
	return m.latest
}

func (m *month) sidecar(key string, now time.Time) Sidecar {
	members := make([]Member, len(m.members))
	copy(members, m.members)
	return Sidecar{Month: m.name, Archive: m.name + ".7z", ETag: etag(m.name, key), Complete: !now.Before(m.end),
		AsOf: m.upTo, Count: len(members), Members: members}
}

func etag(name, key string) string { return `"` + name + "-" + key + `"` }
