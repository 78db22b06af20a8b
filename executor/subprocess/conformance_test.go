package subprocess_test

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
)

func TestConformance(t *testing.T) {
	executortest.Run(t, executortest.Config{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			return subprocess.New(subprocess.Options{Workers: 2, Logger: logger})
		},
		OutOfProcess: true,
		SkipGoexit:   true, // issue 10: the worker does not answer runtime.Goexit yet
		Crashable:    true,
	})
}
