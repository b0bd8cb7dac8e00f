// Package stixtest holds STIX 2.1 objects to OASIS's JSON schemas (vendored
// with their licence in export/testdata) and to the rules of STIX the schemas
// do not express, for the tests of the packages that write STIX (export,
// taxii).
package stixtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// testdata is export's testdata folder, found from this file's place.
func testdata() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "export", "testdata")
}

// schemaBase is where the OASIS schemas say they live ($id); the loader reads
// them from the vendored copy in testdata, as it does the TLP 2.0 extension's.
const (
	schemaBase = "http://raw.githubusercontent.com/oasis-open/cti-stix2-json-schemas/stix2.1/schemas/"
	tlp2Schema = "https://raw.githubusercontent.com/oasis-open/cti-stix-common-objects/main/extension-definition-specifications/tlp-2.0/extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d.json"
)

// vendoredSchemas loads the schemas from export/testdata, wherever the test
// runs.
type vendoredSchemas struct{}

func (vendoredSchemas) Load(url string) (any, error) {
	var path string
	if rel, ok := strings.CutPrefix(url, schemaBase); ok {
		path = filepath.Join(testdata(), "stix2-json-schemas", "schemas", rel)
	} else if url == tlp2Schema {
		path = filepath.Join(testdata(), "stix-tlp2", filepath.Base(url))
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

// Schemas holds every object TIP emits to OASIS's schema of its type, and
// to the rules of STIX 2.1 the schemas do not express.
type Schemas struct {
	byType map[string][]*jsonschema.Schema
	vocab  map[string]*jsonschema.Schema // property → its open vocabulary
	Bundle *jsonschema.Schema            // a bundle's
	// ObservableID is the deterministic id of an observable of a type and
	// value (export.STIXObservableID): ids are held to it.
	ObservableID func(typ, value string) string
}

// Load compiles the vendored schemas; observableID is export.STIXObservableID
// (passed in: export's own tests use this package).
func Load(t testing.TB, observableID func(typ, value string) string) *Schemas {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.UseLoader(vendoredSchemas{})
	compile := func(url string) *jsonschema.Schema {
		if !strings.Contains(url, "://") {
			url = schemaBase + url
		}
		s, err := c.Compile(url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		return s
	}
	s := &Schemas{byType: map[string][]*jsonschema.Schema{}, vocab: map[string]*jsonschema.Schema{}, Bundle: compile("common/bundle.json"),
		ObservableID: observableID}
	for typ, rel := range map[string]string{
		"identity": "sdos/identity.json", "indicator": "sdos/indicator.json", "infrastructure": "sdos/infrastructure.json",
		"relationship": "sros/relationship.json", "marking-definition": "common/marking-definition.json",
		"ipv4-addr": "observables/ipv4-addr.json", "ipv6-addr": "observables/ipv6-addr.json",
		"domain-name": "observables/domain-name.json", "autonomous-system": "observables/autonomous-system.json",
	} {
		s.byType[typ] = []*jsonschema.Schema{compile(rel)}
	}
	// TIP's markings are TLP 2.0's, which the extension's own schema pins down.
	s.byType["marking-definition"] = append(s.byType["marking-definition"], compile(tlp2Schema))
	for prop, def := range map[string]string{
		"indicator_types":      "sdos/indicator.json#/definitions/indicator-type-ov",
		"pattern_type":         "sdos/indicator.json#/definitions/pattern-type-ov",
		"infrastructure_types": "sdos/infrastructure.json#/definitions/infrastructure-type-ov",
		"identity_class":       "sdos/identity.json#/definitions/identity-class-ov",
	} {
		s.vocab[prop] = compile(def)
	}
	return s
}

// Problems lists what is wrong with a set of objects (a bundle's, a
// collection's): an object failing its type's schema, a value outside STIX's
// vocabularies, times out of order, a reference to an object not in the set,
// an observable whose id is not its deterministic one.
func (s *Schemas) Problems(objects []map[string]any) []string {
	var out []string
	ids := map[string]bool{}
	for _, o := range objects {
		id, _ := o["id"].(string)
		ids[id] = true
	}
	for _, o := range objects {
		id, _ := o["id"].(string)
		typ, _ := o["type"].(string)
		bad := func(format string, args ...any) { out = append(out, id+": "+fmt.Sprintf(format, args...)) }
		schemas := s.byType[typ]
		if len(schemas) == 0 {
			bad("no schema for type %q", typ)
		}
		// the validator wants JSON's own types (numbers as json.Number, ...)
		raw, _ := json.Marshal(o)
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
		if err != nil {
			bad("%v", err)
			continue
		}
		for _, sc := range schemas {
			if err := sc.Validate(inst); err != nil {
				bad("%v", err)
			}
		}
		for prop, vocab := range s.vocab {
			var vals []any
			switch v := inst.(map[string]any)[prop].(type) {
			case string:
				vals = []any{v}
			case []any:
				vals = v
			}
			for _, v := range vals {
				if err := vocab.Validate(v); err != nil {
					bad("%s %v is not in STIX's vocabulary", prop, v)
				}
			}
		}
		after := func(later, earlier string, strict bool) {
			l, _ := o[later].(string)
			e, _ := o[earlier].(string)
			if l == "" || e == "" {
				return
			}
			lt, err1 := time.Parse(time.RFC3339Nano, l)
			et, err2 := time.Parse(time.RFC3339Nano, e)
			if err1 != nil || err2 != nil || lt.Before(et) || strict && !lt.After(et) {
				bad("%s %s is not after %s %s", later, l, earlier, e)
			}
		}
		after("modified", "created", false)
		after("valid_until", "valid_from", true)
		after("last_seen", "first_seen", false)
		refs := []string{}
		for _, p := range []string{"created_by_ref", "source_ref", "target_ref"} {
			if r, ok := o[p].(string); ok {
				refs = append(refs, r)
			}
		}
		if ms, ok := o["object_marking_refs"].([]any); ok {
			for _, m := range ms {
				r, _ := m.(string)
				if !strings.HasPrefix(r, "marking-definition--") {
					bad("marking %s is not a marking definition", r)
				}
				refs = append(refs, r)
			}
		}
		for _, r := range refs {
			if !ids[r] {
				bad("refers to %s, which is not there", r)
			}
		}
		if v, ok := o["value"].(string); ok && slices.Contains([]string{"ipv4-addr", "ipv6-addr", "domain-name"}, typ) {
			if want := s.ObservableID(typ, v); id != want {
				bad("id is not the deterministic %s", want)
			}
		}
	}
	return out
}
