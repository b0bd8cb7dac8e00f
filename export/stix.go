package export

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// STIX 2.1 (OASIS): a bundle of TIP's identity, one indicator per listed
// indicator and the TLP 2.0 marking definitions they carry. Ids are
// deterministic (version-5 UUIDs over the type and value in TIP's namespace):
// the same indicator keeps its id from one export to the next, so a platform
// updates it rather than adding a copy. The TAXII server (package taxii) serves
// the same objects, versioned; stix_objects.go has the flux networks'.

// TIPIdentity is TIP's STIX identity, the creator of its objects.
var TIPIdentity = "identity--" + UUIDv5("tip:stix-identity")

// TIPIdentityCreated is when TIP's identity object was created; it never
// changes, so neither does its version.
var TIPIdentityCreated = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// STIXIdentity is TIP's identity object (identity_class system).
func STIXIdentity() []byte {
	b, _ := json.Marshal(stixIdentity{Type: "identity", SpecVersion: "2.1", ID: TIPIdentity,
		Created: STIXTime(TIPIdentityCreated), Modified: STIXTime(TIPIdentityCreated),
		Name: "TIP: Tracking Intelligence Project", IdentityClass: "system",
		Description: "Blacklists gathered from public sources and weighed, spamtraps and fast-flux monitoring."})
	return b
}

type stixIdentity struct {
	Type          string `json:"type"`
	SpecVersion   string `json:"spec_version"`
	ID            string `json:"id"`
	Created       string `json:"created"`
	Modified      string `json:"modified"`
	Name          string `json:"name"`
	Description   string `json:"description"`
	IdentityClass string `json:"identity_class"`
}

// STIXTime is STIX's timestamp: RFC 3339 in UTC with milliseconds.
func STIXTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// STIXPattern is the STIX pattern matching an indicator, false for a type STIX
// patterns do not have.
func STIXPattern(typ, value string) (string, bool) {
	quote := func(v string) string {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `'`, `\'`) + "'"
	}
	switch typ {
	case "ipv4":
		return "[ipv4-addr:value = " + quote(value) + "]", true
	case "ipv6":
		return "[ipv6-addr:value = " + quote(value) + "]", true
	case "cidr":
		if strings.Contains(value, ":") {
			return "[ipv6-addr:value ISSUBSET " + quote(value) + "]", true
		}
		return "[ipv4-addr:value ISSUBSET " + quote(value) + "]", true
	case "domain":
		return "[domain-name:value = " + quote(value) + "]", true
	case "url":
		return "[url:value = " + quote(value) + "]", true
	case "sha1":
		return "[file:hashes.'SHA-1' = " + quote(value) + "]", true
	case "sha256":
		return "[file:hashes.'SHA-256' = " + quote(value) + "]", true
	case "md5":
		return "[file:hashes.MD5 = " + quote(value) + "]", true
	case "asn":
		n := strings.TrimPrefix(strings.ToUpper(value), "AS")
		for _, c := range n {
			if c < '0' || c > '9' {
				return "", false
			}
		}
		if n == "" {
			return "", false
		}
		return "[autonomous-system:number = " + n + "]", true
	}
	return "", false
}

// STIXIndicatorID is the id of an indicator's STIX object. A revoked object
// never comes back (STIX 2.1 §3.6.2): an indicator listed again after TIP
// revoked it is a new object, its episode counting the revocations before it.
// Episode 0 keeps the id of the first exports.
func STIXIndicatorID(typ, value string, episode int) string {
	name := "tip:stix-indicator:" + typ + ":" + value
	if episode > 0 {
		name += ":" + strconv.Itoa(episode)
	}
	return "indicator--" + UUIDv5(name)
}

// STIXOptions say how long an exported indicator stays valid.
type STIXOptions struct {
	// MinScore is the export's threshold: the score below which an indicator is
	// not worth blocking. Below STIXValidityFloor the floor counts instead.
	MinScore float64
	// HalfLife is how fast a score decays once no source lists the indicator
	// (storage.ScoreHalfLife); zero leaves valid_until out.
	HalfLife time.Duration
}

// STIXValidityFloor is the lowest threshold the validity counts down to: with
// no minimum score an indicator would otherwise stay valid for ever.
const STIXValidityFloor = 0.1

// STIXMinValidity is the shortest validity: a version stays valid a day at
// least, so a score barely above the threshold does not expire at once.
const STIXMinValidity = 24 * time.Hour

// Validity is how long an indicator scored score stays valid from a version on:
// the time its score would take, were every source to drop it then, to decay
// below the threshold (the larger of MinScore and STIXValidityFloor), at
// least STIXMinValidity; 0 when HalfLife is 0 (no valid_until). The score
// decays as one source of that weight would: with several sources the
// noisy-or of the decayed weights falls more slowly, so this is the shorter,
// safer horizon:
//
//	validity = half-life · log2(score / threshold)
func (o STIXOptions) Validity(score float64) time.Duration {
	if o.HalfLife <= 0 {
		return 0
	}
	threshold := max(o.MinScore, STIXValidityFloor)
	if score <= threshold {
		return STIXMinValidity
	}
	d := time.Duration(float64(o.HalfLife) * math.Log2(score/threshold))
	return max(d, STIXMinValidity)
}

