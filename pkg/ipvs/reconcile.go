package ipvs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Defaults for Options.
const (
	DefaultDrainPeriod    = 30 * time.Second
	DefaultResyncInterval = 5 * time.Minute
)

// Options configure a Reconciler.
type Options struct {
	// StateDir is where the Reconciler records the services it owns
	// (StateFileName). Empty keeps the record in memory only, so a new
	// Reconciler adopts nothing: use that only in tests.
	StateDir string
	// DrainPeriod is how long a real server (or a whole service) that left
	// the desired state keeps weight 0 before it is deleted. Zero means
	// DefaultDrainPeriod; negative deletes at once.
	DrainPeriod time.Duration
	// ResyncInterval is how often Apply reads the whole table back from the
	// kernel instead of trusting its record. Zero means
	// DefaultResyncInterval; negative means only at start and after errors.
	ResyncInterval time.Duration
	// AdoptExisting lets the Reconciler take over a desired service that
	// already exists but that it did not create (for example one that
	// keepalived made). By default such a service is a conflict and is left
	// untouched.
	AdoptExisting bool
	// Logger receives one line per Apply that changed something, and one
	// per failure. Nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Result tells what one Apply did.
type Result struct {
	// Writes counts netlink write requests sent (including failed ones):
	// an unchanged desired state costs zero.
	Writes int
	// Failed counts the writes that the kernel refused.
	Failed int
	// Reads counts netlink dump requests.
	Reads int
	// Full reports that the table was read back from the kernel in full
	// (at start, after a failure, or when ResyncInterval elapsed).
	Full bool

	ServicesAdded, ServicesUpdated, ServicesDeleted int
	DestsAdded, DestsUpdated, DestsDeleted          int
	// Draining counts the real servers and services now draining.
	Draining int
	// Conflicts lists desired services that exist in the kernel but are
	// not lbd's (see Options.AdoptExisting); they were left untouched.
	Conflicts []Key

	// Netlink is the time spent in netlink requests (reads and writes).
	Netlink time.Duration
	// Elapsed is the whole Apply, including the diff.
	Elapsed time.Duration
	// NextWake is when Apply should run again, with the same desired
	// state if nothing changed, to finish drains, retry failures and
	// resynchronise. Zero means no deadline.
	NextWake time.Time
}

// Reconciler makes the kernel's IPVS table match a desired state, touching
// only the services it owns. Its methods are safe for concurrent use; Apply
// calls are serialised.
type Reconciler struct {
	k     Kernel
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	path  string
	drain time.Duration

	mu         sync.Mutex
	have       map[Key]*svcRec // owned services, as last applied or read
	draining   map[Key]bool    // owned services with a drain deadline (theirs or a real server's)
	dirty      map[Key]bool    // owned services to read back before the next diff
	stateStale bool            // the state file lists a service that is gone
	other      map[Key]bool    // services in the kernel that are not ours
	loaded     ownedState      // the state file, until the first full read
	synced     bool            // have was read in full from the kernel
	nextResync time.Time
	retryAt    time.Time
	backoff    time.Duration
}

// NewReconciler returns a Reconciler driving k. It reads the state file but
// touches the kernel only on the first Apply, which reads the table in full
// and adopts the services recorded as lbd's.
func NewReconciler(k Kernel, opts Options) (*Reconciler, error) {
	r := &Reconciler{k: k, opts: opts, log: opts.Logger, now: opts.Now, drain: opts.DrainPeriod,
		have: map[Key]*svcRec{}, other: map[Key]bool{}, draining: map[Key]bool{}, dirty: map[Key]bool{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.drain == 0 {
		r.drain = DefaultDrainPeriod
	}
	if opts.StateDir != "" {
		r.path = filepath.Join(opts.StateDir, StateFileName)
	}
	st, err := loadState(r.path)
	if err != nil {
		return nil, err
	}
	r.loaded = st
	return r, nil
}

// Invalidate makes the next Apply read the whole table back from the kernel
// (use it when something else may have changed the table).
func (r *Reconciler) Invalidate() {
	r.mu.Lock()
	r.synced = false
	r.mu.Unlock()
}

// Apply makes the services lbd owns match desired, creating, updating,
// draining and deleting as needed, and records ownership. desired must hold
// every service lbd should have (services absent from it are drained and
// deleted if lbd owns them). An invalid desired state is refused as a whole,
// before anything is written.
//
// A failed write is logged, returned (joined with the others) and leaves the
// affected service as it was; the rest of the plan still runs. The failure
// is retried by the next Apply, due at Result.NextWake.
func (r *Reconciler) Apply(ctx context.Context, desired []Service) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	now := r.now()
	var res Result
	want, order, err := index(desired)
	if err != nil {
		return res, err
	}
	if err := r.observe(&res, now, want); err != nil {
		r.failed(&res, now)
		res.Elapsed = time.Since(start)
		return res, err
	}
	skip := map[Key]bool{}
	for _, k := range order {
		if r.have[k] == nil && r.other[k] {
			skip[k] = true
			res.Conflicts = append(res.Conflicts, k)
		}
	}
	ops := plan(want, order, r.have, skip, now, r.drain)

	var errs []error
	for _, k := range res.Conflicts {
		errs = append(errs, fmt.Errorf("ipvs: service %s exists but lbd did not create it; leaving it alone", k))
	}
	// Record ownership before creating, so that a crash in between cannot
	// leave a service that lbd made but does not know it owns.
	pending := map[Key]*Service{}
	for i := range ops {
		if ops[i].kind == opAddService {
			pending[ops[i].svc.Key()] = want[ops[i].svc.Key()]
		}
	}
	if len(pending) > 0 {
		if err := saveState(r.path, r.have, pending); err != nil {
			r.failed(&res, now)
			res.Elapsed = time.Since(start)
			return res, err
		}
	}
	stateChanged := r.execute(ctx, ops, now, &res, &errs)
	if stateChanged || r.stateStale {
		if err := saveState(r.path, r.have, nil); err != nil {
			errs = append(errs, err)
		} else {
			r.stateStale = false
		}
	}
	if len(errs) > len(res.Conflicts) || res.Failed > 0 {
		r.failed(&res, now)
	} else {
		r.backoff, r.retryAt = 0, time.Time{}
	}
	res.NextWake = r.nextWake(&res)
	res.Elapsed = time.Since(start)
	if res.Writes > 0 || res.Failed > 0 || res.Full {
		r.log.Info("ipvs: applied", "writes", res.Writes, "failed", res.Failed, "reads", res.Reads,
			"full", res.Full, "services_added", res.ServicesAdded, "services_updated", res.ServicesUpdated,
			"services_deleted", res.ServicesDeleted, "dests_added", res.DestsAdded,
			"dests_updated", res.DestsUpdated, "dests_deleted", res.DestsDeleted,
			"draining", res.Draining, "netlink", res.Netlink, "elapsed", res.Elapsed)
	}
	return res, errors.Join(errs...)
}

// index validates desired and maps it by key, keeping its order.
func index(desired []Service) (map[Key]*Service, []Key, error) {
	want := make(map[Key]*Service, len(desired))
	order := make([]Key, 0, len(desired))
	var errs []error
	for i := range desired {
		s := &desired[i]
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		k := s.Key()
		if _, dup := want[k]; dup {
			errs = append(errs, fmt.Errorf("ipvs: service %s listed twice", k))
			continue
		}
		want[k] = s
		order = append(order, k)
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("ipvs: desired state refused, nothing applied: %w", errors.Join(errs...))
	}
	return want, order, nil
}

// failed schedules a retry with exponential backoff (1 s to 30 s) and a full
// read before it.
func (r *Reconciler) failed(res *Result, now time.Time) {
	switch {
	case r.backoff == 0:
		r.backoff = time.Second
	case r.backoff < 30*time.Second:
		r.backoff *= 2
	}
	r.retryAt = now.Add(r.backoff)
	res.NextWake = r.nextWake(res)
}

func (r *Reconciler) nextWake(res *Result) time.Time {
	var next time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	earliest(r.retryAt)
	if r.opts.ResyncInterval >= 0 {
		earliest(r.nextResync)
	}
	res.Draining = 0
	for k := range r.draining {
		rec := r.have[k]
		n := 0
		if rec != nil {
			if !rec.drainUntil.IsZero() {
				n++
				earliest(rec.drainUntil)
			}
			for _, d := range rec.dests {
				if !d.drainUntil.IsZero() {
					n++
					earliest(d.drainUntil)
				}
			}
		}
		if n == 0 {
			delete(r.draining, k)
		}
		res.Draining += n
	}
	return next
}

// timed runs one netlink request and accounts for it.
func (r *Reconciler) timed(res *Result, write bool, f func() error) error {
	t := time.Now()
	err := f()
	res.Netlink += time.Since(t)
	if write {
		res.Writes++
		if err != nil {
			res.Failed++
		}
	} else {
		res.Reads++
	}
	return err
}

// execute runs the plan against the kernel, updating the record after each
// successful step. It reports whether the state file needs rewriting.
func (r *Reconciler) execute(ctx context.Context, ops []op, now time.Time, res *Result, errs *[]error) (stateChanged bool) {
	failedAdd := map[Key]bool{}
	bk, batching := r.k.(batcher)
	phaseEnd := 0
	if batching {
		if batching = writes(ops) > 1; batching {
			ops, phaseEnd = servicesFirst(ops)
		}
	}
	// With a batching kernel the writes of a chunk of steps are sent at
	// once and their results consumed below in order. New services go in
	// chunks of their own, first, so that a real server is never added to a
	// service whose creation failed (it might be someone else's).
	var pre []error
	preBase, preEnd := 0, 0
	do := func(i int, f func() error) error {
		if !batching {
			return r.timed(res, true, f)
		}
		res.Writes++
		err := pre[i-preBase]
		if err != nil {
			res.Failed++
		}
		return err
	}
	for i := range ops {
		o := &ops[i]
		if i%64 == 0 && ctx.Err() != nil {
			*errs = append(*errs, fmt.Errorf("ipvs: apply interrupted with %d of %d steps left: %w", len(ops)-i, len(ops), ctx.Err()))
			r.retryAt = now // resume at once
			return stateChanged
		}
		if batching && i >= preEnd {
			j := min(i+batchSize, len(ops))
			if i < phaseEnd {
				j = min(j, phaseEnd)
			}
			send, idx := make([]op, 0, j-i), make([]int, 0, j-i)
			for m := i; m < j; m++ {
				q := &ops[m]
				if q.kind == opMark || (q.kind == opAddDest && r.have[q.svc.Key()] == nil) {
					continue
				}
				send, idx = append(send, *q), append(idx, m)
			}
			t := time.Now()
			got := bk.batch(send)
			res.Netlink += time.Since(t)
			pre = make([]error, j-i)
			for n, m := range idx {
				pre[m-i] = got[n]
			}
			preBase, preEnd = i, j
		}
		k := o.svc.Key()
		rec := r.have[k]
		var err error
		switch o.kind {
		case opAddService:
			if err = do(i, func() error { return r.k.AddService(o.svc) }); err == nil {
				r.have[k] = &svcRec{svc: o.svc, dests: map[DestKey]*destRec{}}
				res.ServicesAdded++
				stateChanged = true
			} else {
				failedAdd[k] = true
				if errors.Is(err, syscall.EEXIST) {
					// Someone made it between our last read and now.
					r.other[k] = true
				}
			}
		case opUpdateService:
			if err = do(i, func() error { return r.k.UpdateService(o.svc) }); err == nil {
				rec.svc = o.svc
				res.ServicesUpdated++
			}
		case opDelService:
			err = do(i, func() error { return r.k.DelService(o.svc) })
			if err == nil || errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENOENT) {
				err = nil
				delete(r.have, k)
				res.ServicesDeleted++
				stateChanged = true
			}
		case opAddDest:
			if failedAdd[k] || rec == nil {
				continue
			}
			if err = do(i, func() error { return r.k.AddDest(o.svc, o.dest) }); err == nil {
				rec.dests[DestKey{Addr: o.dest.Addr, Port: o.dest.Port}] = &destRec{d: o.dest}
				res.DestsAdded++
			}
		case opUpdateDest:
			if err = do(i, func() error { return r.k.UpdateDest(o.svc, o.dest) }); err == nil {
				dr := rec.dests[DestKey{Addr: o.dest.Addr, Port: o.dest.Port}]
				dr.d = o.dest
				if !dr.drainUntil.Equal(o.until) {
					stateChanged = true
					r.draining[k] = true
				}
				dr.drainUntil = o.until
				res.DestsUpdated++
			}
		case opDelDest:
			err = do(i, func() error { return r.k.DelDest(o.svc, o.dest) })
			if err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				delete(rec.dests, DestKey{Addr: o.dest.Addr, Port: o.dest.Port})
				res.DestsDeleted++
				stateChanged = true
			}
		case opMark:
			r.draining[k] = true
			if o.hasDest {
				rec.dests[DestKey{Addr: o.dest.Addr, Port: o.dest.Port}].drainUntil = o.until
			} else {
				rec.drainUntil = o.until
			}
			stateChanged = true
		}
		if err != nil {
			what := describe(o)
			r.log.Error("ipvs: netlink write failed", "op", what, "err", err)
			*errs = append(*errs, fmt.Errorf("ipvs: %s: %w", what, err))
			if rec := r.have[k]; rec != nil {
				r.dirty[k] = true
			}
		}
	}
	return stateChanged
}

func writes(ops []op) int {
	n := 0
	for i := range ops {
		if ops[i].kind != opMark {
			n++
		}
	}
	return n
}

// servicesFirst moves the service creations to the front, keeping the order
// otherwise, and returns how many there are.
func servicesFirst(ops []op) ([]op, int) {
	out := make([]op, 0, len(ops))
	for i := range ops {
		if ops[i].kind == opAddService {
			out = append(out, ops[i])
		}
	}
	n := len(out)
	for i := range ops {
		if ops[i].kind != opAddService {
			out = append(out, ops[i])
		}
	}
	return out, n
}

// describe names a step for logs and errors, like "add service tcp
// 10.0.0.1:80" or "update real server 10.0.1.2:80 (weight 0) of tcp
// 10.0.0.1:80".
func describe(o *op) string {
	switch o.kind {
	case opAddDest, opUpdateDest, opDelDest:
		return fmt.Sprintf("%s %s (weight %d, %s) of %s", o.kind, DestKey{Addr: o.dest.Addr, Port: o.dest.Port},
			o.dest.Weight, o.dest.Forward, o.svc.Key())
	}
	return fmt.Sprintf("%s %s (scheduler %s)", o.kind, o.svc.Key(), o.svc.attrs().Scheduler)
}
