//go:build !linux

package flow_test

// serveIfWorker does nothing outside Linux: the flow tests on the
// subprocess executor run on Linux only (subprocess_linux_test.go).
func serveIfWorker() {}
