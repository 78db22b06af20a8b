package subprocess

import (
	"fmt"

	"github.com/flowline-go/flowline/executor/subprocess/internal/proto"
)

// Supported exposes supported, the per-OS table of what New refuses, to
// the tests of every OS's row.
var Supported = supported

// WorkerMark is the start of a worker's marker variable in the environment
// of the workers of the process whose pid is ppid.
func WorkerMark(ppid int) string {
	return envWorker + "=" + workerSpec(ppid, 0, 0)[:len(fmt.Sprintf("v%d,%d,", proto.Version, ppid))]
}

// DirectAnswers returns how many Run calls of e had their result on the
// direct pipe, and how many had it moved to the results pipe after their
// logs.
func DirectAnswers(e *Executor) (direct, moved uint64) {
	return e.directAnswers.Load(), e.movedAnswers.Load()
}
