//go:build !linux

package main

import "time"

// selfCPU and serverCPU read /proc, which only Linux has: elsewhere the
// CPU columns are zero.
func selfCPU() time.Duration         { return 0 }
func serverCPU(string) time.Duration { return 0 }
