//go:build linux

package subprocess_test

import (
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/subprocess"
)

func TestConformance(t *testing.T) {
	executortest.Run(t, executortest.Config{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			ex, err := subprocess.New(subprocess.Options{Workers: 2, MaxQueue: 2, Logger: logger})
			require.NoError(t, err)
			return ex
		},
		OutOfProcess: true,
		Capacity:     4, // 2 workers + MaxQueue 2
		Crashable:    true,
	})
}

func TestStress(t *testing.T) {
	executortest.Stress(t, executortest.StressConfig{
		New: func(t *testing.T, logger hclog.Logger) executor.Executor {
			ex, err := subprocess.New(subprocess.Options{Workers: 4, MaxFrame: 64 << 10, Logger: logger})
			require.NoError(t, err)
			return ex
		},
		OutOfProcess: true,
		Crashable:    true,
		// Scaled for four worker processes on a loaded 2-core machine
		// under -race: every crash, timeout and cancellation costs a
		// worker start.
		Calls:      400,
		Submitters: 16,
		Limit:      50 * time.Millisecond,
		// The frame limit bounds an encoded input or result with its frame.
		MaxInput:  64 << 10,
		MaxResult: 64 << 10,
	})
}
