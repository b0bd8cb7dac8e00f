package export

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

var stixRows = func() []Row {
	first := time.Date(2026, 8, 30, 10, 0, 0, 0, time.UTC)
	return []Row{
		{Type: "ipv4", Value: "45.10.0.7", Score: 0.93, Sources: []string{"feodo", "tip-flux-agents"}, FirstSeen: []time.Time{first, first.Add(time.Hour)},
			Context: []Context{{Source: "feodo", Category: "botnet-c2", Malware: "Emotet", Port: "443", Ref: "https://feodotracker.abuse.ch/browse/host/45.10.0.7/"},
				{Source: "tip-flux-agents", Category: "fast-flux", TLP: "green"}}},
		{Type: "ipv6", Value: "2001:db8::7", Score: 0.5, Sources: []string{"a"}},
		{Type: "cidr", Value: "45.20.0.0/16", Score: 0.8, Sources: []string{"drop"}, FirstSeen: []time.Time{first},
			Context: []Context{{Source: "drop", Category: "hijacked", Ref: "SBL123456", TLP: "clear"}}},
		{Type: "domain", Value: "evil.example", Score: 1, Sources: []string{"a", "b"},
			Context: []Context{{Source: "a", Category: "phishing", Malware: "Bank", TLP: "amber"}, {Source: "b", Category: "scanner", TLP: "amber+strict"}}},
		{Type: "url", Value: `http://evil.example/it's\here`, Score: 0.7, Sources: []string{"urlhaus"},
			Context: []Context{{Source: "urlhaus", Category: "malware-download", Malware: "Mozi", Ref: "https://urlhaus.abuse.ch/url/1/", TLP: "red"}}},
		{Type: "sha1", Value: "da39a3ee5e6b4b0d3255bfef95601890afd80709", Score: 0.8, Sources: []string{"sslbl"}},
		{Type: "sha256", Value: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Score: 0.8, Sources: []string{"x"}},
		{Type: "md5", Value: "d41d8cd98f00b204e9800998ecf8427e", Score: 0.8, Sources: []string{"x"}},
		{Type: "asn", Value: "AS64500", Score: 0.6, Sources: []string{"asn-drop"}},
	}
}()

func renderSTIX(t *testing.T, opts STIXOptions, rows []Row, extra ...STIXIndicator) (string, []map[string]any) {
	t.Helper()
	var b bytes.Buffer
	w := NewSTIX(&b, time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), opts)
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, ind := range extra {
		if err := w.WriteIndicator(ind); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var bundle struct{ Objects []map[string]any }
	if err := json.Unmarshal(b.Bytes(), &bundle); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b.String())
	}
	return b.String(), bundle.Objects
}

