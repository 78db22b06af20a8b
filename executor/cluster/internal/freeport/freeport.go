// Package freeport finds loopback TCP ports for tests that start NATS
// servers on fixed ports (a cluster's routes must be known before its
// servers start).
package freeport

import (
	"net"
	"testing"
)

// Loopback returns n distinct ports that were free a moment ago on
// 127.0.0.1. Another process may take one before the caller listens on it;
// tests accept that small race, as every test that needs a fixed port does.
func Loopback(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("freeport: %v", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range listeners {
		if err := l.Close(); err != nil {
			t.Fatalf("freeport: %v", err)
		}
	}
	return ports
}
