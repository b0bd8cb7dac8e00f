package taxii

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tip-project/tip/export"
)

// The OASIS STIX 2.1 schemas and the TLP 2.0 extension's, vendored with
// package export's tests (export/testdata; its stix_schema_test.go holds the
// same objects to the same rules, and to STIX's vocabularies).
const (
	schemaBase = "http://raw.githubusercontent.com/oasis-open/cti-stix2-json-schemas/stix2.1/schemas/"
	tlp2Schema = "https://raw.githubusercontent.com/oasis-open/cti-stix-common-objects/main/extension-definition-specifications/tlp-2.0/extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d.json"
)

type vendoredSchemas struct{}

func (vendoredSchemas) Load(url string) (any, error) {
	var path string
	if rel, ok := strings.CutPrefix(url, schemaBase); ok {
		path = filepath.Join("..", "export", "testdata", "stix2-json-schemas", "schemas", rel)
	} else if url == tlp2Schema {
		path = filepath.Join("..", "export", "testdata", "stix-tlp2", filepath.Base(url))
	} else {
		return nil, fmt.Errorf("schema %s is not vendored", url)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return jsonschema.UnmarshalJSON(f)
}

// stixProblems lists what is wrong with a collection's objects: an object
// failing its type's schema, times out of order, a reference to an object the
// collection does not hold, an observable whose id is not its deterministic one.
func stixProblems(t *testing.T, raws []json.RawMessage) []string {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.UseLoader(vendoredSchemas{})
	schemas := map[string][]*jsonschema.Schema{}
	for typ, rels := range map[string][]string{
		"identity": {"sdos/identity.json"}, "indicator": {"sdos/indicator.json"}, "infrastructure": {"sdos/infrastructure.json"},
		"relationship": {"sros/relationship.json"}, "marking-definition": {"common/marking-definition.json", tlp2Schema},
		"ipv4-addr": {"observables/ipv4-addr.json"}, "ipv6-addr": {"observables/ipv6-addr.json"}, "domain-name": {"observables/domain-name.json"},
	} {
		for _, rel := range rels {
			if !strings.Contains(rel, "://") {
				rel = schemaBase + rel
			}
			s, err := c.Compile(rel)
			if err != nil {
				t.Fatalf("%s: %v", rel, err)
			}
			schemas[typ] = append(schemas[typ], s)
		}
	}
	var out []string
	ids := map[string]bool{}
	objects := make([]map[string]any, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &objects[i]); err != nil {
			out = append(out, fmt.Sprintf("%s: %v", raw, err))
			continue
		}
		ids[fmt.Sprint(objects[i]["id"])] = true
	}
	for i, o := range objects {
		id, typ := fmt.Sprint(o["id"]), fmt.Sprint(o["type"])
		bad := func(format string, args ...any) { out = append(out, id+": "+fmt.Sprintf(format, args...)) }
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raws[i])))
		if err != nil {
			bad("%v", err)
			continue
		}
		if len(schemas[typ]) == 0 {
			bad("no schema for type %q", typ)
		}
		for _, s := range schemas[typ] {
			if err := s.Validate(inst); err != nil {
				bad("%v", err)
			}
		}
		for _, pair := range [][2]string{{"modified", "created"}, {"valid_until", "valid_from"}, {"last_seen", "first_seen"}} {
			l, _ := o[pair[0]].(string)
			e, _ := o[pair[1]].(string)
			lt, err1 := time.Parse(time.RFC3339Nano, l)
			et, err2 := time.Parse(time.RFC3339Nano, e)
			if l != "" && e != "" && (err1 != nil || err2 != nil || lt.Before(et)) {
				bad("%s %s before %s %s", pair[0], l, pair[1], e)
			}
		}
		refs := []any{o["created_by_ref"], o["source_ref"], o["target_ref"]}
		if ms, ok := o["object_marking_refs"].([]any); ok {
			refs = append(refs, ms...)
		}
		for _, r := range refs {
			if r, ok := r.(string); ok && !ids[r] {
				bad("refers to %s, which the collection does not hold", r)
			}
		}
		if v, ok := o["value"].(string); ok && export.STIXObservableID(typ, v) != id {
			bad("id is not the deterministic one")
		}
	}
	return out
}

// The checks bite: a collection whose indicator lacks its pattern, refers to a
// marking the collection does not hold, or whose observable has a random id,
// fails them.
func TestSTIXProblemsCatchBrokenObjects(t *testing.T) {
	now := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	ind, _ := export.STIXIndicator{Row: export.Row{Type: "ipv4", Value: "45.10.0.7", Score: 0.9, Sources: []string{"a"}},
		Created: now, Modified: now}.Object()
	_, sco, _ := export.STIXObservable("45.10.0.7")
	good := []json.RawMessage{export.STIXIdentity(), export.TLPMarkingObject("clear"), ind, sco}
	if p := stixProblems(t, good); len(p) > 0 {
		t.Fatalf("the good objects: %v", p)
	}
	for name, broken := range map[string]json.RawMessage{
		"no pattern":     json.RawMessage(strings.Replace(string(ind), `"pattern":`, `"patern":`, 1)),
		"a missing mark": json.RawMessage(strings.Replace(string(ind), export.TLPMarking("clear"), export.TLPMarking("red"), 1)),
		"a random id":    json.RawMessage(`{"type":"ipv4-addr","spec_version":"2.1","id":"ipv4-addr--6ba7b810-9dad-41d1-80b4-00c04fd430c8","value":"45.10.0.7"}`),
	} {
		objects := append([]json.RawMessage{export.STIXIdentity(), export.TLPMarkingObject("clear")}, broken)
		if p := stixProblems(t, objects); len(p) == 0 {
			t.Errorf("%s: passed", name)
		}
	}
}