// STIXConfidence is a score (0..1) as STIX's confidence (0..100).
func STIXConfidence(score float64) int {
	return max(0, min(100, int(math.Round(score*100))))
}

// STIXIndicatorTypes maps TIP's categories (catalog.Source.Category and the
// feeds' own) to STIX's indicator-type-ov: what the category says the
// indicator is evidence of.
//
//   - botnet-c2, malware, malware-download, phishing, attacker, bruteforce,
//     hijacked (criminal networks), spam: malicious-activity;
//   - compromised: compromised;
//   - fast-flux: compromised and malicious-activity (a flux agent is a bot);
//   - scanner, reputation: anomalous-activity (scanning, or a reputation
//     aggregate's say, is not proof of malice);
//   - anything else, or no category: malicious-activity, what being on a
//     blacklist claims.
var STIXIndicatorTypes = map[string][]string{
	"botnet-c2": {"malicious-activity"}, "malware": {"malicious-activity"}, "malware-download": {"malicious-activity"},
	"phishing": {"malicious-activity"}, "attacker": {"malicious-activity"}, "bruteforce": {"malicious-activity"},
	"hijacked": {"malicious-activity"}, "spam": {"malicious-activity"},
	"compromised": {"compromised"}, "fast-flux": {"compromised", "malicious-activity"},
	"scanner": {"anomalous-activity"}, "reputation": {"anomalous-activity"},
}

// STIXIndicator is one version of an indicator's STIX object.
type STIXIndicator struct {
	Row Row
	// ID is the object's id; empty: STIXIndicatorID of the row, episode 0.
	ID                string
	Created, Modified time.Time
	// ValidFrom is when the indicator became valid; zero: Created.
	ValidFrom time.Time
	// ValidUntil is when it stops being valid; zero: no end.
	ValidUntil time.Time
	// Revoked marks an indicator TIP no longer stands by: no source lists it
	// any more, or an analyst or an allowlist suppressed it.
	Revoked bool
}

// stixCommon are the properties every versioned object TIP writes begins
// with (an indicator, an infrastructure, a relationship): embedded first, they
// come first in its JSON.
type stixCommon struct {
	Type         string `json:"type"`
	SpecVersion  string `json:"spec_version"`
	ID           string `json:"id"`
	Created      string `json:"created"`
	Modified     string `json:"modified"`
	CreatedByRef string `json:"created_by_ref"`
	Revoked      bool   `json:"revoked,omitempty"`
}

// versioned is the common part of a version of a typ object: TIP made it, at
// created, and this version at modified.
func versioned(typ, id string, created, modified time.Time, revoked bool) stixCommon {
	return stixCommon{Type: typ, SpecVersion: "2.1", ID: id, Created: STIXTime(created), Modified: STIXTime(modified),
		CreatedByRef: TIPIdentity, Revoked: revoked}
}

type stixIndicator struct {
	stixCommon
	Name               string         `json:"name"`
	Description        string         `json:"description"`
	IndicatorTypes     []string       `json:"indicator_types"`
	Pattern            string         `json:"pattern"`
	PatternType        string         `json:"pattern_type"`
	PatternVersion     string         `json:"pattern_version"`
	ValidFrom          string         `json:"valid_from"`
	ValidUntil         string         `json:"valid_until,omitempty"`
	Confidence         int            `json:"confidence"`
	Labels             []string       `json:"labels,omitempty"`
	ExternalReferences []stixExternal `json:"external_references,omitempty"`
	ObjectMarkingRefs  []string       `json:"object_marking_refs"`
}

type stixExternal struct {
	SourceName  string `json:"source_name"`
	Description string `json:"description,omitempty"`
	URL         string `json:"url,omitempty"`
	ExternalID  string `json:"external_id,omitempty"`
}

// Object is the indicator's STIX object, false for a type STIX patterns do not
// have. Its labels are the sources' categories and malware families and a
// tip-source:NAME per source; its external references the sources' own
// references; its marking the most restrictive TLP of its sources.
func (s STIXIndicator) Object() ([]byte, bool) {
	o, ok := s.object()
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(o)
	return b, err == nil
}

