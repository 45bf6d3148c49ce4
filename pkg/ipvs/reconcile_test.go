package ipvs_test

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/ipvs"
	"github.com/lbd-project/lbd/pkg/ipvs/ipvstest"
)

// clock is a settable clock for drain and resync deadlines.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)} }

func svc(vip string, port uint16, dests ...ipvs.Dest) ipvs.Service {
	return ipvs.Service{Addr: netip.MustParseAddr(vip), Port: port, Protocol: ipvs.TCP, Scheduler: "rr", Dests: dests}
}

func dest(addr string, weight int) ipvs.Dest {
	return ipvs.Dest{Addr: netip.MustParseAddr(addr), Weight: weight}
}

func seed() []ipvs.Service {
	return []ipvs.Service{
		svc("203.0.113.10", 13101, dest("192.168.12.233", 1), dest("192.168.12.234", 1)),
		svc("203.0.113.10", 13102, dest("192.168.12.233", 1), dest("192.168.12.234", 1)),
	}
}

type env struct {
	t     *testing.T
	k     *ipvstest.Fake
	clock *clock
	dir   string
	r     *ipvs.Reconciler
	opts  ipvs.Options
}

func newEnv(t *testing.T, opts ipvs.Options) *env {
	e := &env{t: t, k: ipvstest.NewFake(), clock: newClock(), dir: t.TempDir(), opts: opts}
	e.restart()
	return e
}

// restart replaces the Reconciler, as a restart of lbd would.
func (e *env) restart() {
	e.t.Helper()
	o := e.opts
	o.StateDir, o.Now = e.dir, e.clock.now
	r, err := ipvs.NewReconciler(e.k, o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.r = r
}

func (e *env) apply(desired []ipvs.Service) ipvs.Result {
	e.t.Helper()
	res, err := e.r.Apply(context.Background(), desired)
	if err != nil {
		e.t.Fatalf("Apply: %v", err)
	}
	return res
}

func (e *env) wantTable(want []ipvs.Service) {
	e.t.Helper()
	got := e.k.Table()
	norm := func(ss []ipvs.Service) map[string]map[string]int {
		m := map[string]map[string]int{}
		for _, s := range ss {
			ds := map[string]int{}
			for _, d := range s.Dests {
				p := d.Port
				if p == 0 {
					p = s.Port
				}
				ds[netip.AddrPortFrom(d.Addr, p).String()+"/"+d.Forward.String()] = d.Weight
			}
			m[s.Key().String()+"/"+s.Scheduler] = ds
		}
		return m
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		e.t.Fatalf("kernel table:\n got %v\nwant %v", g, w)
	}
}

func TestConvergeThenNothing(t *testing.T) {
	e := newEnv(t, ipvs.Options{})
	res := e.apply(seed())
	if res.Writes != 6 || res.ServicesAdded != 2 || res.DestsAdded != 4 || !res.Full {
		t.Fatalf("first apply: %+v", res)
	}
	e.wantTable(seed())
	res = e.apply(seed())
	if res.Writes != 0 || res.Reads != 0 {
		t.Fatalf("unchanged apply: %d writes, %d reads, want 0 and 0", res.Writes, res.Reads)
	}
}

func TestOneChangeOneWrite(t *testing.T) {
	tests := []struct {
		name   string
		change func([]ipvs.Service)
		op     ipvstest.Op
	}{
		{"weight", func(s []ipvs.Service) { s[1].Dests[0].Weight = 5 }, ipvstest.UpdateDest},
		{"forward", func(s []ipvs.Service) { s[1].Dests[0].Forward = ipvs.TUN }, ipvstest.UpdateDest},
		{"scheduler", func(s []ipvs.Service) { s[0].Scheduler = "wlc" }, ipvstest.UpdateService},
		{"persistence", func(s []ipvs.Service) { s[0].Persistence = 300 * time.Second }, ipvstest.UpdateService},
		{"new real server", func(s []ipvs.Service) {
			s[0].Dests = append(s[0].Dests, dest("192.168.12.235", 1))
		}, ipvstest.AddDest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, ipvs.Options{})
			e.apply(seed())
			before := e.k.Calls(tt.op)
			d := seed()
			tt.change(d)
			res := e.apply(d)
			if res.Writes != 1 || e.k.Calls(tt.op) != before+1 {
				t.Fatalf("writes = %d (%s calls %d -> %d), want exactly one %s", res.Writes, tt.op, before, e.k.Calls(tt.op), tt.op)
			}
			e.wantTable(d)
			if res := e.apply(d); res.Writes != 0 {
				t.Fatalf("re-apply: %d writes", res.Writes)
			}
		})
	}
}

