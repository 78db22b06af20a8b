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
