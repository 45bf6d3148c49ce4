package vrrp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fakeClock is the time the tests drive the Machine with.
type fakeClock struct{ now time.Time }

func (c *fakeClock) advance(d time.Duration) time.Time { c.now = c.now.Add(d); return c.now }

var (
	peerLow  = netip.MustParseAddr("192.168.12.1")
	peerHigh = netip.MustParseAddr("192.168.12.250")
	local    = netip.MustParseAddr("192.168.12.100")
)

func newTestMachine(t *testing.T, p Params) (*Machine, *fakeClock) {
	t.Helper()
	if p.Interval == 0 {
		p.Interval = time.Second
	}
	if !p.LocalAddr.IsValid() {
		p.LocalAddr = local
	}
	m, err := NewMachine(p)
	if err != nil {
		t.Fatal(err)
	}
	return m, &fakeClock{now: time.Unix(1000, 0)}
}

func adv(prio uint8) *Advertisement {
	return &Advertisement{VRID: 1, Priority: prio, Interval: time.Second}
}

func fmtActions(as []Action) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func expect(t *testing.T, what string, got []Action, want string) {
	t.Helper()
	if g := fmtActions(got); g != want {
		t.Fatalf("%s: actions %q, want %q", what, g, want)
	}
}

// runUntil ticks the machine at its deadlines until it returns actions or
// limit passes, and returns the actions and how long it took.
func runUntil(m *Machine, c *fakeClock, limit time.Duration) ([]Action, time.Duration) {
	start := c.now
	for c.now.Sub(start) <= limit {
		d := m.Deadline()
		if d.IsZero() || d.Sub(start) > limit {
			break
		}
		c.now = d
		if as := m.Tick(c.now); len(as) > 0 {
			return as, c.now.Sub(start)
		}
	}
	return nil, c.now.Sub(start)
}

func TestTimers(t *testing.T) {
	tests := []struct {
		prio     uint8
		interval time.Duration
		skew     time.Duration
		down     time.Duration
	}{
		{100, time.Second, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{150, 100 * time.Millisecond, 41406250, 341406250},
		{254, 100 * time.Millisecond, 781250, 300781250},
		{1, 10 * time.Millisecond, 9960937, 39960937},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("prio%d/%s", tt.prio, tt.interval), func(t *testing.T) {
			m, c := newTestMachine(t, Params{Priority: tt.prio, Interval: tt.interval})
			if m.SkewTime() != tt.skew || m.MasterDownInterval() != tt.down {
				t.Fatalf("skew %s down %s, want %s %s", m.SkewTime(), m.MasterDownInterval(), tt.skew, tt.down)
			}
			expect(t, "start", m.Start(c.now), "INIT->BACKUP")
			as, took := runUntil(m, c, time.Minute)
			expect(t, "master down", as, "send(prio="+fmt.Sprint(tt.prio)+"),BACKUP->MASTER")
			if took != tt.down {
				t.Fatalf("took %s to become master, want %s", took, tt.down)
			}
			as, took = runUntil(m, c, time.Minute)
			expect(t, "advert timer", as, "send(prio="+fmt.Sprint(tt.prio)+")")
			if took != tt.interval {
				t.Fatalf("advert after %s, want %s", took, tt.interval)
			}
		})
	}
}

func TestOwnerStartsMaster(t *testing.T) {
	m, c := newTestMachine(t, Params{Priority: 255})
	expect(t, "start", m.Start(c.now), "send(prio=255),INIT->MASTER")
	expect(t, "lower advert", m.Advert(c.advance(time.Millisecond), peerHigh, adv(254)), "send(prio=255),announce")
	expect(t, "stop", m.Stop(c.now), "send(prio=0),MASTER->INIT")
}

