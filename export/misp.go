package export

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// MISP feeds: the layout MISP's "Add feed" (a feed of MISP format) pulls, one
// event per source and day its listings began, with a manifest of the events
// and hashes.csv of every attribute's MD5 (MISP's cache of what a feed holds).

// tipNamespace is the namespace of TIP's deterministic UUIDs (version 5): the
// same source, day and indicator always get the same UUID, so a MISP pulling
// the feed again updates its events rather than adding copies.
var tipNamespace = [16]byte{0x6b, 0x1f, 0x3c, 0x2e, 0x8a, 0x54, 0x4d, 0x0b, 0x9e, 0x71, 0x2c, 0x5d, 0x43, 0xa8, 0x17, 0xf0}

// UUIDv5 is the RFC 9562 version-5 UUID of name in TIP's namespace.
func UUIDv5(name string) string {
	h := sha1.New()
	h.Write(tipNamespace[:])
	h.Write([]byte(name))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u)
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// TIPOrg is TIP as a MISP organisation.
var TIPOrg = mispOrg{Name: "TIP", UUID: UUIDv5("tip:org")}

type mispOrg struct {
	Name string `json:"name"`
	UUID string `json:"uuid"`
}

type mispTag struct {
	Name string `json:"name"`
}

type mispAttribute struct {
	UUID      string `json:"uuid"`
	Type      string `json:"type"`
	Category  string `json:"category"`
	Value     string `json:"value"`
	ToIDs     bool   `json:"to_ids"`
	Timestamp string `json:"timestamp"`
	Comment   string `json:"comment"`
}

type mispEvent struct {
	UUID          string          `json:"uuid"`
	Info          string          `json:"info"`
	Date          string          `json:"date"`
	Timestamp     string          `json:"timestamp"`
	Published     bool            `json:"published"`
	Analysis      string          `json:"analysis"`
	ThreatLevelID string          `json:"threat_level_id"`
	Orgc          mispOrg         `json:"Orgc"`
	Tag           []mispTag       `json:"Tag"`
	Attribute     []mispAttribute `json:"Attribute"`
}

// mispTypes maps TIP's types to MISP's attribute type and category.
var mispTypes = map[string][2]string{
	"ipv4": {"ip-dst", "Network activity"}, "ipv6": {"ip-dst", "Network activity"}, "cidr": {"ip-dst", "Network activity"},
	"domain": {"domain", "Network activity"}, "url": {"url", "Network activity"}, "asn": {"AS", "Network activity"},
	"sha1": {"sha1", "Payload delivery"}, "sha256": {"sha256", "Payload delivery"}, "md5": {"md5", "Payload delivery"},
}

// MISPFeed writes a MISP feed into a folder: Write takes the rows, Close
// writes one <uuid>.json per event, manifest.json and hashes.csv. Its memory
// does not grow with the rows: an event's attributes (and their hashes.csv
// lines) are spooled to files of their own in a folder of dir as they come,
// past mispSpoolBuffer bytes held, and Close streams each event from them.
type MISPFeed struct {
	dir, spool string
	now        time.Time
	events     map[string]*mispEvent // without their attributes
	pending    map[string]*mispPending
	held       int // bytes in pending
}

// mispPending is what an event got since its last spooling: its attributes'
// JSON, comma-separated, and their hashes.csv lines.
type mispPending struct {
	attrs, hashes bytes.Buffer
	spooled       bool // some are in its spool files already
}

// mispSpoolBuffer is how many bytes of attributes a feed holds before it
// appends them to their events' spool files.
var mispSpoolBuffer = 16 << 20

// NewMISPFeed starts a feed in dir (created if missing). now stamps the events.
func NewMISPFeed(dir string, now time.Time) (*MISPFeed, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	spool, err := os.MkdirTemp(dir, ".spool-")
	if err != nil {
		return nil, err
	}
	return &MISPFeed{dir: dir, spool: spool, now: now, events: map[string]*mispEvent{}, pending: map[string]*mispPending{}}, nil
}

