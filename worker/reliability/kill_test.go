package reliability_test

import (
	"context"
	"testing"
	"time"

	activitypb "go.temporal.io/api/activity/v1"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/testenv"
	labfeeds "github.com/tip-project/tip/lab/feeds"
)

// TestWorkerKilledMidLoadLosesAndDuplicatesNothing runs `tip worker` as its own
// process, SIGKILLs it while the large feed streams into PostgreSQL, starts
// another worker and checks that the refresh completes with every source listing
// exactly what the lab serves, recorded once.
func TestWorkerKilledMidLoadLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	l := startLab(t, labfeeds.Options{LargeLines: largeLines})
	sources := []string{"lab-large", "spamhaus-drop", "feodo-ipblocklist", "blocklistde-all", "cins-army", "dshield-block", "openphish"}
	cfg := newConfig(t, l.writeCatalog(t, sources...), testenv.NewDatabase(t))
	tip := testenv.BuildTip(t)
	c := dial(t, cfg)

	first := testenv.StartWorker(t, tip, cfg)
	run := startRefresh(t, c, cfg)
	large := childOf(t, c, run, "lab-large")
	waitLoading(t, c, large)
	first.Kill(t)

	second := testenv.StartWorker(t, tip, cfg)
	expireAttempts(t, c, cfg, run, first.Identity)
	res := finish(t, c, run, 2*time.Minute)
	checkAllSourcesLoaded(t, res, len(sources))
	if n, identity := attempt(t, c, large, "LoadSource"); n < 2 || identity != second.Identity {
		t.Errorf("the large feed's load completed in attempt %d by %q; want a retry by the second worker %q", n, identity, second.Identity)
	}

	st := readStored(t, cfg.Postgres.DSN)
	kids := children(t, c, run)
	for _, s := range sources {
		checkLoaded(t, l, st, s, kids[s])
	}
	if len(st.runs) != len(sources) {
		t.Errorf("runs recorded for %d sources, want %d", len(st.runs), len(sources))
	}
}

// expireAttempts makes Temporal give up now on the activity attempts a killed
// worker held, instead of at their heartbeat timeouts (one minute for fetches,
// two for loads), which is how Temporal learns that a worker died: it shortens
// their heartbeat timeout (what `temporal activity update-options` does) until
// each attempt has timed out, then restores the workflow's options for the retry.
func expireAttempts(t *testing.T, c client.Client, cfg config.Config, run client.WorkflowRun, identity string) {
	t.Helper()
	ctx := context.Background()
	type held struct {
		workflowID, activityID, activityType string
		attempt                              int32
	}
	var all []held
	ids := []string{run.GetID()}
	d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range d.GetPendingChildren() {
		ids = append(ids, k.GetWorkflowId())
	}
	for _, id := range ids {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range d.GetPendingActivities() {
			if a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED && a.GetLastWorkerIdentity() == identity {
				all = append(all, held{id, a.GetActivityId(), a.GetActivityType().GetName(), a.GetAttempt()})
			}
		}
	}
	update := func(h held, r *workflowservice.UpdateActivityOptionsRequest) {
		r.Namespace = cfg.Temporal.Namespace
		r.Execution = &commonpb.WorkflowExecution{WorkflowId: h.workflowID}
		r.Activity = &workflowservice.UpdateActivityOptionsRequest_Id{Id: h.activityID}
		if _, err := c.WorkflowService().UpdateActivityOptions(ctx, r); err != nil {
			t.Fatalf("update the options of activity %s of %s: %v", h.activityID, h.workflowID, err)
		}
	}
	for _, h := range all {
		update(h, &workflowservice.UpdateActivityOptionsRequest{
			ActivityOptions: &activitypb.ActivityOptions{HeartbeatTimeout: durationpb.New(time.Second)},
			UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"heartbeat_timeout"}},
		})
	}
	for _, h := range all {
		waitFor(t, c, h.workflowID, 30*time.Second, "the killed worker's attempt of activity "+h.activityID+" of "+h.workflowID+" times out",
			func(_ *workflowpb.WorkflowExecutionInfo, acts []*workflowpb.PendingActivityInfo, _ []*workflowpb.PendingChildExecutionInfo) bool {
				for _, a := range acts {
					if a.GetActivityId() == h.activityID {
						return a.GetAttempt() > h.attempt
					}
				}
				return true
			})
		update(h, &workflowservice.UpdateActivityOptionsRequest{RestoreOriginal: true})
	}
	for _, h := range all {
		t.Logf("expired the killed worker's attempt %d of %s in %s", h.attempt, h.activityType, h.workflowID)
	}
}