func TestBackupAdverts(t *testing.T) {
	tests := []struct {
		name         string
		p            Params
		advPrio      uint8
		after        time.Duration // time since start when the advert arrives
		wantMasterIn time.Duration // from the advert; 0 = stays backup
	}{
		{"higher master holds backup", Params{Priority: 100, Preempt: true}, 200, 0, 0},
		{"equal master holds backup", Params{Priority: 100, Preempt: true}, 100, 0, 0},
		{"lower master preempted", Params{Priority: 100, Preempt: true}, 50, 0, 3609375 * time.Microsecond},
		{"nopreempt keeps lower master", Params{Priority: 100}, 50, 0, 0},
		{"preempt_delay holds off", Params{Priority: 100, Preempt: true, PreemptDelay: 10 * time.Second}, 50, time.Second, 0},
		{"preempt_delay over", Params{Priority: 100, Preempt: true, PreemptDelay: 10 * time.Second}, 50, 11 * time.Second, 3609375 * time.Microsecond},
		{"priority 0 skew", Params{Priority: 100, Preempt: true}, 0, 0, 609375 * time.Microsecond},
		{"priority 0 sole backup", Params{Priority: 100, Preempt: true, SoleBackup: true}, 0, 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, c := newTestMachine(t, tt.p)
			m.Start(c.now)
			// A master that keeps advertising every second, up to the event.
			for c.now.Add(time.Second).Sub(time.Unix(1000, 0)) <= tt.after {
				c.advance(time.Second)
				expect(t, "priming advert", m.Advert(c.now, peerHigh, adv(200)), "")
			}
			c.now = time.Unix(1000, 0).Add(tt.after)
			as := m.Advert(c.now, peerHigh, adv(tt.advPrio))
			if tt.wantMasterIn < 0 {
				expect(t, "advert", as, "send(prio=100),BACKUP->MASTER")
				return
			}
			expect(t, "advert", as, "")
			if tt.wantMasterIn == 0 {
				// It keeps advertising; the backup never takes over.
				for i := 0; i < 5; i++ {
					c.advance(time.Second)
					if as := m.Tick(c.now); len(as) > 0 {
						t.Fatalf("took over: %s", fmtActions(as))
					}
					if as := m.Advert(c.now, peerHigh, adv(tt.advPrio)); len(as) > 0 {
						t.Fatalf("advert: %s", fmtActions(as))
					}
				}
				if m.State() != StateBackup || m.Master() != peerHigh {
					t.Fatalf("state %s master %s", m.State(), m.Master())
				}
				return
			}
			as, took := runUntil(m, c, time.Minute)
			expect(t, "takeover", as, "send(prio=100),BACKUP->MASTER")
			if took != tt.wantMasterIn {
				t.Fatalf("took %s, want %s", took, tt.wantMasterIn)
			}
		})
	}
}

func TestMasterAdverts(t *testing.T) {
	tests := []struct {
		name    string
		src     netip.Addr
		advPrio uint8
		want    string
	}{
		{"higher priority wins", peerLow, 101, "BACKUP"},
		{"lower priority ignored", peerHigh, 99, "MASTER"},
		{"equal priority higher address wins", peerHigh, 100, "BACKUP"},
		{"equal priority lower address loses", peerLow, 100, "MASTER"},
		{"priority 0 answered", peerLow, 0, "MASTER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, c := newTestMachine(t, Params{Priority: 100, Preempt: true})
			m.Start(c.now)
			runUntil(m, c, time.Minute)
			as := m.Advert(c.advance(10*time.Millisecond), tt.src, adv(tt.advPrio))
			if m.State().String() != tt.want {
				t.Fatalf("state %s, want %s (actions %s)", m.State(), tt.want, fmtActions(as))
			}
			switch {
			case tt.want == "BACKUP":
				expect(t, "advert", as, "MASTER->BACKUP,send(prio=100)")
			case tt.advPrio == 0:
				expect(t, "advert", as, "send(prio=100)")
			default:
				expect(t, "advert", as, "send(prio=100),announce")
			}
		})
	}
}