func (s STIXIndicator) object() (stixIndicator, bool) {
	r := s.Row
	pattern, ok := STIXPattern(r.Type, r.Value)
	if !ok {
		return stixIndicator{}, false
	}
	id := s.ID
	if id == "" {
		id = STIXIndicatorID(r.Type, r.Value, 0)
	}
	validFrom := s.ValidFrom
	if validFrom.IsZero() {
		validFrom = s.Created
	}
	var types, cats, malware, tlps []string
	var refs []stixExternal
	for i := range r.Sources {
		c := r.ContextOf(i)
		cats = appendNew(cats, c.Category)
		malware = appendNew(malware, c.Malware)
		tlps = append(tlps, c.TLP)
		kinds, known := STIXIndicatorTypes[c.Category]
		if !known {
			kinds = []string{"malicious-activity"}
		}
		for _, k := range kinds {
			types = appendNew(types, k)
		}
		if c.Ref != "" {
			ref := stixExternal{SourceName: c.Source}
			if strings.HasPrefix(c.Ref, "https://") || strings.HasPrefix(c.Ref, "http://") {
				ref.URL = c.Ref
			} else {
				ref.ExternalID = c.Ref
			}
			refs = append(refs, ref)
		}
	}
	if len(types) == 0 {
		types = []string{"malicious-activity"}
	}
	slices.Sort(types)
	labels := append(slices.Sorted(slices.Values(cats)), slices.Sorted(slices.Values(malware))...)
	labels = slices.Compact(labels)
	for _, src := range r.Sources {
		labels = append(labels, "tip-source:"+src)
	}
	desc := r.Type + " listed by " + strings.Join(r.Sources, ", ")
	if says := r.says(); says != "" {
		desc += ": " + says
	}
	o := stixIndicator{
		stixCommon: versioned("indicator", id, s.Created, s.Modified, s.Revoked), Name: r.Value, Description: desc,
		IndicatorTypes: types, Pattern: pattern, PatternType: "stix", PatternVersion: "2.1",
		ValidFrom: STIXTime(validFrom), Confidence: STIXConfidence(r.Score), Labels: labels,
		ExternalReferences: refs, ObjectMarkingRefs: []string{TLPMarking(MostRestrictiveTLP(tlps))},
	}
	if !s.ValidUntil.IsZero() {
		o.ValidUntil = STIXTime(s.ValidUntil)
	}
	if len(o.Labels) == 0 {
		o.Labels = nil
	}
	return o, true
}

// Digest identifies what a version of the indicator says, leaving out what
// changes from one version to the next on its own (its times and its
// confidence): a new version is due when the digest changes.
func (s STIXIndicator) Digest() string {
	o, ok := s.object()
	if !ok {
		return ""
	}
	o.Created, o.Modified, o.ValidFrom, o.ValidUntil, o.Confidence, o.Revoked = "", "", "", "", 0, false
	b, _ := json.Marshal(o)
	return digest(b)
}

// STIXWriter streams a STIX 2.1 bundle: TIP's identity, an indicator per row
// (or per STIXIndicator), and at the end the TLP marking definitions they
// reference.
type STIXWriter struct {
	w     *bufio.Writer
	now   time.Time
	opts  STIXOptions
	first bool
	tlps  map[string]bool
}

// NewSTIX starts a bundle written to w at now.
func NewSTIX(w io.Writer, now time.Time, opts STIXOptions) *STIXWriter {
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriter(w)
	}
	s := &STIXWriter{w: bw, now: now, opts: opts, first: true, tlps: map[string]bool{}}
	fmt.Fprintf(bw, `{"type":"bundle","id":"bundle--%s","objects":[`, UUIDv5("tip:stix-bundle:"+STIXTime(now)))
	s.object(STIXIdentity())
	return s
}

// newSTIXWriter is export.New's STIX writer: no threshold and no decay known,
// so no valid_until (NewSTIX takes them).
func newSTIXWriter(w *bufio.Writer, now time.Time) *STIXWriter {
	return NewSTIX(w, now, STIXOptions{})
}

func (s *STIXWriter) object(b []byte) error {
	if !s.first {
		s.w.WriteByte(',')
	}
	s.first = false
	_, err := s.w.Write(b)
	return err
}

// Write adds a listed indicator: created and valid from its earliest first
// sighting, modified now, valid until its score would decay below the
// threshold were its sources to drop it now (STIXOptions.Validity).
func (s *STIXWriter) Write(r Row) error {
	firstSeen := s.now
	for _, t := range r.FirstSeen {
		if !t.IsZero() && t.Before(firstSeen) {
			firstSeen = t
		}
	}
	ind := STIXIndicator{Row: r, Created: firstSeen, Modified: s.now}
	if d := s.opts.Validity(r.Score); d > 0 {
		ind.ValidUntil = s.now.Add(d)
	}
	return s.WriteIndicator(ind)
}

// WriteIndicator adds one version of an indicator as it is given (a revoked
// one, say); types STIX patterns lack are skipped.
func (s *STIXWriter) WriteIndicator(ind STIXIndicator) error {
	o, ok := ind.object()
	if !ok {
		return nil
	}
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	for _, m := range o.ObjectMarkingRefs {
		s.tlps[m] = true
	}
	return s.object(b)
}

// Close writes the marking definitions the indicators referenced and ends
// the bundle.
func (s *STIXWriter) Close() error {
	for _, t := range TLPs {
		if s.tlps[TLPMarking(t)] {
			if err := s.object(TLPMarkingObject(t)); err != nil {
				return err
			}
		}
	}
	s.w.WriteString("]}\n")
	return s.w.Flush()
}
