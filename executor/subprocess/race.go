//go:build race

package subprocess

const raceEnabled = true
