package pool_test

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/executor"
	"github.com/flowline-go/flowline/executor/executortest"
	"github.com/flowline-go/flowline/executor/pool"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     pool.Options
		capacity int // Workers + Queue
	}{
		{"default", pool.Options{}, 0},
		{"one worker, no queue", pool.Options{Workers: 1, Queue: -1}, 1},
		{"many workers", pool.Options{Workers: 16, Queue: 4}, 20},
		{"two workers, queue 1", pool.Options{Workers: 2, Queue: 1}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			executortest.Run(t, executortest.Config{
				New: func(t *testing.T, logger hclog.Logger) executor.Executor {
					opts := tc.opts
					opts.Logger = logger
					return pool.New(opts)
				},
				Synctest: true,
				Capacity: tc.capacity,
			})
		})
	}
}

func TestStress(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       pool.Options
		submitters int
	}{
		{"two workers, queue 1", pool.Options{Workers: 2, Queue: 1}, 0},
		{"many workers", pool.Options{Workers: 32}, 0},
		{"1000 in flight", pool.Options{Workers: 1000}, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			executortest.Stress(t, executortest.StressConfig{
				Submitters: tc.submitters,
				New: func(t *testing.T, logger hclog.Logger) executor.Executor {
					opts := tc.opts
					opts.Logger = logger
					return pool.New(opts)
				},
			})
		})
	}
}
