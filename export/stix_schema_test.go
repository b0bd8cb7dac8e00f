package export

import (
	"encoding/json"
	"testing"

	"github.com/tip-project/tip/internal/stixtest"
)

// loadSTIXSchemas is stixtest's validator, holding observables to this
// package's ids.
func loadSTIXSchemas(t testing.TB) *stixtest.Schemas { return stixtest.Load(t, STIXObservableID) }

// decodeObjects reads JSON objects.
func decodeObjects(t testing.TB, raws ...[]byte) []map[string]any {
	t.Helper()
	out := make([]map[string]any, 0, len(raws))
	for _, r := range raws {
		var o map[string]any
		if err := json.Unmarshal(r, &o); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		out = append(out, o)
	}
	return out
}
