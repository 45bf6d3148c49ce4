package kvs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"runtime/debug"
	"sort"
	"sync"
	"time"
)

// Options tune a Tier.
type Options struct {
	// Now returns the current unix second; time.Now by default. Tests
	// use it to move the clock for expiry.
	Now func() int64
	// RateWindow is the window over which OpsPerSec is averaged; 10 s by
	// default.
	RateWindow time.Duration
	// NoEventLoop serves every connection from its own goroutine instead
	// of the epoll loops (Linux); slower, for comparison and tests.
	NoEventLoop bool
	// EventLoops is the number of event loops; by default one per CPU the
	// process may use (at most GOMAXPROCS). The loops spend their idle
	// time blocked in epoll_wait, so a process serves best with GOMAXPROCS
	// above the loop count (a loop returning from epoll_wait then finds a
	// free P at once).
	EventLoops int
	// NoCPUAffinity leaves the event loops free to run on any CPU. By
	// default each loop is pinned to its share of the CPUs the process may
	// use (one CPU each when there are as many loops as CPUs), and a new
	// connection is served by the loop of the CPU that received it
	// (SO_INCOMING_CPU): with a multi-queue NIC, that is the CPU its
	// receive queue interrupts; on loopback, its client's. A connection's
	// packets, its loop and its client then wake each other on one CPU.
	// That loop takes it only while it serves at most two connections more
	// than the least loaded loop, which takes it otherwise (unpinned loops
	// always give it to the least loaded).
	NoCPUAffinity bool
	// NoBatchScheduling leaves the event loops' threads under SCHED_OTHER.
	// By default they run under SCHED_BATCH: a loop woken by a request
	// does not preempt the thread running on its CPU, which may be the
	// client sending it more (on loopback, the client itself); it runs
	// when that thread sleeps or its slice ends. Beside a CPU-bound thread
	// of another program, a loop then waits for that thread's slice to
	// end. A loop under another policy (set by the operator) keeps it.
	NoBatchScheduling bool
	// GoMemoryLimit makes Apply set the Go runtime's soft memory limit to
	// GoMemoryLimitFor(the tenants' memory limits added up), unless the
	// operator set GOMEMLIMIT. Left alone, the garbage collector lets the
	// heap grow to twice what is live, and a storage node would take
	// about twice the memory its tenants are given (memcached -m 64 runs
	// in about 75 MB). For the process that serves the tier: the limit is
	// the process's. Unless the operator set GOGC, the collector then runs
	// only as the heap nears that limit (GOGC off under it): with a store
	// far from full, a collection every few megabytes allocated (GOGC's
	// default, twice what is live) made a forwarding node collect about
	// ten times a second under bench-cluster's multi-gets, each a few
	// milliseconds of marking beside the event loops. A full store
	// collects as often as before; the process uses the memory it was
	// given.
	GoMemoryLimit bool
}

// GoMemoryLimitFor returns the soft memory limit for the Go runtime of a
// process whose KVS tenants may use budget (> 0) bytes: the budget, a quarter
// more for the collector's headroom, and 32 MiB for connections and the
// rest of the process.
func GoMemoryLimitFor(budget int64) int64 {
	return satAdd(satAdd(budget, budget/4), 32<<20)
}

// satAdd is a+b for non-negative a and b, math.MaxInt64 where that
// overflows.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Tier runs the KVS tenants of one storage node. It is safe for
// concurrent use.
type Tier struct {
	log     *slog.Logger
	opts    Options
	mu      sync.Mutex
	tenants map[string]*tenant
	failed  map[string]error // by the last Apply
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
	pool    *evPool
	// cluster is set by JoinCluster.
	cluster *clusterNode
	// protos are the ProtoServers serving from the loops.
	protos map[*ProtoServer]struct{}
}

// tenant is one running tenant.
type tenant struct {
	cfg   TenantConfig // with defaults
	store Store
	svc   *service
	srv   *server
	rate  rateSampler
}

// TenantStats is the operator's view of one tenant.
type TenantStats struct {
	// Name is the tenant's name.
	Name string
	// Listen is the bound address.
	Listen string
	// Store is the store kind.
	Store StoreKind
	// Items is the number of items stored.
	Items int64
	// Bytes is the memory accounted to the items.
	Bytes int64
	// LimitBytes is the tenant's memory limit.
	LimitBytes int64
	// Hits and Misses count retrievals (get, gets, gat, gats, mg).
	Hits, Misses uint64
	// Evictions counts items evicted to respect the memory limit.
	Evictions uint64
	// CurrConnections is the number of open client connections.
	CurrConnections int64
	// TotalConnections counts connections ever accepted.
	TotalConnections uint64
	// RejectedConnections counts connections refused over MaxConns.
	RejectedConnections uint64
	// Commands counts requests served.
	Commands uint64
	// OpsPerSec is the request rate over the recent window.
	OpsPerSec float64
}

