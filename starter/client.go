// Package starter holds TIP's client side: dialing Temporal with clear errors,
// setting up the namespace and search attributes, and the commands that start,
// signal and query workflows.
package starter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tip-project/tip/config"
)

// Dial connects to Temporal, or fails within seconds with one sentence naming the
// address and the fix.
func Dial(ctx context.Context, cfg config.Temporal, logger *slog.Logger, opts client.Options) (client.Client, error) {
	opts.HostPort = cfg.Address
	opts.Namespace = cfg.Namespace
	if opts.Logger == nil {
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		opts.Logger = sdklog.NewStructuredLogger(logger)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, ExplainTemporal(cfg.Address, err)
	}
	return c, nil
}

// ExplainTemporal turns a Temporal client error into one sentence.
func ExplainTemporal(addr string, err error) error {
	msg := err.Error()
	var nf *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &nf):
		return fmt.Errorf("temporal at %s has no namespace %q; run `tip setup` (or fix temporal.namespace / TIP_TEMPORAL_NAMESPACE)", addr, nf.Namespace)
	case strings.Contains(msg, "connection refused"):
		return fmt.Errorf("temporal at %s is not reachable (connection refused); start it with `make up` or fix temporal.address / TIP_TEMPORAL_ADDRESS", addr)
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "DeadlineExceeded") || strings.Contains(msg, "deadline exceeded"):
		return fmt.Errorf("temporal at %s did not answer in time; check that it runs and that temporal.address / TIP_TEMPORAL_ADDRESS points at it", addr)
	}
	return fmt.Errorf("temporal at %s: %v", addr, err)
}

// CheckNamespace verifies that the namespace exists.
func CheckNamespace(ctx context.Context, c client.Client, cfg config.Temporal) (*workflowservice.DescribeNamespaceResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: cfg.Namespace})
	if err != nil {
		return nil, ExplainTemporal(cfg.Address, err)
	}
	return resp, nil
}
