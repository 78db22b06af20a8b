//go:build linux

package subprocess_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowline-go/flowline/executor"
)

// The floors the benchmarks compare the executor with, in the same run:
// what two pipes and a warm child cost with no executor at all, and what
// a timer, SIGKILL to a process group and Wait cost. Both children are
// this test binary, re-executed as the executor's workers are.

// floorFrame is the size of a floor frame's body: the 64 B of the
// benchmark's call.
const floorFrame = 64

// bytesTask echoes its input with a codec that passes bytes through: a
// call whose cost is the executor's alone, to compare with the floor's
// 64 B frames. Its input is a 64 B executor.Raw.
var bytesTask = executor.NewHandler("subprocess.bytes", func(ctx context.Context, in []byte) ([]byte, error) {
	return in, nil
}, bytesCodec{})

// bytesCodec encodes a []byte as itself.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("bytesCodec: got %T", v)
	}
	return b, nil
}

func (bytesCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("bytesCodec: got %T", v)
	}
	*p = append([]byte(nil), data...) // data may be the frame's buffer
	return nil
}

// bytesInput is the 64 B input of a bytesTask call.
var bytesInput = executor.Raw(bytes.Repeat([]byte("abcdefgh"), floorFrame/8))

// pipeEcho is the "pipe-echo" helper: it reads length-prefixed frames on
// fd 3 and writes each back on fd 4, with blocking reads and writes and
// no goroutine of its own, until fd 3 ends.
func pipeEcho() int {
	in, out := os.NewFile(3, "in"), os.NewFile(4, "out")
	buf := make([]byte, 4+1<<16)
	for {
		if _, err := io.ReadFull(in, buf[:4]); err != nil {
			return 0
		}
		n := binary.BigEndian.Uint32(buf[:4])
		if n > 1<<16 {
			return 2
		}
		if _, err := io.ReadFull(in, buf[4:4+n]); err != nil {
			return 2
		}
		if _, err := out.Write(buf[:4+n]); err != nil {
			return 2
		}
	}
}

// floorChild is a running "pipe-echo" helper and the parent's ends of its
// pipes.
type floorChild struct {
	cmd       *exec.Cmd
	req, resp *os.File
	frame     []byte
	back      []byte
}

func startFloorChild(tb testing.TB) *floorChild {
	tb.Helper()
	reqR, reqW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=pipe-echo")
	cmd.ExtraFiles = []*os.File{reqR, respW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	reqR.Close()
	respW.Close()
	c := &floorChild{cmd: cmd, req: reqW, resp: respR}
	c.frame = binary.BigEndian.AppendUint32(nil, floorFrame)
	for i := range floorFrame {
		c.frame = append(c.frame, byte('a'+i%26))
	}
	c.back = make([]byte, len(c.frame))
	if err := c.roundTrip(); err != nil { // warm: the child serves
		tb.Fatal(err)
	}
	return c
}

// roundTrip writes one frame and reads its echo.
func (c *floorChild) roundTrip() error {
	if _, err := c.req.Write(c.frame); err != nil {
		return err
	}
	if _, err := io.ReadFull(c.resp, c.back); err != nil {
		return err
	}
	if c.back[4] != c.frame[4] {
		return errors.New("floor: echo differs")
	}
	return nil
}

func (c *floorChild) stop(tb testing.TB) {
	c.req.Close()
	err := c.cmd.Wait()
	c.resp.Close()
	if err != nil {
		tb.Errorf("floor child: %v", err)
	}
}

// floorRoundTrip is the two-pipe floor of BenchmarkRoundTrip: one warm
// child, one 64 B frame each way per op.
func floorRoundTrip(b *testing.B) {
	c := startFloorChild(b)
	defer c.stop(b)
	lat := make([]time.Duration, 0, 1<<16)
	cpu := startCPU(c.cmd.Process.Pid)
	for b.Loop() {
		start := time.Now()
		if err := c.roundTrip(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	cpu.report(b, b.N)
	reportPercentiles(b, lat, "µs")
}

// floorThroughput is the two-pipe floor of BenchmarkThroughput: two warm
// children, each served back to back by a goroutine of its own.
func floorThroughput(b *testing.B) {
	cs := []*floorChild{startFloorChild(b), startFloorChild(b)}
	defer func() {
		for _, c := range cs {
			c.stop(b)
		}
	}()
	var wg sync.WaitGroup
	start := time.Now()
	b.ResetTimer()
	for i, c := range cs {
		n := b.N / len(cs)
		if i == 0 {
			n += b.N % len(cs)
		}
		wg.Go(func() {
			for range n {
				if err := c.roundTrip(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// sleepForever is the "sleep" helper: it says it is up on stdout and
// sleeps until it is killed.
func sleepForever() int {
	fmt.Println("up")
	select {}
}

// floorKill is the floor of BenchmarkDeadlineToDeath: a warm child in a
// process group of its own, a timer for the limit, SIGKILL to the group
// when it fires, Wait, and the group confirmed gone (kill(-pgid, 0) fails
// with ESRCH). It reports the time from the deadline to the confirmation.
func floorKill(b *testing.B, limit time.Duration) {
	var after []time.Duration
	for b.Loop() {
		after = append(after, killOnce(b, limit))
	}
	reportPercentiles(b, after, "ms")
}

// killOnce starts a warm child (outside the time it measures) and
// returns the time from its deadline to its group confirmed gone.
func killOnce(b *testing.B, limit time.Duration) time.Duration {
	b.StopTimer()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=sleep")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	up := make([]byte, 3)
	if _, err := io.ReadFull(out, up); err != nil { // warm: it runs
		b.Fatal(err)
	}
	pgid := cmd.Process.Pid
	b.StartTimer()
	start := time.Now()
	t := time.AfterFunc(limit, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	_ = cmd.Wait()
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		b.Fatalf("group %d still there: %v", pgid, err)
	}
	d := time.Since(start) - limit
	t.Stop()
	return d
}

// cpuMeter measures the CPU time (user and system) this process and one
// child spend, to report per op: what polling a pipe (Options.Spin) costs
// is CPU, not time.
type cpuMeter struct {
	child        int
	self, worker time.Duration
}

func startCPU(child int) *cpuMeter {
	return &cpuMeter{child: child, self: selfCPU(), worker: procCPU(child)}
}

// report adds parent-cpu-µs/op and worker-cpu-µs/op for n ops to b.
func (m *cpuMeter) report(b *testing.B, n int) {
	self, worker := selfCPU()-m.self, procCPU(m.child)-m.worker
	b.ReportMetric(float64(self)/float64(time.Microsecond)/float64(n), "parent-cpu-µs/op")
	b.ReportMetric(float64(worker)/float64(time.Microsecond)/float64(n), "worker-cpu-µs/op")
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU returns the CPU time of process pid from /proc/<pid>/stat
// (utime + stime, in clock ticks of 10ms), or 0.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(data[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	s, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+s) * 10 * time.Millisecond
}