// New returns an empty Tier; Apply gives it tenants.
func New(logger *slog.Logger, opts Options) *Tier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tier{log: logger, opts: opts, tenants: make(map[string]*tenant), cancel: cancel, done: make(chan struct{})}
	if !opts.NoEventLoop {
		pool, err := newEvPool(opts, logger)
		if err != nil {
			logger.Warn("kvs: no event loops, serving connections from goroutines", "err", err)
		}
		t.pool = pool
	}
	go t.sampleLoop(ctx)
	return t
}

// sameStore says whether two configs can keep the same store.
func sameStore(a, b TenantConfig) bool {
	if a.Store != b.Store {
		return false
	}
	if a.Store == StoreMemory {
		return true
	}
	return a.Dir == b.Dir && a.Sync == b.Sync && a.SyncInterval == b.SyncInterval
}

// Apply makes the running tenants match want: it stops tenants not in
// want, starts new ones, and changes the others in place. A tenant whose
// limits change keeps its connections and data; one whose address changes
// is rebound (its data kept); one whose store changes is restarted. Tenants
// that did not change are not touched. A list in which two tenants share a
// name, port or data directory is refused as a whole.
func (t *Tier) Apply(ctx context.Context, want []TenantConfig) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("kvs: apply: tier closed")
	}
	// A tenant whose settings cannot run is left out (one running keeps
	// its last settings) and reported; the others go on.
	failed := map[string]error{}
	var errs []error
	ok := make([]TenantConfig, 0, len(want))
	for _, c := range want {
		if err := c.Validate(); err != nil {
			failed[c.Name] = err
			errs = append(errs, err)
			if tn, running := t.tenants[c.Name]; running {
				ok = append(ok, tn.cfg)
			}
			continue
		}
		ok = append(ok, c)
	}
	if err := ValidateTenants(ok); err != nil {
		return err
	}
	defer func() { t.failed = failed }()
	desired := make(map[string]TenantConfig, len(ok))
	for _, c := range ok {
		c = c.withDefaults()
		desired[c.Name] = c
	}
	// Stop what goes away, and what must be rebuilt, first: that frees
	// ports and directories for the starts below.
	var rebind []string
	for name, tn := range t.tenants {
		c, ok := desired[name]
		switch {
		case !ok:
			t.stopTenant(tn)
			delete(t.tenants, name)
			t.log.Info("kvs: tenant removed", "tenant", name)
		case !sameStore(tn.cfg, c):
			t.stopTenant(tn)
			delete(t.tenants, name)
		case tn.cfg.Listen != c.Listen:
			tn.srv.close()
			tn.srv = nil
			rebind = append(rebind, name)
		}
	}
	for _, name := range rebind {
		tn := t.tenants[name]
		c := desired[name]
		ln, err := listen(ctx, c.Listen)
		if err != nil {
			err = fmt.Errorf("kvs: tenant %q: %w", name, err)
			failed[name] = err
			errs = append(errs, err)
			t.stopTenant(tn)
			delete(t.tenants, name)
			continue
		}
		tn.srv = startServer(tn.svc, ln, t.pool)
	}
	for name, c := range desired {
		if tn, ok := t.tenants[name]; ok {
			if tn.cfg != c {
				if tn.cfg.MemoryLimit != c.MemoryLimit {
					tn.store.SetLimit(c.MemoryLimit)
				}
				cc := c
				tn.svc.cfgp.Store(&cc)
				tn.cfg = c
				t.log.Info("kvs: tenant changed", "tenant", name)
			}
			continue
		}
		tn, err := t.startTenant(ctx, c)
		if err != nil {
			failed[name] = err
			errs = append(errs, err)
			t.log.Error("kvs: tenant cannot start; the others serve", "tenant", name, "err", err)
			continue
		}
		t.tenants[name] = tn
		t.log.Info("kvs: tenant started", "tenant", name, "listen", tn.srv.addr().String(), "store", c.Store)
	}
	t.setGoMemoryLimit()
	return errors.Join(errs...)
}

// setGoMemoryLimit applies Options.GoMemoryLimit; the caller holds t.mu.
func (t *Tier) setGoMemoryLimit() {
	if !t.opts.GoMemoryLimit || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	var budget int64
	for _, tn := range t.tenants {
		budget = satAdd(budget, tn.cfg.MemoryLimit)
	}
	limit := int64(math.MaxInt64) // no tenants: the runtime's default
	if budget > 0 {
		limit = GoMemoryLimitFor(budget)
	}
	if prev := debug.SetMemoryLimit(limit); prev != limit {
		t.log.Info("kvs: Go memory limit set", "bytes", limit, "tenants_bytes", budget)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercentUnder(limit))
	}
}

// gcPercentUnder is the collector's GOGC under the Go memory limit limit:
// off (it collects as the heap nears the limit), or the runtime's default
// when there is no limit.
func gcPercentUnder(limit int64) int {
	if limit == math.MaxInt64 {
		return 100
	}
	return -1
}

func listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

