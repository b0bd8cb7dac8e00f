package starter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/namespace/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows"
)

// EnsureNamespace registers the namespace with the configured retention, or raises
// the retention of an existing one that keeps finished runs for less.
func EnsureNamespace(ctx context.Context, c client.Client, cfg config.Temporal) (changed bool, err error) {
	resp, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: cfg.Namespace})
	var nf *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &nf):
		_, err = c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        cfg.Namespace,
			Description:                      "TIP: Tracking Intelligence Project",
			WorkflowExecutionRetentionPeriod: durationpb.New(cfg.Retention),
		})
		if err != nil {
			return false, ExplainTemporal(cfg.Address, err)
		}
		return true, waitNamespace(ctx, c, cfg)
	case err != nil:
		return false, ExplainTemporal(cfg.Address, err)
	}
	if resp.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration() >= cfg.Retention {
		return false, nil
	}
	_, err = c.WorkflowService().UpdateNamespace(ctx, &workflowservice.UpdateNamespaceRequest{
		Namespace: cfg.Namespace,
		Config:    &namespace.NamespaceConfig{WorkflowExecutionRetentionTtl: durationpb.New(cfg.Retention)},
	})
	if err != nil {
		return false, ExplainTemporal(cfg.Address, err)
	}
	return true, nil
}

// waitNamespace waits until a newly registered namespace is usable everywhere: the
// server's services learn of it from a cache that refreshes every few seconds.
func waitNamespace(ctx context.Context, c client.Client, cfg config.Temporal) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: cfg.Namespace})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return ExplainTemporal(cfg.Address, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// EnsureSearchAttributes registers every search attribute TIP uses that the
// namespace lacks, and fails if one exists with another type.
func EnsureSearchAttributes(ctx context.Context, c client.Client, cfg config.Temporal) (added []string, err error) {
	list, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: cfg.Namespace})
	if err != nil {
		return nil, ExplainTemporal(cfg.Address, err)
	}
	missing := map[string]enums.IndexedValueType{}
	for _, key := range workflows.SearchAttributes {
		have, ok := list.GetCustomAttributes()[key.GetName()]
		switch {
		case !ok:
			missing[key.GetName()] = key.GetValueType()
			added = append(added, key.GetName())
		case have != key.GetValueType():
			return nil, fmt.Errorf("temporal at %s: search attribute %s is registered as %s in namespace %s, TIP needs %s; remove it with `temporal operator search-attribute remove` and rerun `tip setup`",
				cfg.Address, key.GetName(), have, cfg.Namespace, key.GetValueType())
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: cfg.Namespace, SearchAttributes: missing})
	if err != nil {
		return nil, ExplainTemporal(cfg.Address, err)
	}
	return added, nil
}

// CheckSearchAttributes lists the TIP search attributes the namespace lacks.
func CheckSearchAttributes(ctx context.Context, c client.Client, cfg config.Temporal) (missing []string, err error) {
	list, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: cfg.Namespace})
	if err != nil {
		return nil, ExplainTemporal(cfg.Address, err)
	}
	for _, key := range workflows.SearchAttributes {
		if have, ok := list.GetCustomAttributes()[key.GetName()]; !ok || have != key.GetValueType() {
			missing = append(missing, key.GetName())
		}
	}
	return missing, nil
}

// Setup prepares a deployment, idempotently: the namespace with its retention, the
// search attributes, the schema migrations and the bucket.
func Setup(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	c, err := Dial(ctx, cfg.Temporal, log, client.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	changed, err := EnsureNamespace(ctx, c, cfg.Temporal)
	if err != nil {
		return err
	}
	log.Info("namespace ready", "namespace", cfg.Temporal.Namespace, "retention", cfg.Temporal.Retention, "changed", changed)
	added, err := EnsureSearchAttributes(ctx, c, cfg.Temporal)
	if err != nil {
		return err
	}
	log.Info("search attributes ready", "added", added)
	db, blobs, err := storage.Prepare(ctx, cfg, log)
	if err != nil {
		return err
	}
	db.Close()
	log.Info("storage ready", "postgres", db.Addr(), "s3", blobs.Endpoint(), "bucket", blobs.Bucket())
	return nil
}
