//go:build linux

package kvs

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCPUSharesPartitionMask checks that the CPUs the process may use are
// dealt to the loops in turn, each to exactly one loop.
func TestCPUSharesPartitionMask(t *testing.T) {
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		t.Fatal(err)
	}
	ncpu := mask.Count()
	for n := 1; n <= ncpu; n++ {
		shares, cpuLoop, err := cpuShares(n)
		if err != nil {
			t.Fatalf("%d loops: %v", n, err)
		}
		if len(shares) != n || len(cpuLoop) != ncpu {
			t.Fatalf("%d loops: %d shares, %d CPUs mapped; want %d and %d", n, len(shares), len(cpuLoop), n, ncpu)
		}
		total := 0
		for i, s := range shares {
			if c := s.Count(); c < ncpu/n || c > ncpu/n+1 {
				t.Errorf("%d loops: loop %d has %d CPUs", n, i, c)
			}
			total += s.Count()
		}
		if total != ncpu {
			t.Errorf("%d loops: shares hold %d CPUs, want %d", n, total, ncpu)
		}
		for cpu, i := range cpuLoop {
			if !mask.IsSet(cpu) || !shares[i].IsSet(cpu) {
				t.Errorf("%d loops: CPU %d mapped to loop %d, which does not hold it", n, cpu, i)
			}
		}
	}
	if _, _, err := cpuShares(ncpu + 1); err == nil {
		t.Errorf("%d loops on %d CPUs: no error", ncpu+1, ncpu)
	}
}

// TestPinnedLoopsServeOnIncomingCPU checks that the loops' threads are
// pinned to their shares and that a new connection goes to the loop of
// the CPU that received it.
func TestPinnedLoopsServeOnIncomingCPU(t *testing.T) {
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		t.Fatal(err)
	}
	p, err := newEvPool(Options{EventLoops: mask.Count()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if p.cpuLoop == nil {
		t.Fatal("loops not pinned")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range 8 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := sc.(*net.TCPConn).SyscallConn()
		var cpu int
		var gerr error
		var got *evLoop
		raw.Control(func(fd uintptr) {
			cpu, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_INCOMING_CPU)
			got = p.pick(int(fd))
		})
		if gerr != nil {
			t.Fatalf("SO_INCOMING_CPU: %v", gerr)
		}
		if want := p.loops[p.cpuLoop[cpu]]; got != want {
			t.Errorf("connection received on CPU %d went to another loop than that CPU's", cpu)
		}
		c.Close()
		sc.Close()
	}

	// Each CPU of the mask is the whole affinity of one of our threads
	// (the loops pin themselves as they start).
	deadline := time.Now().Add(5 * time.Second)
	for {
		pinned := threadMasks()
		missing := -1
		for cpu := range p.cpuLoop {
			if !pinned[strconv.Itoa(cpu)] {
				missing = cpu
			}
		}
		if missing < 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no thread pinned to CPU %d; threads' masks: %v", missing, pinned)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// threadMasks returns the set of the process's threads' Cpus_allowed_list.
func threadMasks() map[string]bool {
	masks := map[string]bool{}
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				masks[strings.TrimSpace(v)] = true
			}
		}
	}
	return masks
}

// TestPickLeastLoadedUnpinned checks the choice when loops are not pinned.
func TestPickLeastLoadedUnpinned(t *testing.T) {
	p, err := newEvPool(Options{EventLoops: 2, NoCPUAffinity: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	p.loops[0].mu.Lock()
	p.loops[0].conns[-1] = &evConn{} // a connection, as far as pick can tell
	p.loops[0].mu.Unlock()
	if p.pick(-1) != p.loops[1] {
		t.Error("a new connection went to the busier loop")
	}
	p.loops[0].mu.Lock()
	delete(p.loops[0].conns, -1)
	p.loops[0].mu.Unlock()
}

// TestPoolFromOneCPUSpreads opens a pool of connections from one thread
// on one CPU, as an application that fills its pool at start does: they
// must spread over the loops, not all go to that CPU's loop.
func TestPoolFromOneCPUSpreads(t *testing.T) {
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		t.Fatal(err)
	}
	if mask.Count() < 2 {
		t.Skip("one CPU: one loop")
	}
	tier, addrs := startTier(t, Options{}, TenantConfig{Name: "a"})
	if tier.pool.cpuLoop == nil {
		t.Fatal("loops not pinned")
	}

	// Dial from a thread pinned to the first CPU of the mask.
	conns := make(chan []*client, 1)
	go func() {
		runtime.LockOSThread() // the thread ends with the goroutine
		var one unix.CPUSet
		for cpu := 0; ; cpu++ {
			if mask.IsSet(cpu) {
				one.Set(cpu)
				break
			}
		}
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			t.Error(err)
		}
		var cs []*client
		for range 32 {
			c := dial(t, addrs["a"])
			c.do("version\r\n", 1) // the loop has the connection once it answers
			cs = append(cs, c)
		}
		conns <- cs
	}()
	<-conns
	loads := make([]int, len(tier.pool.loops))
	lo, hi := 32, 0
	for i, l := range tier.pool.loops {
		loads[i] = l.load()
		lo, hi = min(lo, loads[i]), max(hi, loads[i])
	}
	t.Logf("loads %v", loads)
	if hi-lo > 4 {
		t.Errorf("32 connections from one CPU spread over the loops as %v", loads)
	}
}

