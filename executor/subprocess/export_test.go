package subprocess

// Supported exposes supported, the per-OS table of what New refuses, to
// the tests of every OS's row.
var Supported = supported