func TestFaultAndPriority(t *testing.T) {
	m, c := newTestMachine(t, Params{Priority: 100, Preempt: true})
	m.Start(c.now)
	runUntil(m, c, time.Minute)
	expect(t, "lower priority", m.SetPriority(c.now, 90), "send(prio=90)")
	expect(t, "fault", m.SetFault(c.now, true), "send(prio=0),MASTER->FAULT")
	if !m.Deadline().IsZero() {
		t.Fatal("timer runs in FAULT")
	}
	expect(t, "advert in fault", m.Advert(c.now, peerLow, adv(1)), "")
	expect(t, "recover", m.SetFault(c.advance(time.Second), false), "FAULT->BACKUP")
	expect(t, "become owner", m.SetPriority(c.now, 255), "send(prio=255),BACKUP->MASTER")
	expect(t, "stop", m.Stop(c.now), "send(prio=0),MASTER->INIT")
	expect(t, "stop twice", m.Stop(c.now), "")
}

func TestForce(t *testing.T) {
	m, c := newTestMachine(t, Params{Priority: 100, Preempt: true})
	m.Start(c.now)
	expect(t, "force backup as backup", m.ForceBackup(c.now), "")
	expect(t, "force master", m.ForceMaster(c.now), "send(prio=100),BACKUP->MASTER")
	expect(t, "force backup", m.ForceBackup(c.now), "MASTER->BACKUP")
	expect(t, "force fault", m.ForceFault(c.now), "BACKUP->FAULT")
}

func TestParamsValidate(t *testing.T) {
	for _, p := range []Params{
		{Priority: 0, Interval: time.Second},
		{Priority: 1, Interval: 5 * time.Millisecond},
		{Priority: 1, Interval: 15 * time.Millisecond},
		{Priority: 1, Interval: time.Minute},
		{Priority: 1, Interval: time.Second, PreemptDelay: -1},
	} {
		if _, err := NewMachine(p); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
}

// TestTwoMachines runs two machines against each other over a perfect
// in-memory link: the higher priority wins, a clean stop hands over after
// Skew_Time, and preemption gives the Mastership back.
func TestTwoMachines(t *testing.T) {
	c := &fakeClock{now: time.Unix(1000, 0)}
	mk := func(prio uint8, addr netip.Addr) *Machine {
		m, err := NewMachine(Params{Priority: prio, Interval: 100 * time.Millisecond, Preempt: true, LocalAddr: addr})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := mk(150, peerHigh), mk(100, peerLow)
	deliver := func(from *Machine, fromAddr netip.Addr, to *Machine, as []Action) {
		for _, x := range as {
			if x.Kind == ActionSend {
				to.Advert(c.now, fromAddr, &Advertisement{VRID: 1, Priority: x.Priority, Interval: 100 * time.Millisecond})
			}
		}
	}
	step := func() {
		// Fire the earliest deadline.
		da, db := a.Deadline(), b.Deadline()
		switch {
		case !da.IsZero() && (db.IsZero() || !db.Before(da)):
			c.now = da
			deliver(a, peerHigh, b, a.Tick(c.now))
		case !db.IsZero():
			c.now = db
			deliver(b, peerLow, a, b.Tick(c.now))
		}
	}
	deliver(a, peerHigh, b, a.Start(c.now))
	deliver(b, peerLow, a, b.Start(c.now))
	for i := 0; i < 50; i++ {
		step()
	}
	if a.State() != StateMaster || b.State() != StateBackup {
		t.Fatalf("election: a=%s b=%s", a.State(), b.State())
	}
	stopAt := c.now
	deliver(a, peerHigh, b, a.Stop(c.now))
	for b.State() != StateMaster {
		step()
	}
	if took := c.now.Sub(stopAt); took != b.SkewTime() {
		t.Fatalf("clean-stop takeover %s, want skew %s", took, b.SkewTime())
	}
	deliver(a, peerHigh, b, a.Start(c.now))
	for i := 0; i < 50; i++ {
		step()
	}
	if a.State() != StateMaster || b.State() != StateBackup {
		t.Fatalf("preempt: a=%s b=%s", a.State(), b.State())
	}
}
