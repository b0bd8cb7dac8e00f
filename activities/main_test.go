package activities

import (
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/tip-project/tip/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// runActivity runs one activity of a in Temporal's test activity environment
// (heartbeats and activity info work as on a worker) and decodes its result.
func runActivity[T any](t *testing.T, a *Activities, fn any, args ...any) (T, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	var out T
	v, err := env.ExecuteActivity(fn, args...)
	if err != nil {
		return out, err
	}
	return out, v.Get(&out)
}