// Write adds an indicator to the event of each source listing it, on the day it
// began listing it. Types MISP has no attribute for are skipped.
func (f *MISPFeed) Write(r Row) error {
	mt, ok := mispTypes[r.Type]
	if !ok {
		return nil
	}
	for i, src := range r.Sources {
		day := f.now
		if i < len(r.FirstSeen) && !r.FirstSeen[i].IsZero() {
			day = r.FirstSeen[i]
		}
		date := day.UTC().Format(time.DateOnly)
		id := UUIDv5("tip:misp-event:" + src + ":" + date)
		ev := f.events[id]
		c := r.ContextOf(i)
		if ev == nil {
			tlp := c.TLP
			if tlp == "" {
				tlp = "clear"
			}
			ev = &mispEvent{UUID: id, Info: fmt.Sprintf("TIP: %s, listed %s", src, date), Date: date,
				Timestamp: strconv.FormatInt(f.now.Unix(), 10), Published: true, Analysis: "2", ThreatLevelID: "3",
				Orgc: TIPOrg, Tag: []mispTag{{"tlp:" + tlp}, {fmt.Sprintf("tip:source=%q", src)}}}
			if c.Category != "" {
				ev.Tag = append(ev.Tag, mispTag{fmt.Sprintf("tip:category=%q", c.Category)})
			}
			f.events[id] = ev
		}
		comment := fmt.Sprintf("score %.2f; listed by %d source(s)", r.Score, len(r.Sources))
		for _, part := range []struct{ label, v string }{{"", c.Malware}, {"port ", c.Port}, {"ref ", c.Ref}} {
			if part.v != "" {
				comment += "; " + part.label + part.v
			}
		}
		if !c.Listed.IsZero() {
			comment += "; the source listed it " + c.Listed.UTC().Format(time.RFC3339)
		}
		b, err := json.Marshal(mispAttribute{UUID: UUIDv5("tip:misp-attribute:" + src + ":" + r.Type + ":" + r.Value),
			Type: mt[0], Category: mt[1], Value: r.Value, ToIDs: r.Type != "asn", Timestamp: ev.Timestamp,
			Comment: comment})
		if err != nil {
			return err
		}
		p := f.pending[id]
		if p == nil {
			p = &mispPending{}
			f.pending[id] = p
		}
		if p.attrs.Len() > 0 || p.spooled {
			p.attrs.WriteByte(',')
		}
		p.attrs.Write(b)
		sum := md5.Sum([]byte(r.Value))
		p.hashes.WriteString(hex.EncodeToString(sum[:]) + "," + id + "\n")
		f.held += len(b) + 2*md5.Size + len(id) + 3
	}
	if f.held > mispSpoolBuffer {
		return f.flush()
	}
	return nil
}

// flush appends every event's pending attributes and hashes to its spool
// files.
func (f *MISPFeed) flush() error {
	for id, p := range f.pending {
		if p.attrs.Len() == 0 {
			continue
		}
		for _, part := range []struct {
			ext string
			b   *bytes.Buffer
		}{{".attrs", &p.attrs}, {".md5", &p.hashes}} {
			file, err := os.OpenFile(filepath.Join(f.spool, id+part.ext), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return err
			}
			_, err = part.b.WriteTo(file)
			if cerr := file.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("MISP feed spool: %w", err)
			}
		}
		p.spooled = true
	}
	f.held = 0
	return nil
}

// Close writes the events, the manifest and hashes.csv, each event streamed
// from its spool files, then removes them.
func (f *MISPFeed) Close() error {
	defer os.RemoveAll(f.spool)
	if err := f.flush(); err != nil {
		return err
	}
	manifest := map[string]any{}
	ids := make([]string, 0, len(f.events))
	for id := range f.events {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	hashes, err := os.Create(filepath.Join(f.dir, "hashes.csv"))
	if err != nil {
		return err
	}
	defer hashes.Close()
	for _, id := range ids {
		ev := f.events[id]
		if err := f.writeEvent(id, ev); err != nil {
			return fmt.Errorf("MISP event %s: %w", id, err)
		}
		if err := appendFile(hashes, filepath.Join(f.spool, id+".md5")); err != nil {
			return err
		}
		manifest[id] = map[string]any{"info": ev.Info, "date": ev.Date, "timestamp": ev.Timestamp, "analysis": ev.Analysis,
			"threat_level_id": ev.ThreatLevelID, "published": true, "Orgc": ev.Orgc, "Tag": ev.Tag}
	}
	if err := hashes.Close(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(manifest, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(f.dir, "manifest.json"), b, 0o644)
}

// writeEvent writes <id>.json: the event as JSON, its attributes (the last
// member) streamed from its spool file.
func (f *MISPFeed) writeEvent(id string, ev *mispEvent) error {
	ev.Attribute = []mispAttribute{}
	head, err := json.Marshal(map[string]any{"Event": ev})
	if err != nil {
		return err
	}
	tail := []byte(`]}}`)
	if !bytes.HasSuffix(head, tail) {
		return fmt.Errorf("the event's JSON does not end with its attributes")
	}
	out, err := os.Create(filepath.Join(f.dir, id+".json"))
	if err != nil {
		return err
	}
	defer out.Close()
	w := bufio.NewWriter(out)
	w.Write(head[:len(head)-len(tail)]) //nolint:errcheck // Flush reports
	if err := appendFile(w, filepath.Join(f.spool, id+".attrs")); err != nil {
		return err
	}
	w.Write(tail) //nolint:errcheck // Flush reports
	if err := w.Flush(); err != nil {
		return err
	}
	return out.Close()
}

// appendFile copies the file at path to w.
func appendFile(w io.Writer, path string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	_, err = io.Copy(w, in)
	return err
}
