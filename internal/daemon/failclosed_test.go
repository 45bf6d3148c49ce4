package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/pkg/acl"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/ipvs"
	"github.com/lbd-project/lbd/pkg/ipvs/ipvstest"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// fakeFencer keeps what it fences; with fail set, Apply changes nothing
// and returns a general error (not a per-tenant one). left is what an
// earlier run left in the kernel, which Adopt records (reading works even
// with fail set).
type fakeFencer struct {
	have map[string]acl.Tenant
	left map[string]acl.Tenant
	fail bool
}

func (f *fakeFencer) Adopt(context.Context) error {
	for name, t := range f.left {
		if _, ok := f.have[name]; ok {
			continue
		}
		if f.have == nil {
			f.have = map[string]acl.Tenant{}
		}
		f.have[name] = t
	}
	return nil
}

func (f *fakeFencer) Apply(_ context.Context, ts []acl.Tenant) error {
	if f.fail {
		return errors.New("iptables-restore: exit status 1")
	}
	f.have = map[string]acl.Tenant{}
	for _, t := range ts {
		f.have[t.Name] = t
	}
	return nil
}

func (f *fakeFencer) SetAllow(_ context.Context, name string, allow []netip.Prefix) error {
	if f.fail {
		return errors.New("ipset: failed")
	}
	t := f.have[name]
	t.Allow = allow
	f.have[name] = t
	return nil
}

func (f *fakeFencer) Tenant(name string) (acl.Tenant, bool)      { t, ok := f.have[name]; return t, ok }
func (f *fakeFencer) State(context.Context) ([]acl.State, error) { return nil, nil }
func (f *fakeFencer) Close() error                               { return nil }

func (f *fakeFencer) Tenants() []acl.Tenant {
	var out []acl.Tenant
	for _, name := range slices.Sorted(maps.Keys(f.have)) {
		out = append(out, f.have[name])
	}
	return out
}

// A tenant is announced (put in IPVS) only when its own fence is in place.
func TestFenceBeforeAnnounce(t *testing.T) {
	c := mustParse(t, fileYAML)
	f := &fakeFencer{}
	d := &Daemon{sub: subsystems{acl: f}}
	ctx := context.Background()

	if err := d.reconcileACL(ctx, effectiveServices(c.Services(), nil, nil)); err != nil {
		t.Fatal(err)
	}
	if !d.sub.fenced["a"] || !d.sub.fenced["b"] {
		t.Fatalf("fenced = %v, want a and b", d.sub.fenced)
	}

	// The kernel refuses everything: a new tenant is not announced, the
	// existing ones keep their previous fences and stay.
	f.fail = true
	next := mustParse(t, strings.Replace(fileYAML, "virtual_services:",
		"  - {name: c, service: {vip: 10.0.0.1, port: 11213}, allow: []}\nvirtual_services:", 1))
	if err := d.reconcileACL(ctx, effectiveServices(next.Services(), nil, nil)); err == nil {
		t.Fatal("failure not reported")
	}
	if d.sub.fenced["c"] {
		t.Error("new tenant c counted as fenced although its fence failed")
	}
	if !d.sub.fenced["a"] {
		t.Error("tenant a lost its standing fence")
	}

	// A tenant whose port changed is not announced on its old fence.
	moved := mustParse(t, `
nodes:
  - {name: st1, role: storage, address: 10.0.1.1}
tenants:
  - {name: a, service: {vip: 10.0.0.1, port: 12000}, allow: [192.0.2.0/24]}
`)
	if err := d.reconcileACL(ctx, effectiveServices(moved.Services(), nil, nil)); err == nil {
		t.Fatal("failure not reported")
	}
	if d.sub.fenced["a"] {
		t.Error("tenant a announced on port 12000 behind its old fence on 11211")
	}
}

