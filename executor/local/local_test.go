package local_test

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/local"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	executortest.Run(t, executortest.Config{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			return local.New(local.Options{Logger: logger})
		},
		Synctest:     true,
		RunsOnCaller: true,
	})
}

func TestStress(t *testing.T) {
	executortest.Stress(t, executortest.StressConfig{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			return local.New(local.Options{Logger: logger})
		},
		RunsOnCaller: true,
	})
}