func TestDrainThenDelete(t *testing.T) {
	e := newEnv(t, ipvs.Options{DrainPeriod: time.Minute})
	e.apply(seed())
	d := seed()
	d[0].Dests = d[0].Dests[:1]
	res := e.apply(d)
	if res.Writes != 1 || e.k.Calls(ipvstest.UpdateDest) != 1 || res.Draining != 1 {
		t.Fatalf("remove: %+v", res)
	}
	if want := e.clock.t.Add(time.Minute); !res.NextWake.Equal(want) {
		t.Fatalf("NextWake = %v, want %v", res.NextWake, want)
	}
	drained := seed()
	drained[0].Dests[1].Weight = 0
	e.wantTable(drained)

	e.clock.advance(30 * time.Second)
	if res := e.apply(d); res.Writes != 0 {
		t.Fatalf("mid-drain apply wrote %d", res.Writes)
	}
	e.clock.advance(30 * time.Second)
	res = e.apply(d)
	if res.Writes != 1 || res.DestsDeleted != 1 || res.Draining != 0 {
		t.Fatalf("after drain: %+v", res)
	}
	e.wantTable(d)
}

func TestDrainCancelled(t *testing.T) {
	e := newEnv(t, ipvs.Options{DrainPeriod: time.Minute})
	e.apply(seed())
	d := seed()
	d[0].Dests = d[0].Dests[:1]
	e.apply(d)
	res := e.apply(seed()) // it comes back
	if res.Writes != 1 || res.Draining != 0 {
		t.Fatalf("restore: %+v", res)
	}
	e.clock.advance(time.Hour)
	if res := e.apply(seed()); res.Writes != 0 {
		t.Fatalf("restored server touched after the old deadline: %+v", res)
	}
	e.wantTable(seed())
}

func TestServiceDrain(t *testing.T) {
	e := newEnv(t, ipvs.Options{DrainPeriod: time.Minute})
	e.apply(seed())
	res := e.apply(seed()[:1])
	if res.Writes != 2 || res.ServicesDeleted != 0 {
		t.Fatalf("remove service: %+v (want its two weights set to 0)", res)
	}
	e.clock.advance(time.Minute)
	res = e.apply(seed()[:1])
	if res.Writes != 1 || res.ServicesDeleted != 1 {
		t.Fatalf("after drain: %+v", res)
	}
	e.wantTable(seed()[:1])
}

func TestNoDrain(t *testing.T) {
	e := newEnv(t, ipvs.Options{DrainPeriod: -1})
	e.apply(seed())
	d := seed()[:1]
	d[0].Dests = d[0].Dests[:1]
	res := e.apply(d)
	if res.Writes != 2 || res.DestsDeleted != 1 || res.ServicesDeleted != 1 {
		t.Fatalf("%+v", res)
	}
	e.wantTable(d)
}

func TestHandMadeServiceSurvives(t *testing.T) {
	e := newEnv(t, ipvs.Options{DrainPeriod: -1})
	hand := svc("198.51.100.1", 80, dest("10.0.0.1", 3))
	if err := e.k.AddService(hand); err != nil {
		t.Fatal(err)
	}
	if err := e.k.AddDest(hand, hand.Dests[0]); err != nil {
		t.Fatal(err)
	}
	e.apply(seed())
	e.apply(nil)
	e.restart()
	e.apply(nil)
	e.wantTable([]ipvs.Service{hand})

	// Desiring the same key is a conflict, not a takeover.
	taken := svc("198.51.100.1", 80, dest("10.0.0.2", 1))
	res, err := e.r.Apply(context.Background(), []ipvs.Service{taken})
	if err == nil || len(res.Conflicts) != 1 || res.Writes != 0 {
		t.Fatalf("conflict: res %+v err %v", res, err)
	}
	e.wantTable([]ipvs.Service{hand})
}

func TestAdoptExisting(t *testing.T) {
	e := newEnv(t, ipvs.Options{AdoptExisting: true, DrainPeriod: -1})
	hand := svc("198.51.100.1", 80, dest("10.0.0.1", 3))
	e.k.AddService(hand)
	e.k.AddDest(hand, hand.Dests[0])
	want := svc("198.51.100.1", 80, dest("10.0.0.1", 1))
	res := e.apply([]ipvs.Service{want})
	if res.Writes != 1 || len(res.Conflicts) != 0 {
		t.Fatalf("%+v", res)
	}
	e.wantTable([]ipvs.Service{want})
}

func TestAdoptAfterRestart(t *testing.T) {
	e := newEnv(t, ipvs.Options{DrainPeriod: -1})
	e.apply(seed())
	e.restart()
	res := e.apply(seed())
	if res.Writes != 0 || !res.Full {
		t.Fatalf("restart: %+v, want a full read and no writes", res)
	}
	// What it adopted is its own: it may delete it.
	res = e.apply(seed()[:1])
	if res.ServicesDeleted != 1 {
		t.Fatalf("adopted service not deleted: %+v", res)
	}
	e.wantTable(seed()[:1])
}

// A restarted Reconciler reports the services its state file records as
// owned before its first Apply reads the kernel (the daemon keeps the
// fence of a service that is still draining on that word).
func TestOwnedBeforeFirstApply(t *testing.T) {
	e := newEnv(t, ipvs.Options{})
	e.apply(seed())
	e.restart()
	var want []ipvs.Key
	for _, s := range seed() {
		want = append(want, s.Key())
	}
	if got := e.r.Owned(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Owned before the first Apply = %v, want %v", got, want)
	}
	e.apply(seed()[:1]) // the second one drains, still owned
	if got := e.r.Owned(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Owned while draining = %v, want %v", got, want)
	}
}

