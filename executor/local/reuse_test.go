package local_test

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/local"
)

func TestConformanceSubmitFuture(t *testing.T) {
	executortest.Run(t, executortest.Config{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			return executortest.ThroughSubmitFuture(local.New(local.Options{Logger: logger}))
		},
		Synctest:     true,
		RunsOnCaller: true,
	})
}
