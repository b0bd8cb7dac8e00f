package main

import (
	"github.com/spf13/cobra"

	"github.com/tip-project/tip/worker"
)

func workerCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run a Temporal worker for every TIP workflow and activity until SIGINT/SIGTERM",
		Long: `Run a worker: apply pending migrations, create the bucket, register every workflow
and activity on the task queue, serve Prometheus metrics on worker.metrics_address,
and on SIGINT/SIGTERM stop polling and let running activities finish.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return worker.Run(cmd.Context(), a.cfg, a.log)
		},
	}
}