// TestIdleLoopsHoldingPLetRuntimeStop checks that loops blocked in
// epoll_wait while holding their P (holdP) do not keep the runtime from
// stopping the world: garbage collections complete while every loop is
// idle, and the loops serve again afterwards.
func TestIdleLoopsHoldingPLetRuntimeStop(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	tier, addrs := startTier(t, Options{EventLoops: 2}, TenantConfig{Name: "a"})
	for i, l := range tier.pool.loops {
		if !l.holdP {
			t.Fatalf("loop %d does not hold its P; the test would prove nothing", i)
		}
	}
	c := dial(t, addrs["a"])
	if got := c.do("set k 0 0 1\r\nx\r\n", 1); got != "STORED\r\n" {
		t.Fatalf("set: %q", got)
	}
	for round := range 5 {
		time.Sleep(20 * time.Millisecond) // let the loops block in epoll_wait
		done := make(chan struct{})
		go func() {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms) // stops the world too
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: the runtime could not stop the idle event loops", round)
		}
		if got := c.do("get k\r\n", 3); got != "VALUE k 0 1\r\nx\r\nEND\r\n" {
			t.Fatalf("round %d: get after GC: %q", round, got)
		}
	}
}

// TestLoopsSchedulingPolicy checks that each event loop's thread runs under
// SCHED_BATCH by default, pinned or not, and under SCHED_OTHER with
// NoBatchScheduling.
func TestLoopsSchedulingPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want uint32
	}{
		{"unpinned", Options{EventLoops: 2, NoCPUAffinity: true}, unix.SCHED_BATCH},
		{"pinned", Options{EventLoops: 2}, unix.SCHED_BATCH},
		{"NoBatchScheduling", Options{EventLoops: 2, NoBatchScheduling: true}, unix.SCHED_NORMAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := newEvPool(tc.opts, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			if tc.opts.NoBatchScheduling && p.cpuLoop == nil {
				t.Skip("loops not pinned (one CPU?): their threads are not known")
			}
			for i, l := range p.loops {
				tid := waitLoopThread(t, l)
				attr, err := unix.SchedGetAttr(tid, 0)
				if err != nil {
					t.Fatalf("loop %d: sched_getattr: %v", i, err)
				}
				if attr.Policy != tc.want {
					t.Errorf("loop %d runs under policy %d, want %d", i, attr.Policy, tc.want)
				}
			}
		})
	}
}

// waitLoopThread returns l's thread once the loop has locked itself to it
// and set its policy (the loop's goroutine may not have started yet).
func waitLoopThread(t *testing.T, l *evLoop) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if tid := l.tid.Load(); tid != 0 {
			return int(tid)
		}
		if time.Now().After(deadline) {
			t.Fatal("the loop did not lock itself to a thread")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBatchAttr checks that only SCHED_OTHER moves to SCHED_BATCH, keeping
// the nice value and the reset-on-fork flag and nothing else.
func TestBatchAttr(t *testing.T) {
	cur := unix.SchedAttr{Policy: unix.SCHED_NORMAL, Nice: 5, Flags: unix.SCHED_FLAG_RESET_ON_FORK | 0x20, Runtime: 2_800_000}
	got, ok := batchAttr(cur)
	want := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH, Nice: 5, Flags: unix.SCHED_FLAG_RESET_ON_FORK}
	if !ok || got != want {
		t.Errorf("batchAttr(%+v) = %+v, %v; want %+v, true", cur, got, ok, want)
	}
	for _, policy := range []uint32{unix.SCHED_FIFO, unix.SCHED_RR, unix.SCHED_BATCH, unix.SCHED_IDLE, unix.SCHED_DEADLINE} {
		if _, ok := batchAttr(unix.SchedAttr{Policy: policy}); ok {
			t.Errorf("batchAttr moves policy %d to SCHED_BATCH", policy)
		}
	}
}

// TestRequestKey checks the key lookAhead takes from the request at the
// start of a connection's buffer.
func TestRequestKey(t *testing.T) {
	for _, tc := range []struct{ buf, want string }{
		{"get foo\r\n", "foo"},
		{"gets foo bar\r\n", "foo"},
		{"set k 0 0 1\r\nx\r\n", "k"},
		{"replace k 0 0 1\r\n", "k"},
		{"delete k noreply\r\n", "k"},
		{"mg key v\r\n", "key"},
		{"get foo\n", "foo"},
		{"get foo", ""},       // the key may go on in the next read
		{"get \r\n", ""},      // no key
		{"get\r\n", ""},       // no argument
		{"gat 0 foo\r\n", ""}, // the first argument is not a key
		{"version\r\n", ""},
		{"getfoo bar\r\n", ""},
		{"stats items\r\n", ""},
		{"", ""},
	} {
		if got := requestKey([]byte(tc.buf)); string(got) != tc.want || (tc.want == "" && got != nil) {
			t.Errorf("requestKey(%q) = %q, want %q", tc.buf, got, tc.want)
		}
	}
}
