package export

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// STIX 2.1 (OASIS): a bundle of one indicator per listed indicator, created by
// TIP's identity, under the TLP:CLEAR marking. Ids are deterministic (version-5
// UUIDs over the type and value in TIP's namespace): the same indicator keeps its
// id from one export to the next, so a platform updates it rather than adding a
// copy.

// TIPIdentity is TIP's STIX identity, the creator of its objects.
var TIPIdentity = "identity--" + UUIDv5("tip:stix-identity")

// tlpClear is STIX 2.1's TLP:WHITE marking definition (TLP 2.0's CLEAR), whose
// id the specification fixes.
const tlpClear = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"

// stixTime is STIX's timestamp: RFC 3339 in UTC with milliseconds.
func stixTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

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

// stixWriter streams a bundle: the identity and the marking first, then an
// indicator per row.
type stixWriter struct {
	w     *bufio.Writer
	now   time.Time
	first bool
}

func newSTIXWriter(w *bufio.Writer, now time.Time) *stixWriter {
	s := &stixWriter{w: w, now: now, first: true}
	fmt.Fprintf(w, `{"type":"bundle","id":"bundle--%s","objects":[`, UUIDv5("tip:stix-bundle:"+stixTime(now)))
	created := stixTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) // TIP's identity does not change
	s.object(map[string]any{"type": "identity", "spec_version": "2.1", "id": TIPIdentity, "created": created, "modified": created,
		"name": "TIP: Tracking Intelligence Project", "identity_class": "system",
		"description": "Blacklists gathered from public sources and weighed, spamtraps and fast-flux monitoring."})
	return s
}

func (s *stixWriter) object(o map[string]any) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if !s.first {
		s.w.WriteByte(',')
	}
	s.first = false
	_, err = s.w.Write(b)
	return err
}

func (s *stixWriter) Write(r Row) error {
	pattern, ok := STIXPattern(r.Type, r.Value)
	if !ok {
		return nil
	}
	firstSeen := s.now
	for _, t := range r.FirstSeen {
		if !t.IsZero() && t.Before(firstSeen) {
			firstSeen = t
		}
	}
	labels := make([]string, 0, len(r.Sources))
	for _, src := range r.Sources {
		labels = append(labels, "tip-source:"+src)
	}
	o := map[string]any{
		"type": "indicator", "spec_version": "2.1", "id": "indicator--" + UUIDv5("tip:stix-indicator:"+r.Type+":"+r.Value),
		"created": stixTime(firstSeen), "modified": stixTime(s.now), "created_by_ref": TIPIdentity,
		"name": r.Value, "description": fmt.Sprintf("%s listed by %s; TIP's score %.2f", r.Type, strings.Join(r.Sources, ", "), r.Score),
		"indicator_types": []string{"malicious-activity"}, "pattern": pattern, "pattern_type": "stix", "pattern_version": "2.1",
		"valid_from": stixTime(firstSeen), "confidence": int(r.Score*100 + 0.5), "object_marking_refs": []string{tlpClear},
	}
	if len(labels) > 0 {
		o["labels"] = labels
	}
	return s.object(o)
}

func (s *stixWriter) Close() error {
	s.w.WriteString("]}\n")
	return s.w.Flush()
}
