package vrrp

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

type fakeSender struct{ prios []uint8 }

func (f *fakeSender) send(a *Advertisement) error { f.prios = append(f.prios, a.Priority); return nil }

type fakeGARP struct{ sent int }

func (f *fakeGARP) send(n int) error { f.sent += n; return nil }

// fakeVIPs is the link's VIPs in memory: all on or all off.
type fakeVIPs struct {
	vips []netip.Prefix
	on   bool
}

func (f *fakeVIPs) add() error { f.on = true; return nil }
func (f *fakeVIPs) remove() ([]netip.Prefix, error) {
	var was []netip.Prefix
	if f.on {
		was = f.vips
	}
	f.on = false
	return was, nil
}

// testInstance is an Instance wired to fakes instead of the kernel; the
// test plays the Run loop's part.
func testInstance(t *testing.T, name string, vrid uint8) (*Instance, *fakeVIPs) {
	t.Helper()
	return testInstanceLog(t, name, vrid, slog.New(slog.DiscardHandler))
}

// testInstanceLog is testInstance logging to log.
func testInstanceLog(t *testing.T, name string, vrid uint8, log *slog.Logger) (*Instance, *fakeVIPs) {
	t.Helper()
	i, err := New(Config{Name: name, Interface: "eth0", VRID: vrid, Priority: 100, AdvertInterval: 100 * time.Millisecond,
		VIPs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, vrid}), 32)}},
		Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	p := i.cfg.params()
	p.LocalAddr = local
	m, err := NewMachine(p)
	if err != nil {
		t.Fatal(err)
	}
	v := &fakeVIPs{vips: i.cfg.VIPs}
	i.rt = newRuntime(m, &fakeSender{}, &fakeGARP{}, v, local, nil)
	return i, v
}

// pump delivers the messages the instances sent each other until none is left.
func pump(now time.Time, is ...*Instance) {
	for again := true; again; {
		again = false
		for _, i := range is {
			for _, f := range i.ctl.take() {
				again = true
				i.exec(f(now))
				i.publishDownAt()
			}
		}
	}
}

func states(is ...*Instance) string {
	s := ""
	for _, i := range is {
		s += i.State().String() + " "
	}
	return s
}

func TestSyncGroup(t *testing.T) {
	a, va := testInstance(t, "a", 51)
	b, vb := testInstance(t, "b", 52)
	if _, err := NewSyncGroup("g", []*Instance{a, b}, Notify{}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSyncGroup("g2", []*Instance{a}, Notify{}, nil); err == nil {
		t.Fatal("an instance joined two groups")
	}
	now := time.Unix(1000, 0)
	for _, i := range []*Instance{a, b} {
		i.exec(i.m().Start(now))
		i.publishDownAt()
	}
	check := func(what, want string, wantVIPs bool) {
		t.Helper()
		if got := states(a, b); got != want || va.on != wantVIPs || vb.on != wantVIPs {
			t.Fatalf("%s: states %q VIPs %v %v, want %q %v", what, got, va.on, vb.on, want, wantVIPs)
		}
	}
	check("start", "BACKUP BACKUP ", false)

	// b still hears a Master: a's timeout alone may not pull the group up.
	b.exec(b.m().Advert(now, peerHigh, adv(200)))
	b.publishDownAt()
	late := now.Add(a.m().MasterDownInterval())
	if a.group.canGoMaster(a, late) {
		t.Fatal("a may go Master while b hears a Master")
	}
	// Once b times out too, a goes and b follows.
	later := now.Add(10 * time.Second)
	if !a.group.canGoMaster(a, later) {
		t.Fatal("a may not go Master after every member timed out")
	}
	a.exec(a.m().Tick(later))
	pump(later, a, b)
	check("a timed out", "MASTER MASTER ", true)

	// b loses to a better router: the group steps down with it.
	b.exec(b.m().Advert(later, peerHigh, adv(200)))
	pump(later, a, b)
	check("b preempted", "BACKUP BACKUP ", false)

	// A fault of a's own holds b in FAULT; clearing it frees both.
	a.SetFault("link eth1", true)
	pump(later, a, b)
	check("a faulty", "FAULT FAULT ", false)
	a.SetFault("link eth1", false)
	pump(later, a, b)
	check("a healthy", "BACKUP BACKUP ", false)
	if len(a.faults)+len(b.faults) != 0 {
		t.Fatalf("faults left: %v %v", a.faults, b.faults)
	}
	if s := a.group.State(); s != StateBackup {
		t.Fatalf("group state %s", s)
	}
}

func TestInstancePriorityOffset(t *testing.T) {
	i, v := testInstance(t, "a", 51)
	now := time.Unix(1000, 0)
	i.exec(i.m().Start(now))
	i.exec(i.m().Tick(now.Add(time.Hour)))
	if i.State() != StateMaster || !v.on {
		t.Fatalf("state %s VIPs %v", i.State(), v.on)
	}
	for _, tt := range []struct {
		offset int
		want   uint8
	}{{-50, 50}, {-200, 1}, {+200, 254}, {0, 100}} {
		i.SetPriorityOffset(tt.offset)
		pump(now, i)
		if got := i.Status().Priority; got != tt.want {
			t.Fatalf("offset %d: priority %d, want %d", tt.offset, got, tt.want)
		}
	}
	s := i.rt.conn.(*fakeSender)
	if last := s.prios[len(s.prios)-1]; last != 100 {
		t.Fatalf("last advert priority %d", last)
	}
	i.exec(i.m().Stop(now))
	if v.on || s.prios[len(s.prios)-1] != 0 {
		t.Fatalf("stop: VIPs %v, last advert %d", v.on, s.prios[len(s.prios)-1])
	}
}

func TestAnswerLowerPriorityMaster(t *testing.T) {
	i, _ := testInstance(t, "a", 51)
	now := time.Unix(1000, 0)
	i.exec(i.m().Start(now))
	i.exec(i.m().Tick(now.Add(time.Hour)))
	g := i.rt.garp.(*fakeGARP)
	s := i.rt.conn.(*fakeSender)
	tests := []struct {
		src        netip.Addr
		wantAnswer bool
	}{
		{peerLow, true},   // first advert of an episode
		{peerLow, false},  // the same Master again at once: throttled
		{peerHigh, true},  // another router: a new episode
		{peerHigh, false}, // throttled
	}
	for n, tt := range tests {
		garps, sent := g.sent, len(s.prios)
		i.rt.lowerSrc = tt.src
		i.exec(i.m().Advert(now, tt.src, adv(50)))
		answered := g.sent > garps && len(s.prios) > sent
		if answered != tt.wantAnswer {
			t.Fatalf("advert %d from %s: answered %v, want %v", n, tt.src, answered, tt.wantAnswer)
		}
	}
}
