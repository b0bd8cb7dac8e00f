package activities

import (
	"log/slog"
	"testing"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/tip-project/tip/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// runActivity runs one activity of a (an activity struct) in Temporal's test activity environment
// (heartbeats and activity info work as on a worker) and decodes its result.
func runActivity[T any](t *testing.T, a any, fn any, args ...any) (T, error) {
	t.Helper()
	return runLogged[T](t, nil, a, fn, args...)
}

// runLogged runs one activity in a test environment, logging to logger (nil: the
// test suite's default logger).
func runLogged[T any](t *testing.T, logger *slog.Logger, a any, fn any, args ...any) (T, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	if logger != nil {
		s.SetLogger(log.NewStructuredLogger(logger))
	}
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	var out T
	v, err := env.ExecuteActivity(fn, args...)
	if err != nil {
		return out, err
	}
	return out, v.Get(&out)
}
