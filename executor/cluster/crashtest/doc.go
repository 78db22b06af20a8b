// Package crashtest holds the cluster executor's crash-test suite and
// nothing else: three real NATS server processes (the test binary
// re-executed as an embedded server, so that it can be SIGKILLed), worker
// processes, and a submitter in the test process that maps a task over
// thousands of inputs while servers and workers are killed. See
// crash_test.go for the scenarios and checks, and docs/cluster.md for the
// figures it measures.
package crashtest
