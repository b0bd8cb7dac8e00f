package workflows

import (
	"go.temporal.io/sdk/testsuite"

	"github.com/tip-project/tip/activities"
)

// a names the real activities in mocks, so a mock's name and signature are the
// activity's (its method on the module's struct).
var a = struct {
	*activities.Blacklist
	*activities.Spam
	*activities.AgentSync
	*activities.Flux
	*activities.Probe
	*activities.Retention
}{}

// registerActivities registers every module's activities, as the worker does.
func registerActivities(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivity(&activities.Blacklist{})
	env.RegisterActivity(&activities.Spam{})
	env.RegisterActivity(&activities.AgentSync{})
	env.RegisterActivity(&activities.Flux{})
	env.RegisterActivity(&activities.Probe{})
	env.RegisterActivity(&activities.Retention{})
}
