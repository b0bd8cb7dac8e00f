package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaBase is where the OASIS schemas say they live ($id); the loader reads
// them from the vendored copy in testdata.
const schemaBase = "http://raw.githubusercontent.com/oasis-open/cti-stix2-json-schemas/stix2.1/schemas/"

type vendoredSchemas struct{}

func (vendoredSchemas) Load(url string) (any, error) {
	rel, ok := strings.CutPrefix(url, schemaBase)
	if !ok {
		return nil, fmt.Errorf("schema %s is not vendored", url)
	}
	f, err := os.Open(filepath.Join("testdata", "stix2-json-schemas", "schemas", rel))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return jsonschema.UnmarshalJSON(f)
}

// Every object of a STIX export, and the bundle, passes OASIS's STIX 2.1 JSON
// schemas; the ids are the same from one export to the next.
func TestSTIXBundleMatchesTheOASISSchemas(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.UseLoader(vendoredSchemas{})
	compile := func(rel string) *jsonschema.Schema {
		s, err := c.Compile(schemaBase + rel)
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		return s
	}
	bundleSchema, indicator, identity := compile("common/bundle.json"), compile("sdos/indicator.json"), compile("sdos/identity.json")
	first := time.Date(2026, 8, 30, 10, 0, 0, 0, time.UTC)
	rows := []Row{
		{Type: "ipv4", Value: "45.10.0.7", Score: 0.93, Sources: []string{"feodo", "tip-flux-agents"}, FirstSeen: []time.Time{first, first.Add(time.Hour)}},
		{Type: "ipv6", Value: "2001:db8::7", Score: 0.5, Sources: []string{"a"}},
		{Type: "cidr", Value: "45.20.0.0/16", Score: 0.8, Sources: []string{"drop"}, FirstSeen: []time.Time{first}},
		{Type: "domain", Value: "evil.example", Score: 1, Sources: []string{"a"}},
		{Type: "url", Value: `http://evil.example/it's\here`, Score: 0.7, Sources: []string{"urlhaus"}},
		{Type: "sha1", Value: "da39a3ee5e6b4b0d3255bfef95601890afd80709", Score: 0.8, Sources: []string{"sslbl"}},
		{Type: "asn", Value: "AS64500", Score: 0.6, Sources: []string{"asn-drop"}},
	}
	out := renderRows(t, "stix", rows...)
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if err := bundleSchema.Validate(inst); err != nil {
		t.Errorf("the bundle: %v", err)
	}
	objects := inst.(map[string]any)["objects"].([]any)
	if len(objects) != 1+len(rows) {
		t.Fatalf("%d objects, want the identity and %d indicators", len(objects), len(rows))
	}
	patterns := map[string]bool{}
	for _, o := range objects {
		m := o.(map[string]any)
		schema := indicator
		if m["type"] == "identity" {
			schema = identity
		}
		if err := schema.Validate(o); err != nil {
			b, _ := json.Marshal(o)
			t.Errorf("%s: %v", b, err)
		}
		if p, ok := m["pattern"].(string); ok {
			patterns[p] = true
		}
	}
	// The schemas can fail: an indicator without its pattern does not pass.
	broken := map[string]any{}
	for k, v := range objects[1].(map[string]any) {
		if k != "pattern" {
			broken[k] = v
		}
	}
	if err := indicator.Validate(broken); err == nil {
		t.Error("an indicator without a pattern passed the schema")
	}
	for _, want := range []string{"[ipv4-addr:value = '45.10.0.7']", "[ipv4-addr:value ISSUBSET '45.20.0.0/16']", "[ipv6-addr:value = '2001:db8::7']",
		"[domain-name:value = 'evil.example']", `[url:value = 'http://evil.example/it\'s\\here']`,
		"[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']", "[autonomous-system:number = 64500]"} {
		if !patterns[want] {
			t.Errorf("no pattern %s among %v", want, patterns)
		}
	}
	// The earliest first sighting is the indicator's valid_from.
	if !strings.Contains(out, `"valid_from":"2026-08-30T10:00:00.000Z"`) {
		t.Error("valid_from is not the earliest first sighting")
	}
	again := renderRows(t, "stix", rows...)
	ids := func(s string) []string {
		var b struct{ Objects []struct{ ID string } }
		json.Unmarshal([]byte(s), &b)
		var out []string
		for _, o := range b.Objects {
			out = append(out, o.ID)
		}
		return out
	}
	if a, b := ids(out), ids(again); !bytes.Equal([]byte(strings.Join(a, ",")), []byte(strings.Join(b, ","))) {
		t.Errorf("ids differ between two exports: %v and %v", a, b)
	}
}
