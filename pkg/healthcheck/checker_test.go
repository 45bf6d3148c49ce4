package healthcheck

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// harness runs a Checker on a fake clock and a fake dialer.
type harness struct {
	t      *testing.T
	clk    *fakeClock
	dialer *fakeDialer
	c      *Checker

	mu          sync.Mutex
	transitions []Transition
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, clk: newFakeClock(), dialer: newFakeDialer()}
	h.c = New(Options{
		Logger:  slog.New(slog.DiscardHandler),
		Workers: 4,
		Clock:   h.clk,
		Dialer:  h.dialer,
		Jitter:  -1,
		Rand:    testRand(),
		OnTransition: func(tr Transition) {
			h.mu.Lock()
			h.transitions = append(h.transitions, tr)
			h.mu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// advance moves the clock by d once the checker is waiting for that moment.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	at := h.clk.Now().Add(d)
	waitFor(h.t, "the scheduler to arm its timer", func() bool { return h.clk.armedBy(at) })
	h.clk.Advance(d)
}

func (h *harness) waitChecks(id string, n uint64) Status {
	h.t.Helper()
	var st Status
	waitFor(h.t, "check results", func() bool {
		st, _ = h.c.State(id)
		return st.Checks >= n
	})
	if st.Checks != n {
		h.t.Fatalf("%s: %d checks, want %d", id, st.Checks, n)
	}
	return st
}

func (h *harness) transitionsSeen() []Transition {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Transition(nil), h.transitions...)
}

func TestCheckerDownAndBack(t *testing.T) {
	h := newHarness(t)
	spec := Spec{ConnectTimeout: time.Second, DelayLoop: 10 * time.Second,
		DelayBeforeRetry: 5 * time.Second, Retry: 1, Warmup: -1}
	tg := Target{ID: "rs1", Addr: netip.MustParseAddrPort("192.0.2.10:11211"), Spec: spec}
	addr := tg.Addr.String()
	if err := h.c.Update([]Target{tg}); err != nil {
		t.Fatal(err)
	}
	if st, ok := h.c.State("rs1"); !ok || !st.Up {
		t.Fatalf("initial state %+v, want up (not alpha)", st)
	}
	h.waitChecks("rs1", 1)

	h.dialer.setDown(addr, true)
	h.advance(10 * time.Second)
	if st := h.waitChecks("rs1", 2); !st.Up {
		t.Fatal("down after the first failure; keepalived retries first")
	}
	h.advance(5 * time.Second) // delay_before_retry
	st := h.waitChecks("rs1", 3)
	if st.Up {
		t.Fatal("still up after retry more failures")
	}
	if want := h.clk.Now(); !st.Since.Equal(want) {
		t.Fatalf("since %v, want %v", st.Since, want)
	}
	downAt := st.Since

	// A reload with the same probe but other timing keeps the state.
	spec2 := spec
	spec2.DelayLoop = 20 * time.Second
	tg.Spec = spec2
	if err := h.c.Update([]Target{tg}); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.c.State("rs1"); st.Up || !st.Since.Equal(downAt) {
		t.Fatalf("after reload: %+v, want still down since %v", st, downAt)
	}

	h.advance(10 * time.Second) // the check scheduled before the reload
	h.waitChecks("rs1", 4)
	h.dialer.setDown(addr, false)
	h.advance(20 * time.Second)
	if st := h.waitChecks("rs1", 5); !st.Up {
		t.Fatal("one success did not bring the server back")
	}

	trs := h.transitionsSeen()
	if len(trs) != 2 || trs[0].Up || !trs[1].Up || trs[0].ID != "rs1" || trs[0].Reason == "" {
		t.Fatalf("transitions %+v, want down (with a reason) then up", trs)
	}
}

func TestCheckerAlphaAndRemoval(t *testing.T) {
	h := newHarness(t)
	spec := Spec{DelayLoop: 10 * time.Second, Retry: 1, Warmup: -1, Alpha: true}
	a := Target{ID: "a", Addr: netip.MustParseAddrPort("192.0.2.1:80"), Spec: spec}
	b := Target{ID: "b", Addr: netip.MustParseAddrPort("192.0.2.2:80"), Spec: spec}
	if err := h.c.Update([]Target{a, b}); err != nil {
		t.Fatal(err)
	}
	for _, st := range h.c.States() {
		if st.Up {
			t.Fatalf("%s starts up with alpha", st.ID)
		}
	}
	h.waitChecks("a", 1)
	h.waitChecks("b", 1)
	if got := len(h.transitionsSeen()); got != 2 {
		t.Fatalf("%d transitions, want 2 (both proven up)", got)
	}

	if err := h.c.Update([]Target{b}); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.c.State("a"); ok {
		t.Fatal("removed target still has a state")
	}
	h.advance(10 * time.Second)
	h.waitChecks("b", 2)
	h.dialer.mu.Lock()
	dialsA := h.dialer.dials[a.Addr.String()]
	h.dialer.mu.Unlock()
	if dialsA != 1 {
		t.Fatalf("removed target dialed %d times, want 1", dialsA)
	}
}

func TestCheckerRunTwice(t *testing.T) {
	h := newHarness(t)
	waitFor(t, "Run to start", h.c.running.Load)
	if err := h.c.Run(context.Background()); err == nil {
		t.Fatal("second Run did not fail")
	}
}
