package healthcheck

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWorkers is the default size of the probe worker pool. A probe
// mostly waits on the network, so the pool bounds concurrency (sockets in
// flight), not CPU.
const DefaultWorkers = 256

// DefaultJitter is the default Options.Jitter.
const DefaultJitter = 0.1

// Dialer opens connections for probes; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options configures a Checker. The zero value is usable.
type Options struct {
	// Logger receives transitions (Info/Warn) and retries (Debug).
	// Nil discards logs.
	Logger *slog.Logger
	// Workers bounds how many probes run at once. Zero selects
	// DefaultWorkers.
	Workers int
	// Clock is the time source. Nil selects SystemClock.
	Clock Clock
	// Dialer opens probe connections. Nil selects a *net.Dialer.
	Dialer Dialer
	// OnTransition, if set, is called on the Run goroutine for every
	// transition, in order. It must not block for long; it may call
	// Update, State and States.
	OnTransition func(Transition)
	// Jitter is the fraction of DelayLoop by which a regular check may be
	// made early, at random, so that targets do not stay in lockstep.
	// Zero selects DefaultJitter; negative disables jitter.
	Jitter float64
	// Rand drives warmup and jitter. Nil selects a randomly seeded source.
	Rand *rand.Rand
}

// Checker runs health checks for a set of targets. Its methods are safe for
// concurrent use.
type Checker struct {
	log     *slog.Logger
	workers int
	clock   Clock
	dialer  Dialer
	notify  func(Transition)

	mu sync.Mutex
	s  *sched

	wake    chan struct{}
	running atomic.Bool

	// testHookResult, if set, runs on the Run goroutine after each result.
	testHookResult func()
}

// New returns a Checker with no targets. Call Update to give it targets and
// Run to start checking.
func New(opts Options) *Checker {
	c := &Checker{
		log:     opts.Logger,
		workers: opts.Workers,
		clock:   opts.Clock,
		dialer:  opts.Dialer,
		notify:  opts.OnTransition,
		wake:    make(chan struct{}, 1),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.workers <= 0 {
		c.workers = DefaultWorkers
	}
	if c.clock == nil {
		c.clock = SystemClock{}
	}
	if c.dialer == nil {
		c.dialer = &net.Dialer{}
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	jitter := opts.Jitter
	switch {
	case jitter == 0:
		jitter = DefaultJitter
	case jitter < 0:
		jitter = 0
	case jitter > 0.5:
		jitter = 0.5
	}
	c.s = newSched(rnd, jitter)
	return c
}

// Update replaces the set of targets. Targets whose ID and probe (address,
// type, connect address, HTTP settings) are unchanged keep their state and
// schedule, so a reload does not reset health; new or changed targets start
// in their initial state (down with Alpha, up otherwise) and are first
// checked after their warmup; targets not listed stop being checked. On
// error (an invalid target, a duplicate ID) nothing changes.
func (c *Checker) Update(targets []Target) error {
	c.mu.Lock()
	res, err := c.s.update(targets, c.clock.Now())
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.log.Info("healthcheck: targets updated",
		"added", len(res.added), "removed", len(res.removed), "kept", len(res.kept))
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// State returns the status of one target.
func (c *Checker) State(id string) (Status, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.s.targets[id]
	if !ok {
		return Status{}, false
	}
	return t.status(), true
}

// States returns the status of every target, sorted by ID.
func (c *Checker) States() []Status {
	c.mu.Lock()
	out := make([]Status, 0, len(c.s.targets))
	for _, t := range c.s.targets {
		out = append(out, t.status())
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// job is one probe to run; tg is a copy taken under the lock, so workers
// never read a target that Update may be changing.
type job struct {
	t  *target
	tg Target
}

type result struct {
	t   *target
	err error
}

// Run checks the targets until ctx is done, then waits for in-flight probes
// to stop and returns nil. It returns an error if the Checker is already
// running.
func (c *Checker) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("healthcheck: checker already running")
	}
	defer c.running.Store(false)

	jobs := make(chan job)
	results := make(chan result, c.workers)
	var wg sync.WaitGroup
	for range c.workers {
		wg.Go(func() {
			for j := range jobs {
				err := c.probe(ctx, j.tg)
				select {
				case results <- result{j.t, err}:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	defer func() {
		close(jobs)
		wg.Wait()
		// Probes that were queued or cut short are due again when Run
		// is called next.
		c.mu.Lock()
		c.s.requeueBusy(c.clock.Now())
		c.mu.Unlock()
	}()

	timer := c.clock.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var armed time.Time // deadline the timer is set for; zero when stopped
	var ready []job     // due probes waiting for a free worker, oldest first

	for {
		c.mu.Lock()
		now := c.clock.Now()
		ready = c.popDue(now, ready)
		next, ok := c.s.next()
		c.mu.Unlock()

		switch {
		case !ok && !armed.IsZero():
			timer.Stop()
			armed = time.Time{}
		case ok && !next.Equal(armed):
			timer.Reset(next.Sub(now))
			armed = next
		}

		var send chan job
		var head job
		if len(ready) > 0 {
			send, head = jobs, ready[0]
		}
		select {
		case <-ctx.Done():
			return nil
		case send <- head:
			ready[0] = job{}
			ready = ready[1:]
		case r := <-results:
			c.finish(r)
		case <-timer.C():
			armed = time.Time{}
		case <-c.wake:
		}
	}
}

// popDue moves the due targets to ready. Called with c.mu held.
func (c *Checker) popDue(now time.Time, ready []job) []job {
	for _, t := range c.s.popDue(now, nil) {
		ready = append(ready, job{t: t, tg: t.Target})
	}
	return ready
}

// finish applies a result, logs it and reports a transition.
func (c *Checker) finish(r result) {
	c.mu.Lock()
	tr, v := c.s.complete(r.t, r.err, c.clock.Now())
	c.mu.Unlock()
	if v.retry {
		c.log.Debug("healthcheck: check failed, retrying",
			"id", r.t.ID, "addr", r.t.Addr, "error", r.err, "retry_in", v.next)
	}
	if tr != nil {
		if tr.Up {
			c.log.Info("healthcheck: server up", "id", tr.ID, "addr", tr.Addr)
		} else {
			c.log.Warn("healthcheck: server down", "id", tr.ID, "addr", tr.Addr, "reason", tr.Reason)
		}
		if c.notify != nil {
			c.notify(*tr)
		}
	}
	if c.testHookResult != nil {
		c.testHookResult()
	}
}