func TestRestartKeepsDrain(t *testing.T) {
	e := newEnv(t, ipvs.Options{DrainPeriod: time.Minute})
	e.apply(seed())
	d := seed()
	d[0].Dests = d[0].Dests[:1]
	e.apply(d)
	e.restart()
	e.clock.advance(40 * time.Second)
	if res := e.apply(d); res.Writes != 0 || res.Draining != 1 {
		t.Fatalf("after restart mid-drain: %+v", res)
	}
	e.clock.advance(20 * time.Second)
	if res := e.apply(d); res.DestsDeleted != 1 {
		t.Fatalf("drain deadline lost across restart: %+v", res)
	}
}

func TestFailedWriteRetried(t *testing.T) {
	e := newEnv(t, ipvs.Options{})
	e.apply(seed())
	d := seed()
	d[0].Dests[0].Weight = 7
	e.k.FailNext(ipvstest.UpdateDest, syscall.EIO)
	res, err := e.r.Apply(context.Background(), d)
	if err == nil || !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "update real server 192.168.12.233:13101") {
		t.Fatalf("err = %v", err)
	}
	if res.Failed != 1 || res.NextWake.IsZero() {
		t.Fatalf("%+v", res)
	}
	e.wantTable(seed()) // the previous state still serves
	e.k.FailNext(ipvstest.UpdateDest, nil)
	res = e.apply(d)
	if res.Writes != 1 {
		t.Fatalf("retry: %+v", res)
	}
	e.wantTable(d)
}

func TestFailedDumpRetried(t *testing.T) {
	e := newEnv(t, ipvs.Options{})
	e.k.FailNext(ipvstest.Services, syscall.EIO)
	if _, err := e.r.Apply(context.Background(), seed()); err == nil {
		t.Fatal("no error")
	}
	if e.k.Writes() != 0 {
		t.Fatal("wrote without having read the table")
	}
	e.k.FailNext(ipvstest.Services, nil)
	e.apply(seed())
	e.wantTable(seed())
}

func TestResyncFindsDrift(t *testing.T) {
	e := newEnv(t, ipvs.Options{ResyncInterval: time.Minute})
	e.apply(seed())
	s := seed()[0]
	e.k.UpdateDest(s, dest("192.168.12.233", 9)) // someone else's change
	if res := e.apply(seed()); res.Writes != 0 {
		t.Fatalf("trusted record should not see drift yet: %+v", res)
	}
	e.clock.advance(time.Minute)
	if res := e.apply(seed()); res.Writes != 1 || !res.Full {
		t.Fatalf("resync: %+v", res)
	}
	e.wantTable(seed())
}

func TestInvalidRefused(t *testing.T) {
	e := newEnv(t, ipvs.Options{})
	e.apply(seed())
	bad := seed()
	bad[0].Dests[0].Weight = 70000
	bad = append(bad, seed()[1])
	_, err := e.r.Apply(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), "weight 70000") || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("err = %v", err)
	}
	if e.k.Writes() != 6 {
		t.Fatalf("refused state was partly applied: %d writes", e.k.Writes())
	}
}

func TestFamiliesProtocolsMarks(t *testing.T) {
	e := newEnv(t, ipvs.Options{})
	d := []ipvs.Service{
		{Addr: netip.MustParseAddr("2001:db8::10"), Port: 53, Protocol: ipvs.UDP, Scheduler: "sh",
			Dests: []ipvs.Dest{{Addr: netip.MustParseAddr("2001:db8::1"), Weight: 1, Forward: ipvs.NAT, Port: 5353}}},
		{Addr: netip.MustParseAddr("0.0.0.0"), FWMark: 7, Scheduler: "mh", Persistence: 90 * time.Second,
			Dests: []ipvs.Dest{{Addr: netip.MustParseAddr("10.1.0.1"), Weight: 2}}},
	}
	e.apply(d)
	e.wantTable(d)
	e.restart()
	if res := e.apply(d); res.Writes != 0 {
		t.Fatalf("re-read differs: %+v", res)
	}
}

func TestServiceDeletedBehindOurBack(t *testing.T) {
	e := newEnv(t, ipvs.Options{})
	e.apply(seed())
	s := seed()[0]
	if err := e.k.DelService(s); err != nil { // an operator's ipvsadm -D
		t.Fatal(err)
	}
	d := seed()
	d[0].Dests[0].Weight = 3
	if _, err := e.r.Apply(context.Background(), d); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("err = %v, want ESRCH", err)
	}
	res := e.apply(d) // the retry reads the service back, finds it gone, recreates it
	if res.ServicesAdded != 1 || res.DestsAdded != 2 {
		t.Fatalf("retry: %+v", res)
	}
	e.wantTable(d)
}
