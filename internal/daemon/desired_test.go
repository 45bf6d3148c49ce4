package daemon

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/healthcheck"
	"github.com/lbd-project/lbd/pkg/ipvs/ipvstest"
)

const storeYAML = `
nodes:
  - {name: lb1, role: director, address: 10.0.0.2, interface: eth0}
  - {name: st1, role: storage, address: 10.0.0.11}
defaults: {health: {type: none}}
tenants:
  - {name: a, service: {vip: 10.0.0.1, port: 11211}, allow: [192.0.2.1, 192.0.2.2]}
`

// racyStore is a Store whose next Propose is preceded, once, by another
// writer's.
type racyStore struct {
	*cluster.Memory
	mu     sync.Mutex
	before func()
}

func (r *racyStore) Propose(ctx context.Context, ops ...cluster.Op) (uint64, error) {
	r.mu.Lock()
	f := r.before
	r.before = nil
	r.mu.Unlock()
	if f != nil {
		f()
	}
	return r.Memory.Propose(ctx, ops...)
}

// storeDirector is director lb1 with a fake fence, reading its desired
// state from store, with its loop running until the test ends.
func storeDirector(t *testing.T, store cluster.Store) (*Daemon, *fakeFencer) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	if err := os.WriteFile(path, []byte(storeYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fakeFencer{}
	d := testDirector(t, f, ipvstest.NewFake(), dir, newTestClock())
	d.opts = Options{ConfigPath: path, Node: "lb1", StateDir: dir}
	d.events, d.ops = events.NewBus(16), make(chan op)
	d.health = healthcheck.New(healthcheck.Options{})
	file, data, _, err := d.load()
	if err != nil {
		t.Fatal(err)
	}
	d.fileData = data
	if err := d.initialState(file, data); err != nil {
		t.Fatal(err)
	}
	d.store, d.ctl = store, &localControl{name: "lb1", store: store}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	watch := store.Watch(ctx)
	if err := d.seed(ctx, data); err != nil {
		t.Fatal(err)
	}
	d.syncStore(ctx)
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case o := <-d.ops:
				o.done <- o.fn(ctx)
			case <-watch:
				d.syncStore(ctx)
			}
		}
	}()
	return d, f
}

func allowOf(f *fakeFencer, name string) []string {
	var out []string
	for _, p := range f.have[name].Allow {
		out = append(out, p.Addr().String())
	}
	return out
}

// A runtime change is proposed, comes back through the Store and is
// reconciled before the call returns; a writer that raced it is not lost
// (compare-and-set, re-read, re-validated).
func TestRuntimeChangeThroughStore(t *testing.T) {
	m := &racyStore{Memory: cluster.NewMemory()}
	d, f := storeDirector(t, m)
	ctx := context.Background()
	if got := allowOf(f, "a"); !slices.Equal(got, []string{"192.0.2.1", "192.0.2.2"}) {
		t.Fatalf("seeded fence %v", got)
	}
	// Another node adds 192.0.2.3 between our read and our write.
	m.before = func() {
		other := d.overlayNow().clone()
		other.Allow = map[string][]netip.Prefix{"a": {netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("192.0.2.2/32"), netip.MustParsePrefix("192.0.2.3/32")}}
		e, _ := m.Get(cluster.KeyOverlay)
		op, _ := overlayOp(other)
		op.IfVersion = cluster.Version(e.Version)
		if _, err := m.Memory.Propose(ctx, op); err != nil {
			t.Error(err)
		}
	}
	if _, err := d.ChangeAllow(ctx, "a", api.AllowDel, []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}); err != nil {
		t.Fatal(err)
	}
	if got := allowOf(f, "a"); !slices.Equal(got, []string{"192.0.2.2", "192.0.2.3"}) {
		t.Fatalf("fence after the raced change %v, want the other writer's entry kept and ours removed", got)
	}
	d.mu.RLock()
	rec, idx := d.st.reconciled, m.AppliedIndex()
	d.mu.RUnlock()
	if rec != idx {
		t.Errorf("reconciled index %d, store at %d", rec, idx)
	}
	// An invalid change is not proposed.
	before := m.AppliedIndex()
	err := d.AddService(ctx, storeService("10.0.0.1", 11211))
	if !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrConflict) {
		t.Fatalf("a service on the tenant's port: %v", err)
	}
	if m.AppliedIndex() != before {
		t.Error("an invalid change reached the store")
	}
}

// A node never goes back to a state older than the one it last applied
// (a Store replaying its log after a restart).
func TestSyncNeverGoesBack(t *testing.T) {
	m := cluster.NewMemory()
	d, f := storeDirector(t, m)
	ctx := context.Background()
	if _, err := d.ChangeAllow(ctx, "a", api.AllowSet, []netip.Prefix{netip.MustParsePrefix("192.0.2.9/32")}); err != nil {
		t.Fatal(err)
	}
	cp, err := loadApplied(d.opts.StateDir)
	if err != nil || cp == nil || cp.Index != m.AppliedIndex() {
		t.Fatalf("applied copy %+v, %v; store at %d", cp, err, m.AppliedIndex())
	}
	// A fresh store (as one replaying from the start) at a lower index.
	old := cluster.NewMemory()
	e, _ := m.Get(cluster.KeyConfig)
	if _, err := old.Propose(ctx, cluster.Op{Key: cluster.KeyConfig, Value: e.Value}); err != nil {
		t.Fatal(err)
	}
	_ = d.do(ctx, func(ctx context.Context) error {
		d.store = old
		d.syncStore(ctx)
		d.store = m
		return nil
	})
	if got := allowOf(f, "a"); !slices.Equal(got, []string{"192.0.2.9"}) {
		t.Fatalf("fence %v after an older store state was offered", got)
	}
}

func storeService(vip string, port int) config.VirtualService {
	return config.VirtualService{Service: config.Service{VIP: vip, Port: port}, Reals: []config.Real{{Address: "10.0.2.1"}}}
}

// Concurrent changes on one node are proposed together where they meet
// (group commit); none is lost, and one that fails fails alone.
func TestRuntimeChangesConcurrent(t *testing.T) {
	m := cluster.NewMemory()
	d, f := storeDirector(t, m)
	ctx := context.Background()
	const n = 20
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 32)
			_, errs[i] = d.ChangeAllow(ctx, "a", api.AllowAdd, []netip.Prefix{p})
		})
	}
	wg.Go(func() { errs[n] = d.DeleteTenant(ctx, "nosuch") })
	wg.Wait()
	for i, err := range errs[:n] {
		if err != nil {
			t.Errorf("change %d: %v", i, err)
		}
	}
	if !errors.Is(errs[n], api.ErrNotFound) {
		t.Errorf("the failing change: %v, want not found", errs[n])
	}
	if got := len(allowOf(f, "a")); got != n+2 {
		t.Errorf("fence has %d entries, want %d", got, n+2)
	}
}
