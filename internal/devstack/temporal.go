package devstack

import (
	"context"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

func (s *Stack) startTemporal(ctx context.Context) error {
	if pid, ok := s.processAlive(Temporal); ok {
		s.logf("already running", "service", Temporal, "pid", pid)
		return nil
	}
	bin, err := s.tool("temporal")
	if err != nil {
		return err
	}
	for _, p := range []int{s.TemporalPort, s.TemporalUIPort, s.TemporalHTTPPort, s.TemporalMetricPort} {
		if err := checkPortFree(Temporal, s.Host, p); err != nil {
			return err
		}
	}
	args := []string{"server", "start-dev",
		"--ip", s.Host,
		"--port", strconv.Itoa(s.TemporalPort),
		"--http-port", strconv.Itoa(s.TemporalHTTPPort),
		"--metrics-port", strconv.Itoa(s.TemporalMetricPort),
		"--db-filename", filepath.Join(s.dir(Temporal), "temporal.db"),
		"--namespace", s.Namespace,
		"--log-level", "warn",
		// A write-ahead log, synced at checkpoints rather than at every commit:
		// every workflow task commits a transaction, and thousands of flux
		// monitors make tens a second. A crash of the machine may lose the last
		// commits, never corrupt the file.
		"--sqlite-pragma", "journal_mode=wal",
		"--sqlite-pragma", "synchronous=normal",
	}
	if s.TemporalUIPort != 0 {
		args = append(args, "--ui-ip", s.Host, "--ui-port", strconv.Itoa(s.TemporalUIPort))
	} else {
		args = append(args, "--headless")
	}
	pid, err := s.spawn(Temporal, nil, bin, args...)
	if err != nil {
		return err
	}
	alive := func() bool { _, ok := s.processAlive(Temporal); return ok }
	if err := s.waitFor(ctx, Temporal, 90*time.Second, alive, func(ctx context.Context) error {
		c, err := client.Dial(client.Options{HostPort: s.TemporalAddress(), Namespace: s.Namespace, Logger: quietLogger{}})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.Namespace})
		return err
	}); err != nil {
		return err
	}
	s.logf("started", "service", Temporal, "pid", pid, "address", s.TemporalAddress(), "ui", s.TemporalUI())
	return nil
}

// quietLogger keeps the SDK's connection retries out of start-up output.
type quietLogger struct{}

func (quietLogger) Debug(string, ...interface{}) {}
func (quietLogger) Info(string, ...interface{})  {}
func (quietLogger) Warn(string, ...interface{})  {}
func (quietLogger) Error(string, ...interface{}) {}