func (t *Tier) startTenant(ctx context.Context, c TenantConfig) (tn *tenant, err error) {
	// A tenant's settings never take the process down: a panic opening
	// its store (a bug, or an engine's Fatalf) fails this tenant only.
	defer func() {
		if p := recover(); p != nil {
			tn, err = nil, fmt.Errorf("kvs: tenant %q: panic: %v", c.Name, p)
		}
	}()
	store, err := openStore(t.log, c)
	if err != nil {
		return nil, fmt.Errorf("kvs: tenant %q: %w", c.Name, err)
	}
	ln, err := listen(ctx, c.Listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("kvs: tenant %q: %w", c.Name, err)
	}
	svc := newService(t.log, c, store, t.opts.Now)
	if t.cluster != nil {
		t.cluster.attach(svc)
	}
	return &tenant{cfg: c, store: store, svc: svc, srv: startServer(svc, ln, t.pool)}, nil
}

// openStore opens the store a config asks for.
func openStore(log *slog.Logger, c TenantConfig) (Store, error) {
	switch c.Store {
	case StoreDurable:
		return OpenDurable(log, DurableOptions{Dir: c.Dir, MemoryLimit: c.MemoryLimit, Sync: c.Sync, SyncInterval: c.SyncInterval})
	default:
		return NewMemoryStore(c.MemoryLimit), nil
	}
}

func (t *Tier) stopTenant(tn *tenant) {
	if tn.srv != nil {
		tn.srv.close()
	}
	tn.svc.stop()
	if t.cluster != nil {
		t.cluster.detach(tn.svc)
	}
	if err := tn.store.Close(); err != nil {
		t.log.Error("kvs: close store", "tenant", tn.cfg.Name, "err", err)
	}
}

// Failed returns the tenants the last Apply could not start or change,
// with why.
func (t *Tier) Failed() map[string]error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.failed)
}

// Addr returns the bound address of a tenant (useful with port 0).
func (t *Tier) Addr(name string) (net.Addr, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tn, ok := t.tenants[name]
	if !ok || tn.srv == nil {
		return nil, false
	}
	return tn.srv.addr(), true
}

// Stats returns every tenant's counters, sorted by name.
func (t *Tier) Stats() []TenantStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]TenantStats, 0, len(t.tenants))
	for _, tn := range t.tenants {
		out = append(out, tn.stats())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (tn *tenant) stats() TenantStats {
	st := tn.store.Stats()
	c := &tn.svc.ctr
	addr := tn.cfg.Listen
	if tn.srv != nil {
		addr = tn.srv.addr().String()
	}
	return TenantStats{
		Name:                tn.cfg.Name,
		Listen:              addr,
		Store:               tn.cfg.Store,
		Items:               st.Items,
		Bytes:               st.Bytes,
		LimitBytes:          st.LimitBytes,
		Hits:                c.load(cGetHits) + c.load(cTouchHits),
		Misses:              c.load(cGetMisses) + c.load(cTouchMisses),
		Evictions:           st.Evictions,
		CurrConnections:     tn.svc.curConns.Load(),
		TotalConnections:    tn.svc.totConns.Load(),
		RejectedConnections: tn.svc.rejected.Load(),
		Commands:            c.load(cCommands),
		OpsPerSec:           tn.rate.rate(),
	}
}

// Close stops every tenant. Durable data stays on disk.
func (t *Tier) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	cl := t.cluster
	protos := t.protos
	t.protos = nil
	t.mu.Unlock()
	for s := range protos {
		s.Close() // their requests first, while the stores and loops run
	}
	if cl != nil {
		// The other nodes' requests first: none may reach a store
		// being closed.
		cl.close()
	}
	t.mu.Lock()
	for name, tn := range t.tenants {
		t.stopTenant(tn)
		delete(t.tenants, name)
	}
	t.mu.Unlock()
	t.cancel()
	<-t.done
	t.pool.close()
	return nil
}

func (t *Tier) sampleLoop(ctx context.Context) {
	defer close(t.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n := int(t.opts.RateWindow / time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			t.mu.Lock()
			for _, tn := range t.tenants {
				tn.rate.add(now, tn.svc.ctr.load(cCommands), n)
			}
			t.mu.Unlock()
		}
	}
}

// rateSampler keeps recent (time, count) samples of a counter.
type rateSampler struct {
	mu     sync.Mutex
	times  []time.Time
	counts []uint64
}

func (r *rateSampler) add(t time.Time, c uint64, keep int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times = append(r.times, t)
	r.counts = append(r.counts, c)
	if len(r.times) > keep+1 {
		r.times = r.times[1:]
		r.counts = r.counts[1:]
	}
}

func (r *rateSampler) rate() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.times)
	if n < 2 {
		return 0
	}
	dt := r.times[n-1].Sub(r.times[0]).Seconds()
	if dt <= 0 || r.counts[n-1] < r.counts[0] {
		return 0
	}
	return float64(r.counts[n-1]-r.counts[0]) / dt
}
