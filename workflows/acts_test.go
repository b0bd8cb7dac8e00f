package workflows

import "github.com/tip-project/tip/activities"

// a names the real activities in mocks, so a mock's signature is the activity's.
var a *activities.Activities