// Every object of a STIX export, and the bundle, passes OASIS's STIX 2.1 JSON
// schemas (the TLP markings the TLP 2.0 extension's too), and the rules they
// cannot express: vocabularies, times in order, references resolved. The ids
// are the same from one export to the next.
func TestSTIXBundleMatchesTheOASISSchemas(t *testing.T) {
	schemas := loadSTIXSchemas(t)
	opts := STIXOptions{MinScore: 0.5, HalfLife: 7 * 24 * time.Hour}
	revoked := STIXIndicator{Row: Row{Type: "domain", Value: "gone.example", Score: 0.6, Sources: []string{"a"}},
		ID: STIXIndicatorID("domain", "gone.example", 2), Created: time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC),
		Modified: time.Date(2026, 8, 31, 0, 0, 0, 0, time.UTC), ValidUntil: time.Date(2026, 9, 2, 0, 0, 0, 0, time.UTC), Revoked: true}
	out, objects := renderSTIX(t, opts, stixRows, revoked)
	inst, err := jsonschemaInstance(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.Bundle.Validate(inst); err != nil {
		t.Errorf("the bundle: %v", err)
	}
	for _, p := range schemas.Problems(objects) {
		t.Error(p)
	}
	byType := map[string][]map[string]any{}
	for _, o := range objects {
		byType[o["type"].(string)] = append(byType[o["type"].(string)], o)
	}
	if len(byType["identity"]) != 1 || len(byType["indicator"]) != len(stixRows)+1 {
		t.Fatalf("%d identities and %d indicators, want TIP's and %d", len(byType["identity"]), len(byType["indicator"]), len(stixRows)+1)
	}
	// The markings used, each once: clear (the default), green, amber+strict, red.
	var markings []string
	for _, m := range byType["marking-definition"] {
		markings = append(markings, m["name"].(string))
	}
	if want := []string{"TLP:CLEAR", "TLP:GREEN", "TLP:AMBER+STRICT", "TLP:RED"}; !slices.Equal(markings, want) {
		t.Errorf("markings %v, want %v", markings, want)
	}
	ind := map[string]map[string]any{}
	for _, o := range byType["indicator"] {
		ind[o["name"].(string)] = o
	}
	for _, want := range []struct{ value, pattern string }{
		{"45.10.0.7", "[ipv4-addr:value = '45.10.0.7']"},
		{"45.20.0.0/16", "[ipv4-addr:value ISSUBSET '45.20.0.0/16']"},
		{"2001:db8::7", "[ipv6-addr:value = '2001:db8::7']"},
		{"evil.example", "[domain-name:value = 'evil.example']"},
		{`http://evil.example/it's\here`, `[url:value = 'http://evil.example/it\'s\\here']`},
		{"da39a3ee5e6b4b0d3255bfef95601890afd80709", "[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']"},
		{"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "[file:hashes.'SHA-256' = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']"},
		{"d41d8cd98f00b204e9800998ecf8427e", "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"},
		{"AS64500", "[autonomous-system:number = 64500]"},
	} {
		if got := ind[want.value]["pattern"]; got != want.pattern {
			t.Errorf("%s: pattern %v, want %s", want.value, got, want.pattern)
		}
	}
	c2 := ind["45.10.0.7"]
	strs := func(v any) []string {
		var out []string
		for _, x := range v.([]any) {
			out = append(out, x.(string))
		}
		return out
	}
	for prop, want := range map[string]any{
		"id":              "indicator--" + UUIDv5("tip:stix-indicator:ipv4:45.10.0.7"), // the first exports' ids
		"created":         "2026-08-30T10:00:00.000Z",                                  // the earliest first sighting
		"valid_from":      "2026-08-30T10:00:00.000Z",
		"modified":        "2026-09-01T00:00:00.000Z",
		"confidence":      float64(93),
		"created_by_ref":  TIPIdentity,
		"pattern_type":    "stix",
		"pattern_version": "2.1",
		// 7 days · log2(0.93 / 0.5) = 6.27 days after the export
		"valid_until": STIXTime(time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(float64(7*24*time.Hour) * math.Log2(0.93/0.5)))),
	} {
		if c2[prop] != want {
			t.Errorf("%s = %v, want %v", prop, c2[prop], want)
		}
	}
	if got, want := strs(c2["indicator_types"]), []string{"compromised", "malicious-activity"}; !slices.Equal(got, want) {
		t.Errorf("indicator_types %v, want %v (botnet-c2 and fast-flux)", got, want)
	}
	if got, want := strs(c2["labels"]), []string{"botnet-c2", "fast-flux", "Emotet", "tip-source:feodo", "tip-source:tip-flux-agents"}; !slices.Equal(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	if got, want := strs(c2["object_marking_refs"]), []string{TLPMarking("green")}; !slices.Equal(got, want) {
		t.Errorf("markings %v, want TLP:GREEN, its most restrictive source's", got)
	}
	if refs := c2["external_references"].([]any); len(refs) != 1 || refs[0].(map[string]any)["url"] != "https://feodotracker.abuse.ch/browse/host/45.10.0.7/" {
		t.Errorf("external references %v, want feodo's link", refs)
	}
	if d := c2["description"].(string); !strings.Contains(d, "Emotet") || !strings.Contains(d, "port 443") {
		t.Errorf("description %q says nothing of the malware and port", d)
	}
	if refs := ind["45.20.0.0/16"]["external_references"].([]any); refs[0].(map[string]any)["external_id"] != "SBL123456" {
		t.Errorf("a reference that is no link is an external_id: %v", refs)
	}
	if got := strs(ind["evil.example"]["object_marking_refs"]); got[0] != TLPMarking("amber+strict") {
		t.Errorf("amber and amber+strict sources: marked %v", got)
	}
	if got := strs(ind["evil.example"]["indicator_types"]); !slices.Equal(got, []string{"anomalous-activity", "malicious-activity"}) {
		t.Errorf("phishing and scanner: indicator_types %v", got)
	}
	if gone := ind["gone.example"]; gone["revoked"] != true || gone["id"] == STIXIndicatorID("domain", "gone.example", 0) {
		t.Errorf("the revoked indicator: %v", gone)
	}
	again, _ := renderSTIX(t, opts, stixRows, revoked)
	ids := func(s string) []string {
		var b struct{ Objects []struct{ ID string } }
		json.Unmarshal([]byte(s), &b)
		var out []string
		for _, o := range b.Objects {
			out = append(out, o.ID)
		}
		return out
	}
	if a, b := ids(out), ids(again); !slices.Equal(a, b) {
		t.Errorf("ids differ between two exports: %v and %v", a, b)
	}
	// export.New's writer: the same objects, without valid_until (it knows no decay).
	plain := renderRows(t, "stix", stixRows...)
	if strings.Contains(plain, "valid_until") || !strings.Contains(plain, `"valid_from":"2026-08-30T10:00:00.000Z"`) {
		t.Errorf("export.New's STIX: %s", plain)
	}
}

func jsonschemaInstance(s string) (any, error) {
	var v any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	return v, d.Decode(&v)
}

// The validation bites: each object below breaks one rule of STIX 2.1, and is
// caught.
func TestSTIXValidationCatchesBrokenObjects(t *testing.T) {
	schemas := loadSTIXSchemas(t)
	now := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	good := func() []map[string]any {
		ind, _ := STIXIndicator{Row: stixRows[0], Created: now.Add(-time.Hour), Modified: now, ValidUntil: now.Add(time.Hour)}.Object()
		n := FluxNetwork{Name: "a.example", Domains: []string{"a.example"}, Addrs: []string{"45.10.0.7"}, FirstSeen: now.Add(-time.Hour), LastSeen: now}
		infraID := STIXInfrastructureID("a.example", 0)
		scoID, sco, _ := STIXObservable("45.10.0.7")
		rel := STIXConsistsOf(STIXVersion{ID: STIXRelationshipID("consists-of", infraID, scoID), Created: now, Modified: now}, infraID, scoID)
		return decodeObjects(t, STIXIdentity(), TLPMarkingObject("clear"), TLPMarkingObject("green"), ind,
			n.Infrastructure(STIXVersion{ID: infraID, Created: now, Modified: now}), sco, rel)
	}
	if p := schemas.Problems(good()); len(p) > 0 {
		t.Fatalf("the good objects: %v", p)
	}
	for _, c := range []struct {
		name   string
		typ    string
		break_ func(o map[string]any)
	}{
		{"an indicator without a pattern", "indicator", func(o map[string]any) { delete(o, "pattern") }},
		{"an id that is no UUID", "indicator", func(o map[string]any) { o["id"] = "indicator--45.10.0.7" }},
		{"a time not in UTC", "indicator", func(o map[string]any) { o["modified"] = "2026-09-01T02:00:00.000+02:00" }},
		{"a time without milliseconds", "indicator", func(o map[string]any) { o["created"] = "2026-09-01T00:00:00Z" }},
		{"a confidence over 100", "indicator", func(o map[string]any) { o["confidence"] = 101 }},
		{"revoked as a string", "indicator", func(o map[string]any) { o["revoked"] = "true" }},
		{"a custom property in capitals", "indicator", func(o map[string]any) { o["Score"] = 0.9 }},
		{"empty labels", "indicator", func(o map[string]any) { o["labels"] = []any{} }},
		{"an indicator type outside the vocabulary", "indicator", func(o map[string]any) { o["indicator_types"] = []any{"botnet-c2"} }},
		{"valid_until before valid_from", "indicator", func(o map[string]any) { o["valid_until"] = "2020-01-01T00:00:00.000Z" }},
		{"modified before created", "indicator", func(o map[string]any) { o["modified"] = "2020-01-01T00:00:00.000Z" }},
		{"a marking that is not there", "indicator", func(o map[string]any) { o["object_marking_refs"] = []any{TLPMarking("red")} }},
		{"a TLP 1.0 marking id under a TLP 2.0 name", "marking-definition", func(o map[string]any) {
			o["id"] = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
		}},
		{"a TLP 2.0 marking of the wrong level", "marking-definition", func(o map[string]any) {
			o["extensions"].(map[string]any)[tlp2Extension].(map[string]any)["tlp_2_0"] = "green"
		}},
		{"an identity without a name", "identity", func(o map[string]any) { delete(o, "name") }},
		{"an identity class outside the vocabulary", "identity", func(o map[string]any) { o["identity_class"] = "robot" }},
		{"an infrastructure without a name", "infrastructure", func(o map[string]any) { delete(o, "name") }},
		{"last_seen before first_seen", "infrastructure", func(o map[string]any) { o["last_seen"] = "2020-01-01T00:00:00.000Z" }},
		{"an address without its value", "ipv4-addr", func(o map[string]any) { delete(o, "value") }},
		{"an address whose id is random", "ipv4-addr", func(o map[string]any) { o["id"] = "ipv4-addr--6ba7b810-9dad-41d1-80b4-00c04fd430c8" }},
		{"a relationship from a marking", "relationship", func(o map[string]any) { o["source_ref"] = TLPMarking("clear") }},
		{"a relationship type in capitals", "relationship", func(o map[string]any) { o["relationship_type"] = "Consists-Of" }},
		{"a relationship to nothing there", "relationship", func(o map[string]any) {
			o["target_ref"] = "domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7"
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			objects := good()
			broken := false
			for _, o := range objects {
				if o["type"] == c.typ && !broken {
					c.break_(o)
					broken = true
				}
			}
			if !broken {
				t.Fatalf("no %s to break", c.typ)
			}
			if p := schemas.Problems(objects); len(p) == 0 {
				t.Error("passed")
			}
		})
	}
}

// STIX 2.1's own example of a deterministic observable id (§2.9).
func TestSTIXObservableID(t *testing.T) {
	if got := STIXObservableID("domain-name", "example.com"); got != "domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7" {
		t.Errorf("example.com: %s", got)
	}
	for _, c := range []struct{ value, typ string }{
		{"45.10.0.7", "ipv4-addr"}, {"2001:db8::7", "ipv6-addr"}, {"::ffff:45.10.0.7", "ipv4-addr"}, {"flux.example", "domain-name"},
	} {
		id, _, ok := STIXObservable(c.value)
		if !ok || !strings.HasPrefix(id, c.typ+"--") {
			t.Errorf("%s: %s %v, want a %s", c.value, id, ok, c.typ)
		}
	}
	if _, _, ok := STIXObservable("http://x.example/"); ok {
		t.Error("a URL is not an address nor a domain")
	}
}

// Flux networks: an infrastructure (botnet) consisting of its domains and
// agents, every object valid.
func TestSTIXFluxNetworkObjects(t *testing.T) {
	schemas := loadSTIXSchemas(t)
	now := time.Date(2026, 9, 1, 12, 34, 0, 0, time.UTC)
	n := FluxNetwork{Name: "a.example", Domains: []string{"a.example", "b.example"}, Addrs: []string{"45.10.0.7", "2001:db8::1"},
		ASNs: 2, FirstSeen: now.Add(-48 * time.Hour), LastSeen: now}
	infraID := STIXInfrastructureID(n.Name, 0)
	raws := [][]byte{STIXIdentity(), TLPMarkingObject(FluxNetworkTLP), n.Infrastructure(STIXVersion{ID: infraID, Created: now, Modified: now})}
	for _, v := range append(slices.Clone(n.Domains), n.Addrs...) {
		id, sco, ok := STIXObservable(v)
		if !ok {
			t.Fatalf("%s: no observable", v)
		}
		raws = append(raws, sco, STIXConsistsOf(STIXVersion{ID: STIXRelationshipID("consists-of", infraID, id), Created: now, Modified: now}, infraID, id))
	}
	objects := decodeObjects(t, raws...)
	for _, p := range schemas.Problems(objects) {
		t.Error(p)
	}
	infra := objects[2]
	if infra["last_seen"] != "2026-09-01T12:00:00.000Z" || infra["first_seen"] != "2026-08-30T12:34:00.000Z" {
		t.Errorf("infrastructure seen %v–%v", infra["first_seen"], infra["last_seen"])
	}
	// A sighting within the hour is no new version; a domain more is.
	later := n
	later.LastSeen = now.Add(10 * time.Minute)
	if later.InfrastructureDigest() != n.InfrastructureDigest() {
		t.Error("a sighting within the hour changed the digest")
	}
	later.Domains = append(later.Domains, "c.example")
	if later.InfrastructureDigest() == n.InfrastructureDigest() {
		t.Error("a new domain did not change the digest")
	}
	rev, err := STIXRevoke(n.Infrastructure(STIXVersion{ID: infraID, Created: now, Modified: now}), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if p := schemas.Problems(decodeObjects(t, STIXIdentity(), TLPMarkingObject(FluxNetworkTLP), rev)); len(p) > 0 {
		t.Errorf("the revoked version: %v", p)
	}
}

// The validity counts down the score's decay to the threshold.
func TestSTIXValidity(t *testing.T) {
	week := 7 * 24 * time.Hour
	for _, c := range []struct {
		opts  STIXOptions
		score float64
		want  time.Duration
	}{
		{STIXOptions{MinScore: 0.5, HalfLife: week}, 1, week},              // one half-life from 1 to 0.5
		{STIXOptions{MinScore: 0.25, HalfLife: week}, 1, 2 * week},         // two
		{STIXOptions{MinScore: 0, HalfLife: week}, 0.2, week},              // the floor, 0.1
		{STIXOptions{MinScore: 0.5, HalfLife: week}, 0.52, 24 * time.Hour}, // at least a day
		{STIXOptions{MinScore: 0.5, HalfLife: week}, 0.4, 24 * time.Hour},
		{STIXOptions{MinScore: 0.5}, 1, 0}, // no decay known: no end
	} {
		if got := c.opts.Validity(c.score); (got - c.want).Abs() > time.Second {
			t.Errorf("%+v, score %v: %v, want %v", c.opts, c.score, got, c.want)
		}
	}
}

func TestMostRestrictiveTLP(t *testing.T) {
	for _, c := range []struct {
		tlps []string
		want string
	}{
		{nil, "clear"}, {[]string{"", "clear"}, "clear"}, {[]string{"green", "clear"}, "green"},
		{[]string{"amber", "amber+strict", "green"}, "amber+strict"}, {[]string{"TLP:RED", "clear"}, "red"}, {[]string{"white"}, "clear"},
	} {
		if got := MostRestrictiveTLP(c.tlps); got != c.want {
			t.Errorf("%v: %s, want %s", c.tlps, got, c.want)
		}
	}
	if got := slices.Sorted(maps.Keys(tlp2Markings)); len(got) != len(TLPs) {
		t.Errorf("markings for %v, want one per TLP", got)
	}
}

// A new version is due when what the indicator says changes, not when its
// score or times do.
func TestSTIXIndicatorDigest(t *testing.T) {
	r := stixRows[0]
	base := STIXIndicator{Row: r, Created: time.Unix(0, 0), Modified: time.Unix(100, 0)}.Digest()
	moved := r
	moved.Score = 0.5
	if d := (STIXIndicator{Row: moved, Created: time.Unix(5, 0), Modified: time.Unix(200, 0), ValidUntil: time.Unix(900, 0)}).Digest(); d != base {
		t.Error("the score or the times changed the digest")
	}
	fewer := r
	fewer.Sources, fewer.Context = r.Sources[:1], r.Context[:1]
	if (STIXIndicator{Row: fewer}).Digest() == base {
		t.Error("a source less did not change the digest")
	}
	if (STIXIndicator{Row: Row{Type: "x", Value: "y"}}).Digest() != "" {
		t.Error("a type without a pattern has a digest")
	}
}
