package healthcheck

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

func testRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func tcpTarget(id string, port uint16, spec Spec) Target {
	return Target{ID: id, Addr: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port), Spec: spec}
}

func TestSchedWarmupSpreadsFirstChecks(t *testing.T) {
	s := newSched(testRand(), 0)
	now := time.Unix(0, 0)
	spec := DefaultSpec() // warmup defaults to delay_loop, 60s
	var ts []Target
	for i := range 1000 {
		ts = append(ts, tcpTarget(fmt.Sprint(i), uint16(1000+i), spec))
	}
	if _, err := s.update(ts, now); err != nil {
		t.Fatal(err)
	}
	var buckets [6]int
	for _, tg := range s.targets {
		d := tg.due.Sub(now)
		if d < 0 || d >= spec.DelayLoop {
			t.Fatalf("first check of %s after %v, want within [0, %v)", tg.ID, d, spec.DelayLoop)
		}
		buckets[d/(10*time.Second)]++
	}
	for i, n := range buckets {
		if n < 100 { // 1000 uniformly over 6 buckets: ~167 each
			t.Errorf("bucket %d has %d first checks; not spread: %v", i, n, buckets)
		}
	}
}

func TestSchedWarmupDisabled(t *testing.T) {
	s := newSched(testRand(), 0)
	now := time.Unix(0, 0)
	spec := DefaultSpec()
	spec.Warmup = -1
	if _, err := s.update([]Target{tcpTarget("a", 1, spec)}, now); err != nil {
		t.Fatal(err)
	}
	if got := s.popDue(now, nil); len(got) != 1 {
		t.Fatalf("due at once: %d targets, want 1", len(got))
	}
}

func TestSchedJitterNeverLate(t *testing.T) {
	s := newSched(testRand(), 0.1)
	for range 1000 {
		d := s.loop(10 * time.Second)
		if d > 10*time.Second || d < 9*time.Second {
			t.Fatalf("loop delay %v outside [9s, 10s]", d)
		}
	}
}

func TestSchedUpdate(t *testing.T) {
	now := time.Unix(0, 0)
	spec := DefaultSpec()
	spec.Warmup = -1
	spec.Retry = 0
	other := spec
	other.Type = HTTP
	slower := spec
	slower.DelayLoop = 2 * time.Minute
	faster := spec
	faster.DelayLoop = 5 * time.Second

	tests := []struct {
		name     string
		next     Target
		wantUp   bool // state of "a" after the update
		wantKept bool
		wantDue  time.Duration // from the update, for the new "a"
	}{
		{"unchanged keeps state", tcpTarget("a", 1, spec), false, true, 60 * time.Second},
		{"slower timing keeps state and schedule", tcpTarget("a", 1, slower), false, true, 60 * time.Second},
		{"faster timing brings the check forward", tcpTarget("a", 1, faster), false, true, 5 * time.Second},
		{"new port resets", tcpTarget("a", 2, spec), true, false, 0},
		{"new type resets", tcpTarget("a", 1, other), true, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSched(testRand(), 0)
			if _, err := s.update([]Target{tcpTarget("a", 1, spec)}, now); err != nil {
				t.Fatal(err)
			}
			due := s.popDue(now, nil)
			if len(due) != 1 {
				t.Fatalf("%d due, want 1", len(due))
			}
			if tr, _ := s.complete(due[0], errRefused, now); tr == nil || tr.Up {
				t.Fatalf("transition %+v, want down", tr)
			}
			res, err := s.update([]Target{tt.next}, now)
			if err != nil {
				t.Fatal(err)
			}
			if kept := len(res.kept) == 1; kept != tt.wantKept {
				t.Fatalf("kept = %v, want %v (%+v)", kept, tt.wantKept, res)
			}
			a := s.targets["a"]
			if a.m.up != tt.wantUp {
				t.Fatalf("up = %v, want %v", a.m.up, tt.wantUp)
			}
			if got := a.due.Sub(now); got != tt.wantDue {
				t.Fatalf("next check in %v, want %v", got, tt.wantDue)
			}
			if len(s.queue) != 1 {
				t.Fatalf("heap holds %d entries, want 1", len(s.queue))
			}
		})
	}
}

