//go:build linux

package subprocess_test

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
)

func TestConformance(t *testing.T) {
	executortest.Run(t, executortest.Config{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			ex, err := subprocess.New(subprocess.Options{Workers: 2, Logger: logger})
			require.NoError(t, err)
			return ex
		},
		OutOfProcess: true,
		SkipGoexit:   true, // issue 10: the worker does not answer runtime.Goexit yet
		Crashable:    true,
	})
}
