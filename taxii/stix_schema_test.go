package taxii

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/internal/stixtest"
)

// stixProblems lists what is wrong with a collection's objects, by the rules
// of package stixtest (OASIS's schemas, STIX's vocabularies, times in order,
// references to objects the collection holds, deterministic observable ids).
func stixProblems(t *testing.T, raws []json.RawMessage) []string {
	t.Helper()
	objects := make([]map[string]any, 0, len(raws))
	var out []string
	for _, raw := range raws {
		var o map[string]any
		if err := json.Unmarshal(raw, &o); err != nil {
			out = append(out, fmt.Sprintf("%s: %v", raw, err))
			continue
		}
		objects = append(objects, o)
	}
	return append(out, stixtest.Load(t, export.STIXObservableID).Problems(objects)...)
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
