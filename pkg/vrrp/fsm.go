package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// Params are what the state machine needs to know about its own router.
type Params struct {
	// Priority is 1-254, or 255 (PriorityOwner) for the address owner.
	Priority uint8
	// Interval is the advertisement interval (10ms steps, at most 40.95s).
	Interval time.Duration
	// Preempt lets a higher-priority Backup take over from a lower-priority
	// Master. RFC 5798 and keepalived default to true; nopreempt is false.
	Preempt bool
	// PreemptDelay holds off preemption for this long after start (or after
	// leaving Fault), as keepalived's preempt_delay does.
	PreemptDelay time.Duration
	// LocalAddr is this router's primary address on the link; it breaks ties
	// between equal priorities (the higher address wins).
	LocalAddr netip.Addr
	// SoleBackup says that no third router can exist (exactly one unicast
	// peer), so on a priority-0 advert the Backup takes over at once instead
	// of waiting Skew_Time, which only exists to let the best of several
	// Backups win.
	SoleBackup bool
}

// Validate reports whether p can drive a Machine.
func (p Params) Validate() error {
	if p.Priority == PriorityStop {
		return fmt.Errorf("vrrp: priority 0 is reserved for a stopping master")
	}
	if p.Interval < 10*time.Millisecond || p.Interval > MaxAdvertInterval {
		return fmt.Errorf("vrrp: advert interval %s out of range 10ms-%s", p.Interval, MaxAdvertInterval)
	}
	if p.Interval%(10*time.Millisecond) != 0 {
		return fmt.Errorf("vrrp: advert interval %s is not a multiple of 10ms", p.Interval)
	}
	if p.PreemptDelay < 0 {
		return fmt.Errorf("vrrp: negative preempt delay %s", p.PreemptDelay)
	}
	return nil
}

// Machine is the VRRPv3 state machine of RFC 5798 section 6.4 as pure code:
// every method takes the current time and returns the Actions to perform in
// order; timers are deadlines the caller polls with Tick when Deadline
// passes. It is not safe for concurrent use.
type Machine struct {
	p     Params
	state State

	masterAdverInterval time.Duration
	masterDown          time.Time // Backup: Master_Down_Timer
	adverAt             time.Time // Master: Adver_Timer
	preemptAfter        time.Time
	master              netip.Addr // the last Master heard from, when Backup
}

// NewMachine returns a Machine in StateInit.
func NewMachine(p Params) (*Machine, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Machine{p: p, masterAdverInterval: p.Interval}, nil
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Priority returns the priority the Machine currently advertises.
func (m *Machine) Priority() uint8 { return m.p.Priority }

// Master returns the address of the Master last heard from while Backup
// (invalid if none, or if this router is the Master).
func (m *Machine) Master() netip.Addr { return m.master }

// Deadline returns when Tick must next be called; zero means no timer runs.
func (m *Machine) Deadline() time.Time {
	switch m.state {
	case StateBackup:
		return m.masterDown
	case StateMaster:
		return m.adverAt
	}
	return time.Time{}
}

// SkewTime returns ((256-Priority) * Master_Adver_Interval) / 256.
func (m *Machine) SkewTime() time.Duration {
	return skew(m.p.Priority, m.masterAdverInterval)
}

// MasterDownInterval returns 3 * Master_Adver_Interval + Skew_Time.
func (m *Machine) MasterDownInterval() time.Duration {
	return 3*m.masterAdverInterval + m.SkewTime()
}

func skew(prio uint8, interval time.Duration) time.Duration {
	return time.Duration(256-int64(prio)) * interval / 256
}

// Start is the Startup event: the owner becomes Master at once, everyone
// else becomes Backup and waits for a Master.
func (m *Machine) Start(now time.Time) []Action {
	if m.state != StateInit {
		return nil
	}
	return m.enter(now, StateInit)
}

// enter leaves Init or Fault for Backup, or Master if this is the owner.
func (m *Machine) enter(now time.Time, from State) []Action {
	m.preemptAfter = now.Add(m.p.PreemptDelay)
	if m.p.Priority == PriorityOwner {
		return m.becomeMaster(now, from)
	}
	return m.becomeBackup(now, from, m.p.Interval)
}

func (m *Machine) becomeMaster(now time.Time, from State) []Action {
	m.state = StateMaster
	m.master = netip.Addr{}
	m.adverAt = now.Add(m.p.Interval)
	return []Action{
		{Kind: ActionSend, Priority: m.p.Priority},
		{Kind: ActionTransition, From: from, To: StateMaster},
	}
}

func (m *Machine) becomeBackup(now time.Time, from State, masterInterval time.Duration) []Action {
	m.state = StateBackup
	m.masterAdverInterval = masterInterval
	m.masterDown = now.Add(m.MasterDownInterval())
	return []Action{{Kind: ActionTransition, From: from, To: StateBackup}}
}

// Stop is the Shutdown event: a Master sends priority 0 so that a Backup
// takes over after Skew_Time instead of the full Master_Down_Interval.
func (m *Machine) Stop(now time.Time) []Action {
	if m.state == StateInit {
		return nil
	}
	return m.leave(StateInit)
}

// leave moves to Init or Fault, where no timer runs. A Master sends
// priority 0 first so that a Backup takes over after Skew_Time instead of
// the full Master_Down_Interval.
func (m *Machine) leave(to State) []Action {
	from := m.state
	m.state = to
	m.master = netip.Addr{}
	if from == StateMaster {
		return []Action{
			{Kind: ActionSend, Priority: PriorityStop},
			{Kind: ActionTransition, From: from, To: to},
		}
	}
	return []Action{{Kind: ActionTransition, From: from, To: to}}
}

// Tick fires the timer whose deadline has passed, if any.
func (m *Machine) Tick(now time.Time) []Action {
	switch m.state {
	case StateBackup:
		if !now.Before(m.masterDown) {
			return m.becomeMaster(now, StateBackup)
		}
	case StateMaster:
		if !now.Before(m.adverAt) {
			m.adverAt = now.Add(m.p.Interval)
			return []Action{{Kind: ActionSend, Priority: m.p.Priority}}
		}
	}
	return nil
}