func TestSchedRemovedWhileBusy(t *testing.T) {
	s := newSched(testRand(), 0)
	now := time.Unix(0, 0)
	spec := DefaultSpec()
	spec.Warmup = -1
	if _, err := s.update([]Target{tcpTarget("a", 1, spec), tcpTarget("b", 2, spec)}, now); err != nil {
		t.Fatal(err)
	}
	due := s.popDue(now, nil)
	if len(due) != 2 {
		t.Fatalf("%d due, want 2", len(due))
	}
	res, err := s.update([]Target{tcpTarget("b", 2, spec)}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.removed) != 1 || res.removed[0] != "a" {
		t.Fatalf("removed %v, want [a]", res.removed)
	}
	for _, tg := range due {
		s.complete(tg, nil, now)
	}
	if len(s.queue) != 1 || s.queue[0].ID != "b" {
		t.Fatalf("queue after completion holds %d, want only b", len(s.queue))
	}
}

func TestSchedUpdateRejects(t *testing.T) {
	spec := DefaultSpec()
	tests := []struct {
		name string
		ts   []Target
	}{
		{"duplicate ID", []Target{tcpTarget("a", 1, spec), tcpTarget("a", 2, spec)}},
		{"empty ID", []Target{tcpTarget("", 1, spec)}},
		{"no address", []Target{{ID: "a", Spec: spec}}},
		{"bad digest", []Target{tcpTarget("a", 1, Spec{Type: HTTP, HTTP: HTTPSpec{Digest: "xyz"}})}},
		{"bad status", []Target{tcpTarget("a", 1, Spec{Type: HTTP, HTTP: HTTPSpec{StatusCodes: []int{42}}})}},
		{"bad type", []Target{tcpTarget("a", 1, Spec{Type: Type(9)})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSched(testRand(), 0)
			if _, err := s.update([]Target{tcpTarget("keep", 9, spec)}, time.Unix(0, 0)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.update(tt.ts, time.Unix(0, 0)); err == nil {
				t.Fatal("update accepted an invalid target set")
			}
			if _, ok := s.targets["keep"]; !ok || len(s.targets) != 1 {
				t.Fatal("a rejected update changed the target set")
			}
		})
	}
}

func TestSchedRetrySpacing(t *testing.T) {
	// keepalived: a failing server that is up is retried after
	// delay_before_retry, then declared down; then checked every delay_loop.
	s := newSched(testRand(), 0)
	now := time.Unix(0, 0)
	spec := Spec{Retry: 1, DelayBeforeRetry: 5 * time.Second, DelayLoop: 10 * time.Second, Warmup: -1}
	if _, err := s.update([]Target{tcpTarget("a", 1, spec)}, now); err != nil {
		t.Fatal(err)
	}
	var at []time.Duration
	var downAt time.Duration
	start := now
	for range 4 {
		next, _ := s.next()
		now = next
		for _, tg := range s.popDue(now, nil) {
			at = append(at, now.Sub(start))
			if tr, _ := s.complete(tg, errors.New("refused"), now); tr != nil && !tr.Up {
				downAt = now.Sub(start)
			}
		}
	}
	want := []time.Duration{0, 5 * time.Second, 15 * time.Second, 25 * time.Second}
	if fmt.Sprint(at) != fmt.Sprint(want) {
		t.Fatalf("checks at %v, want %v", at, want)
	}
	if downAt != 5*time.Second {
		t.Fatalf("down at %v, want 5s", downAt)
	}
}

func TestSchedRequeueBusy(t *testing.T) {
	s := newSched(testRand(), 0)
	now := time.Unix(0, 0)
	spec := DefaultSpec()
	spec.Warmup = -1
	if _, err := s.update([]Target{tcpTarget("a", 1, spec), tcpTarget("b", 2, spec)}, now); err != nil {
		t.Fatal(err)
	}
	due := s.popDue(now, nil)
	s.complete(due[0], nil, now) // one result came back, the other never will
	later := now.Add(time.Second)
	s.requeueBusy(later)
	if len(s.queue) != 2 {
		t.Fatalf("%d targets scheduled, want 2", len(s.queue))
	}
	if again := s.popDue(later, nil); len(again) != 1 || again[0] != due[1] {
		t.Fatalf("due again: %v, want the orphaned target", again)
	}
}
