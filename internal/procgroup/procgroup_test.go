//go:build linux

package procgroup_test

import (
	"bufio"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/internal/procgroup"
)

func TestMain(m *testing.M) {
	// Orphans of the tests' process groups must come back to this process,
	// which reaps them; under a PID 1 that does not reap they would stay
	// zombies forever.
	if err := procgroup.SetChildSubreaper(); err != nil {
		panic(err)
	}
	goleak.VerifyTestMain(m)
}

func TestSubreaperIsSet(t *testing.T) {
	require.NoError(t, procgroup.SetChildSubreaper(), "setting it twice is fine")
	on, err := procgroup.IsChildSubreaper()
	require.NoError(t, err)
	assert.True(t, on)
}

// startGroup starts script in a process group of its own and waits for its
// first line of output.
func startGroup(t *testing.T, script string) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	_, err = bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = procgroup.Signal(pgid, syscall.SIGKILL)
		_ = cmd.Wait()
		procgroup.Drain(pgid, time.Now().Add(5*time.Second), true)
	})
	return cmd, pgid
}

func TestGroupThatOutlivesItsLeaderIsKilledAndReaped(t *testing.T) {
	// Two grandchildren that ignore SIGTERM, as a stubborn task's children do.
	cmd, pgid := startGroup(t, `trap "" TERM; sleep 1000 & sleep 1000 & echo ready; wait`)
	members, err := procgroup.Members(pgid)
	require.NoError(t, err)
	require.Len(t, members, 3, "the shell and its two sleeps: %v", members)
	for _, p := range members {
		assert.Equal(t, pgid, p.PGID)
		assert.False(t, p.Zombie())
	}

	require.NoError(t, procgroup.Signal(pgid, syscall.SIGTERM))
	assert.False(t, procgroup.Drain(pgid, time.Now().Add(100*time.Millisecond), true),
		"the group ignores SIGTERM: Drain must give up at its deadline")

	// Kill the leader alone: its children are orphaned and, this process
	// being a subreaper, adopted by it.
	require.NoError(t, cmd.Process.Kill())
	require.Error(t, cmd.Wait())
	require.Eventually(t, func() bool {
		members, err := procgroup.Members(pgid)
		require.NoError(t, err)
		for _, p := range members {
			if p.PPID != os.Getpid() {
				return false
			}
		}
		return len(members) == 2
	}, 5*time.Second, time.Millisecond, "the orphans were not adopted by this process")
	assert.False(t, procgroup.Gone(pgid, true))

	require.NoError(t, procgroup.Signal(pgid, syscall.SIGKILL))
	require.True(t, procgroup.Drain(pgid, time.Now().Add(5*time.Second), true), "the group did not go")
	assert.False(t, procgroup.Exists(pgid), "nothing of the group is left, not even a zombie")
	members, err = procgroup.Members(pgid)
	require.NoError(t, err)
	assert.Empty(t, members)
	assert.ErrorIs(t, procgroup.Signal(pgid, syscall.SIGKILL), os.ErrProcessDone)
}

func TestReapLeavesOtherChildrenAlone(t *testing.T) {
	other := exec.Command("sh", "-c", "exit 7") // in this process's own group
	require.NoError(t, other.Start())
	_, pgid := startGroup(t, `echo ready; exec sleep 1000`)
	require.NoError(t, procgroup.Signal(pgid, syscall.SIGKILL))
	time.Sleep(50 * time.Millisecond) // both have exited by now
	// The group's leader is still unwaited: Reap must take only what it is
	// given, so this reaps nothing of the other child's.
	procgroup.Reap(pgid)
	err := other.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the other child's status was stolen")
	assert.Equal(t, 7, ee.ExitCode())
}

func TestDrainOfAGoneGroupIsImmediate(t *testing.T) {
	cmd, pgid := startGroup(t, `echo ready`)
	require.NoError(t, cmd.Wait())
	assert.True(t, procgroup.Drain(pgid, time.Now().Add(-time.Second), true))
	assert.True(t, procgroup.Gone(pgid, false))
}

func TestSignalRefusesGroupsThatMeanEveryone(t *testing.T) {
	for _, pgid := range []int{-5, 0, 1} {
		assert.Error(t, procgroup.Signal(pgid, syscall.SIGTERM), "pgid %d", pgid)
		assert.False(t, procgroup.Exists(pgid))
		assert.Zero(t, procgroup.Reap(pgid))
	}
}

func TestRSS(t *testing.T) {
	rss, err := procgroup.RSS(os.Getpid())
	require.NoError(t, err)
	assert.Greater(t, rss, int64(1<<20), "a Go test binary holds more than a MiB")
	_, err = procgroup.RSS(1 << 30)
	assert.Error(t, err, "no such process")
}

func TestStatOfSelf(t *testing.T) {
	p, err := procgroup.Stat(os.Getpid())
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), p.PID)
	assert.Equal(t, os.Getppid(), p.PPID)
	assert.Equal(t, syscall.Getpgrp(), p.PGID)
	assert.False(t, p.Zombie())
	_, err = procgroup.Stat(1 << 30)
	assert.Error(t, err)
}

func TestStatOfAProcessWithParenthesesInItsName(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	data, err := os.ReadFile(sleep)
	require.NoError(t, err)
	odd := t.TempDir() + "/a) b (c"
	require.NoError(t, os.WriteFile(odd, data, 0o755))
	cmd := exec.Command(odd, "1000")
	require.NoError(t, cmd.Start())
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	require.Eventually(t, func() bool {
		p, err := procgroup.Stat(cmd.Process.Pid)
		return err == nil && p.Command == "a) b (c"
	}, 5*time.Second, time.Millisecond)
	p, err := procgroup.Stat(cmd.Process.Pid)
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), p.PPID)
	assert.Equal(t, syscall.Getpgrp(), p.PGID)
}
