package subprocess_test

import (
	"errors"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowline-go/flowline/executor/subprocess"
)

// TestWhatEachOSRefuses checks every row of the per-OS table on any OS:
// New refuses what the OS cannot keep, with an *UnsupportedError that
// names the OS and the option, and takes everything else.
func TestWhatEachOSRefuses(t *testing.T) {
	memory := subprocess.Options{MemoryLimit: 64 << 20}
	for _, tc := range []struct {
		name   string
		goos   string
		opts   subprocess.Options
		option string // "" with refused: the executor as a whole
		refuse bool
	}{
		{"linux takes the defaults", "linux", subprocess.Options{}, "", false},
		{"linux takes a memory limit", "linux", memory, "", false},
		{"darwin takes the defaults", "darwin", subprocess.Options{}, "", false},
		{"darwin refuses a memory limit", "darwin", memory, "MemoryLimit", true},
		{"windows takes the defaults", "windows", subprocess.Options{NoSubreaper: true}, "", false},
		{"windows refuses a memory limit", "windows", memory, "MemoryLimit", true},
		{"another OS is refused as a whole", "plan9", subprocess.Options{}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := subprocess.Supported(tc.goos, tc.opts)
			if !tc.refuse {
				assert.NoError(t, err)
				return
			}
			var ue *subprocess.UnsupportedError
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, tc.goos, ue.OS)
			assert.Equal(t, tc.option, ue.Option)
			assert.ErrorIs(t, err, errors.ErrUnsupported)
			assert.Contains(t, err.Error(), tc.goos)
		})
	}
}

// TestNewKeepsItsWordOnThisOS runs New itself with a memory limit: on
// Linux it is taken, elsewhere refused, never silently dropped.
func TestNewKeepsItsWordOnThisOS(t *testing.T) {
	ex, err := subprocess.New(subprocess.Options{MemoryLimit: 64 << 20, NoSubreaper: true})
	if runtime.GOOS != "linux" {
		require.ErrorIs(t, err, errors.ErrUnsupported)
		assert.Nil(t, ex)
		return
	}
	require.NoError(t, err)
	require.NotNil(t, ex)
	assert.NoError(t, ex.Shutdown(t.Context()))
}
