package healthcheck

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Transition is a target going up or down.
type Transition struct {
	// ID is the target's ID.
	ID string
	// Addr is the target's address.
	Addr netip.AddrPort
	// Up is the new state.
	Up bool
	// At is when the deciding check completed.
	At time.Time
	// Reason says why: the last error when going down.
	Reason string
}

// Status is what a Checker knows about one target.
type Status struct {
	// ID is the target's ID.
	ID string
	// Addr is the target's address.
	Addr netip.AddrPort
	// Up is the current state.
	Up bool
	// Since is when Up last changed, or when the target was added.
	Since time.Time
	// LastCheck is when the last probe completed; zero before the first.
	LastCheck time.Time
	// LastError is the last probe's error; empty if it succeeded.
	LastError string
	// Checks counts completed probes.
	Checks uint64
	// Failures counts consecutive failed probes.
	Failures int
}

// target is one Target with its state and place in the schedule.
type target struct {
	Target         // Spec has its defaults filled in
	m      machine // health state
	due    time.Time
	index  int  // position in the heap; -1 when not in it
	busy   bool // queued for or held by a worker
	gone   bool // removed or replaced while busy: drop its result
}

func (t *target) status() Status {
	return Status{
		ID: t.ID, Addr: t.Addr, Up: t.m.up, Since: t.m.since,
		LastCheck: t.m.lastCheck, LastError: t.m.lastErr,
		Checks: t.m.checks, Failures: t.m.failures,
	}
}

// sched is the pure scheduling core: which target is due when, and what a
// result does. It does no I/O and is not safe for concurrent use.
type sched struct {
	targets map[string]*target
	queue   timerHeap
	rnd     *rand.Rand
	jitter  float64 // fraction of DelayLoop by which a check may come early
}

func newSched(rnd *rand.Rand, jitter float64) *sched {
	return &sched{targets: make(map[string]*target), rnd: rnd, jitter: jitter}
}

// updateResult says what update did.
type updateResult struct {
	added, removed, kept []string
}

// update replaces the target set. A target whose probe is unchanged keeps
// its state and schedule (only its timing is updated); a new or changed one
// starts fresh with its warmup delay.
func (s *sched) update(ts []Target, now time.Time) (updateResult, error) {
	var res updateResult
	seen := make(map[string]bool, len(ts))
	for _, t := range ts {
		if err := t.Validate(); err != nil {
			return res, err
		}
		if seen[t.ID] {
			return res, fmt.Errorf("healthcheck: duplicate target ID %q", t.ID)
		}
		seen[t.ID] = true
	}
	for id, old := range s.targets {
		if !seen[id] {
			s.drop(old)
			res.removed = append(res.removed, id)
		}
	}
	for _, t := range ts {
		t.Spec = t.Spec.withDefaults()
		if old, ok := s.targets[t.ID]; ok {
			if sameProbe(old.Target, t) {
				s.retime(old, t.Spec, now)
				res.kept = append(res.kept, t.ID)
				continue
			}
			s.drop(old)
		}
		nt := &target{Target: t, m: newMachine(t.Spec, now), index: -1}
		s.targets[t.ID] = nt
		nt.due = now.Add(s.warmup(t.Spec))
		heap.Push(&s.queue, nt)
		res.added = append(res.added, t.ID)
	}
	return res, nil
}

// retime applies a new timing to a kept target. A check that is already
// scheduled is brought forward if the new DelayLoop asks for it sooner.
func (s *sched) retime(t *target, spec Spec, now time.Time) {
	t.Spec = spec
	if t.index >= 0 {
		if limit := now.Add(spec.DelayLoop); t.due.After(limit) {
			t.due = limit
			heap.Fix(&s.queue, t.index)
		}
	}
}

func (s *sched) drop(t *target) {
	delete(s.targets, t.ID)
	if t.index >= 0 {
		heap.Remove(&s.queue, t.index)
	}
	t.gone = true
}

func (s *sched) warmup(spec Spec) time.Duration {
	if spec.Warmup <= 0 {
		return 0
	}
	return time.Duration(s.rnd.Int64N(int64(spec.Warmup)))
}

// loop returns the delay after a regular check, made up to jitter early so
// that targets that happen to complete together drift apart again. Never
// later than DelayLoop: a dead server is noticed within ConnectTimeout +
// DelayLoop (+ retries), as with keepalived.
func (s *sched) loop(d time.Duration) time.Duration {
	if s.jitter <= 0 || d <= 0 {
		return d
	}
	if spread := int64(float64(d) * s.jitter); spread > 0 {
		return d - time.Duration(s.rnd.Int64N(spread))
	}
	return d
}

// requeueBusy puts every target that was handed out but whose result will
// never come (Run stopped) back in the schedule, due at now.
func (s *sched) requeueBusy(now time.Time) {
	for _, t := range s.targets {
		if t.busy && t.index < 0 {
			t.busy = false
			t.due = now
			heap.Push(&s.queue, t)
		}
	}
}

// next returns when the earliest scheduled check is due.
func (s *sched) next() (time.Time, bool) {
	if len(s.queue) == 0 {
		return time.Time{}, false
	}
	return s.queue[0].due, true
}

// popDue appends to dst every target due at or before now and marks it busy.
func (s *sched) popDue(now time.Time, dst []*target) []*target {
	for len(s.queue) > 0 && !s.queue[0].due.After(now) {
		t := heap.Pop(&s.queue).(*target)
		t.busy = true
		dst = append(dst, t)
	}
	return dst
}

// complete applies a probe result and schedules the target's next check.
// It returns the transition, if any, and the verdict.
func (s *sched) complete(t *target, err error, now time.Time) (*Transition, verdict) {
	t.busy = false
	if t.gone {
		return nil, verdict{}
	}
	v := t.m.observe(t.Spec, err, now)
	next := v.next
	if !v.retry {
		next = s.loop(next)
	}
	t.due = now.Add(next)
	heap.Push(&s.queue, t)
	if !v.changed {
		return nil, v
	}
	tr := &Transition{ID: t.ID, Addr: t.Addr, Up: t.m.up, At: now}
	if t.m.up {
		tr.Reason = "check succeeded"
	} else {
		tr.Reason = t.m.lastErr
	}
	return tr, v
}

// timerHeap orders targets by due time.
type timerHeap []*target

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *timerHeap) Push(x any) {
	t := x.(*target)
	t.index = len(*h)
	*h = append(*h, t)
}

func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	t.index = -1
	*h = old[:n-1]
	return t
}
