package export

import (
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
// writes one <uuid>.json per event, manifest.json and hashes.csv.
type MISPFeed struct {
	dir    string
	now    time.Time
	events map[string]*mispEvent
}

// NewMISPFeed starts a feed in dir (created if missing). now stamps the events.
func NewMISPFeed(dir string, now time.Time) (*MISPFeed, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &MISPFeed{dir: dir, now: now, events: map[string]*mispEvent{}}, nil
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
		ev.Attribute = append(ev.Attribute, mispAttribute{UUID: UUIDv5("tip:misp-attribute:" + src + ":" + r.Type + ":" + r.Value),
			Type: mt[0], Category: mt[1], Value: r.Value, ToIDs: r.Type != "asn", Timestamp: ev.Timestamp,
			Comment: comment})
	}
	return nil
}

// Close writes the events, the manifest and hashes.csv.
func (f *MISPFeed) Close() error {
	manifest := map[string]any{}
	var hashes []byte
	ids := make([]string, 0, len(f.events))
	for id := range f.events {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ev := f.events[id]
		b, err := json.Marshal(map[string]any{"Event": ev})
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(f.dir, id+".json"), b, 0o644); err != nil {
			return err
		}
		manifest[id] = map[string]any{"info": ev.Info, "date": ev.Date, "timestamp": ev.Timestamp, "analysis": ev.Analysis,
			"threat_level_id": ev.ThreatLevelID, "published": true, "Orgc": ev.Orgc, "Tag": ev.Tag}
		for _, a := range ev.Attribute {
			sum := md5.Sum([]byte(a.Value))
			hashes = append(hashes, hex.EncodeToString(sum[:])+","+id+"\n"...)
		}
	}
	b, err := json.MarshalIndent(manifest, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.dir, "manifest.json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(f.dir, "hashes.csv"), hashes, 0o644)
}