// A removed tenant stays fenced while IPVS still has its service, even
// when an ACL apply in between failed (and the daemon forgot what it had
// applied).
func TestFenceLingersAfterFailedApply(t *testing.T) {
	ctx := context.Background()
	c := mustParse(t, fileYAML)
	r, err := ipvs.NewReconciler(ipvstest.NewFake(), ipvs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFencer{}
	d := &Daemon{sub: subsystems{acl: f, ipvs: r}}
	eff := effectiveServices(c.Services(), nil, nil)
	if err := d.reconcileACL(ctx, eff); err != nil {
		t.Fatal(err)
	}
	var desired []ipvs.Service
	for _, s := range eff {
		desired = append(desired, toIPVS(s))
	}
	if _, err := r.Apply(ctx, desired); err != nil {
		t.Fatal(err)
	}

	// Tenant b is removed (its IPVS service drains) while c is added; the
	// kernel refuses this apply.
	next := mustParse(t, strings.Replace(
		strings.Replace(fileYAML, "  - {name: b, service: {vip: 10.0.0.1, port: 11212}, allow: []}\n", "", 1),
		"virtual_services:", "  - {name: c, service: {vip: 10.0.0.1, port: 11213}, allow: []}\nvirtual_services:", 1))
	eff = effectiveServices(next.Services(), nil, nil)
	f.fail = true
	if err := d.reconcileACL(ctx, eff); err == nil {
		t.Fatal("failure not reported")
	}
	// The kernel works again; b's service is still in IPVS.
	f.fail = false
	if err := d.reconcileACL(ctx, eff); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tenant("b"); !ok {
		t.Error("tenant b's fence dropped while IPVS still has its service")
	}
	if !d.sub.fenced["c"] {
		t.Errorf("fenced = %v, want c", d.sub.fenced)
	}
}

// testClock is a settable clock for the IPVS reconciler's drains.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

func newTestClock() *testClock { return &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// testDirector is a director fencing with f, whose IPVS table is k and
// whose state directory is dir; another one over the same k and dir is lbd
// restarted.
func testDirector(t *testing.T, f fencer, k *ipvstest.Fake, dir string, clk *testClock) *Daemon {
	t.Helper()
	r, err := ipvs.NewReconciler(k, ipvs.Options{StateDir: dir, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	d := &Daemon{log: log, kick: make(chan struct{}, 1), sub: subsystems{acl: f, ipvs: r, wake: time.NewTimer(time.Hour)}}
	d.sub.wake.Stop()
	d.sub.vrrp = newVRRPRunner(context.Background(), log, events.NewBus(16))
	return d
}

// reconcileWith runs director lb1's reconcile with c as the desired state.
func reconcileWith(t *testing.T, d *Daemon, c *config.Config) {
	t.Helper()
	node, _ := c.NodeByName("lb1")
	if errs := d.reconcileDirector(context.Background(), c, node, effectiveServices(c.Services(), nil, nil)); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
}

// ipvsWeights returns the weights of the real servers of the service
// named key in k, or nil if k does not have it.
func ipvsWeights(k *ipvstest.Fake, key string) []int {
	for _, s := range k.Table() {
		if ipvsKey(s.Key()) == key {
			w := []int{}
			for _, d := range s.Dests {
				w = append(w, d.Weight)
			}
			return w
		}
	}
	return nil
}

// fenceOn returns the fence f enforces on the service named key.
func fenceOn(f *fakeFencer, key string) (acl.Tenant, bool) {
	for _, t := range f.Tenants() {
		if aclServiceKey(t) == key {
			return t, true
		}
	}
	return acl.Tenant{}, false
}

// A tenant removed while lbd was stopped keeps its fence after the
// restart for as long as IPVS drains its service.
func TestFenceLingersForTenantRemovedWhileStopped(t *testing.T) {
	k, dir, clk := ipvstest.NewFake(), t.TempDir(), newTestClock()
	f := &fakeFencer{}
	reconcileWith(t, testDirector(t, f, k, dir, clk), mustParse(t, fileYAML))

	// lbd stops; b leaves the file; lbd starts again: a new ACL manager,
	// which records nothing until it reads back the kernel, and a new
	// IPVS reconciler over the same table and state file.
	next := mustParse(t, strings.Replace(fileYAML, "  - {name: b, service: {vip: 10.0.0.1, port: 11212}, allow: []}\n", "", 1))
	f = &fakeFencer{left: f.have}
	d := testDirector(t, f, k, dir, clk)
	reconcileWith(t, d, next)
	const bSvc = "tcp/10.0.0.1:11212"
	if w := ipvsWeights(k, bSvc); !slices.Equal(w, []int{0}) {
		t.Fatalf("b's service in IPVS has weights %v, want it draining at 0", w)
	}
	if _, ok := fenceOn(f, bSvc); !ok {
		t.Fatal("b's service drains unfenced after the restart")
	}

	// The drain ends: IPVS deletes the service and asks for a reconcile,
	// which lets the fence go.
	clk.t = clk.t.Add(ipvs.DefaultDrainPeriod)
	reconcileWith(t, d, next)
	if w := ipvsWeights(k, bSvc); w != nil {
		t.Fatalf("b's service still in IPVS after its drain: %v", w)
	}
	select {
	case <-d.kick:
	default:
		t.Error("no reconcile asked for to drop the fence of a service IPVS let go")
	}
	reconcileWith(t, d, next)
	if _, ok := fenceOn(f, bSvc); ok {
		t.Error("b's fence kept after its service left IPVS")
	}
	if _, ok := f.Tenant("a"); !ok {
		t.Error("tenant a lost its fence")
	}
}

// A tenant that moves keeps a fence on its old service while IPVS drains
// it, under a name of its own; its new service is announced behind its own
// fence.
func TestFenceLingersForMovedTenant(t *testing.T) {
	k, clk := ipvstest.NewFake(), newTestClock()
	f := &fakeFencer{}
	d := testDirector(t, f, k, t.TempDir(), clk)
	reconcileWith(t, d, mustParse(t, fileYAML))

	const oldSvc, newSvc = "tcp/10.0.0.1:11211", "tcp/10.0.0.1:12000"
	moveA := func(allow string) *config.Config {
		return mustParse(t, strings.Replace(fileYAML, "port: 11211}, allow: [192.0.2.0/24]", "port: 12000}, allow: ["+allow+"]", 1))
	}
	reconcileWith(t, d, moveA("192.0.2.0/25"))
	if w := ipvsWeights(k, oldSvc); !slices.Equal(w, []int{0}) {
		t.Fatalf("a's old service in IPVS has weights %v, want it draining at 0", w)
	}
	if w := ipvsWeights(k, newSvc); !slices.Equal(w, []int{1}) {
		t.Fatalf("a's new service in IPVS has weights %v, want it announced", w)
	}
	if a, _ := f.Tenant("a"); aclServiceKey(a) != newSvc {
		t.Errorf("tenant a fenced on %s, want its new service %s", aclServiceKey(a), newSvc)
	}
	old, ok := fenceOn(f, oldSvc)
	if !ok {
		t.Fatal("a's old service drains unfenced")
	}
	if config.ValidName(old.Name) || len(old.Name) > acl.MaxNameLen || !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(old.Name) {
		t.Errorf("lingering fence named %q: want a valid fence name no tenant can have", old.Name)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/25")}; !slices.Equal(old.Allow, want) {
		t.Errorf("lingering fence allows %v, want a's current list %v", old.Allow, want)
	}

	// A change of a's list reaches the lingering fence too, which keeps
	// its name.
	reconcileWith(t, d, moveA("192.0.2.0/26"))
	if again, _ := fenceOn(f, oldSvc); again.Name != old.Name || len(again.Allow) != 1 || again.Allow[0].String() != "192.0.2.0/26" {
		t.Errorf("lingering fence after a list change: %+v, want %s allowing 192.0.2.0/26", again, old.Name)
	}

	// The drain ends: the old service leaves IPVS, then its fence goes.
	clk.t = clk.t.Add(ipvs.DefaultDrainPeriod)
	reconcileWith(t, d, moveA("192.0.2.0/26"))
	reconcileWith(t, d, moveA("192.0.2.0/26"))
	if _, ok := fenceOn(f, oldSvc); ok {
		t.Error("a's old fence kept after its service left IPVS")
	}
	if a, _ := f.Tenant("a"); aclServiceKey(a) != newSvc {
		t.Errorf("tenant a fenced on %s, want %s", aclServiceKey(a), newSvc)
	}
}

// fakeDR stands for the real-server side, which needs root.
type fakeDR struct{}

func (fakeDR) Apply(context.Context, []netip.Addr, []string) error { return nil }
func (fakeDR) Close() error                                        { return nil }

// freePorts returns n TCP ports free on every address.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	for range n {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out
}

// With storage_acl, a store is served on a port only once the storage
// ACL fences that port: a new tenant waits, a moving one stays where it
// is, until the storage ACL works again.
func TestKVSServedOnlyBehindStorageFence(t *testing.T) {
	ports := freePorts(t, 3)
	file := func(tenants ...string) *config.Config {
		return mustParse(t, `
nodes:
  - {name: lb1, role: director, address: 10.0.0.2}
  - {name: st1, role: storage, address: 10.0.1.1}
defaults: {storage_acl: true}
tenants:
`+strings.Join(tenants, ""))
	}
	tenant := func(name string, port int) string {
		return fmt.Sprintf("  - {name: %s, service: {vip: 10.0.0.1, port: %d}, allow: [192.0.2.0/24]}\n", name, port)
	}
	// newNode is a storage node (lbd started) fencing with f.
	newNode := func(f *fakeFencer) *Daemon {
		log := slog.New(slog.DiscardHandler)
		d := &Daemon{log: log, sub: subsystems{storACL: f, rs: fakeDR{},
			kvs: &kvsRunner{tier: kvs.New(log, kvs.Options{NoEventLoop: true}), dir: t.TempDir()}}}
		t.Cleanup(d.sub.kvs.close)
		return d
	}
	f := &fakeFencer{}
	d := newNode(f)
	reconcile := func(c *config.Config) []error {
		node, _ := c.NodeByName("st1")
		return d.reconcileStorage(context.Background(), c, node)
	}
	servedOn := func(name string, want int) {
		t.Helper()
		if got, ok := d.sub.kvs.port(name); !ok || got != want {
			t.Errorf("tenant %s served on port %d (running %v), want %d", name, got, ok, want)
		}
	}

	if errs := reconcile(file(tenant("a", ports[0]))); len(errs) > 0 {
		t.Fatal(errs)
	}
	servedOn("a", ports[0])

	// The storage ACL fails: the new tenant c is not served; a, fenced,
	// keeps running.
	f.fail = true
	if errs := reconcile(file(tenant("a", ports[0]), tenant("c", ports[1]))); len(errs) == 0 {
		t.Fatal("failure not reported")
	}
	if p, ok := d.sub.kvs.port("c"); ok {
		t.Errorf("tenant c served on port %d although its fence failed", p)
	}
	servedOn("a", ports[0])

	// a moves while the storage ACL still fails: it stays on its fenced
	// port.
	if errs := reconcile(file(tenant("a", ports[2]), tenant("c", ports[1]))); len(errs) == 0 {
		t.Fatal("failure not reported")
	}
	servedOn("a", ports[0])

	// The storage ACL works again: the next reconcile serves both where
	// they belong.
	f.fail = false
	if errs := reconcile(file(tenant("a", ports[2]), tenant("c", ports[1]))); len(errs) > 0 {
		t.Fatal(errs)
	}
	servedOn("a", ports[2])
	servedOn("c", ports[1])

	// lbd restarts and the storage ACL fails: the fences the last run
	// left are read back, so both are served again at once.
	d.sub.kvs.close()
	f = &fakeFencer{left: f.have, fail: true}
	d = newNode(f)
	if errs := reconcile(file(tenant("a", ports[2]), tenant("c", ports[1]))); len(errs) == 0 {
		t.Fatal("failure not reported")
	}
	servedOn("a", ports[2])
	servedOn("c", ports[1])
}
