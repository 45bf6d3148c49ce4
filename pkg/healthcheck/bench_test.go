package healthcheck

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

func benchTargets(n int, spec Spec) []Target {
	ts := make([]Target, n)
	for i := range ts {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		ts[i] = Target{ID: fmt.Sprintf("rs%d", i), Addr: netip.AddrPortFrom(ip, 11211), Spec: spec}
	}
	return ts
}

// BenchmarkSchedule10k measures the Checker's own cost of one check cycle
// over 10,000 targets: scheduling, worker hand-off, state machine and
// rescheduling, with a dialer that connects at once. One op is one full
// cycle; ns/check divides it by the number of targets.
func BenchmarkSchedule10k(b *testing.B) {
	const n = 10000
	clk := newFakeClock()
	var done atomic.Int64
	c := New(Options{Clock: clk, Dialer: newFakeDialer(), Jitter: -1, Rand: testRand()})
	c.testHookResult = func() { done.Add(1) }
	spec := DefaultSpec()
	spec.Warmup = -1
	if err := c.Update(benchTargets(n, spec)); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { c.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	waitFor(b, "the first cycle", func() bool { return done.Load() == n })
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		at := clk.Now().Add(spec.DelayLoop)
		waitFor(b, "the timer", func() bool { return clk.armedBy(at) })
		clk.Advance(spec.DelayLoop)
		want := int64(n) * int64(i+2)
		for done.Load() < want {
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/check")
}

// BenchmarkSchedCore10k measures the pure scheduling core (heap and state
// machine) for one cycle of 10,000 targets, without goroutines.
func BenchmarkSchedCore10k(b *testing.B) {
	const n = 10000
	s := newSched(testRand(), DefaultJitter)
	spec := DefaultSpec()
	now := time.Unix(0, 0)
	if _, err := s.update(benchTargets(n, spec), now); err != nil {
		b.Fatal(err)
	}
	due := make([]*target, 0, n)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		now = now.Add(2 * spec.DelayLoop)
		due = s.popDue(now, due[:0])
		for _, t := range due {
			s.complete(t, nil, now)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/check")
}
