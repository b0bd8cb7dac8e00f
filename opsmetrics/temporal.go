package opsmetrics

import (
	"context"
	"errors"
	"sync"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/workflows/contract"
)

// TemporalClient reads Temporal through a client dialled at its first use,
// and again after a dial that failed: a server of metrics starts, and serves
// its other parts, while Temporal is down.
type TemporalClient struct {
	cfg  config.Temporal
	dial func(context.Context) (client.Client, error)

	mu sync.Mutex
	c  client.Client
}

// NewTemporalClient returns a TemporalClient of the task queue cfg names,
// whose client dial makes.
func NewTemporalClient(cfg config.Temporal, dial func(context.Context) (client.Client, error)) *TemporalClient {
	return &TemporalClient{cfg: cfg, dial: dial}
}

func (t *TemporalClient) client(ctx context.Context) (client.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		c, err := t.dial(ctx)
		if err != nil {
			return nil, err
		}
		t.c = c
	}
	return t.c, nil
}

// Close closes the client, if one was dialled.
func (t *TemporalClient) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c != nil {
		t.c.Close()
		t.c = nil
	}
}

// Core describes the core workflow, and queries a running one for its status
// as `tip core status` does.
func (t *TemporalClient) Core(ctx context.Context) (contract.CoreStatus, bool, error) {
	c, err := t.client(ctx)
	if err != nil {
		return contract.CoreStatus{}, false, err
	}
	d, err := c.DescribeWorkflowExecution(ctx, contract.CoreWorkflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return contract.CoreStatus{}, false, nil
	}
	if err != nil {
		return contract.CoreStatus{}, false, starter.ExplainTemporal(t.cfg.Address, err)
	}
	if d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return contract.CoreStatus{}, false, nil
	}
	st, err := starter.CoreStatus(ctx, c)
	return st, true, err
}

// Pollers counts the workers polling the task queue (starter.Pollers).
func (t *TemporalClient) Pollers(ctx context.Context) (int, error) {
	c, err := t.client(ctx)
	if err != nil {
		return 0, err
	}
	return starter.Pollers(ctx, c, t.cfg)
}
