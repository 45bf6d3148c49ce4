package vrrp

import (
	"net/netip"
	"time"
)

// Advert is the event of receiving a valid advertisement for this VRID from
// src. The caller has already checked TTL, version, checksum and VRID.
func (m *Machine) Advert(now time.Time, src netip.Addr, a *Advertisement) []Action {
	interval := a.Interval
	if interval <= 0 {
		interval = m.p.Interval
	}
	switch m.state {
	case StateBackup:
		if a.Priority == PriorityStop {
			if m.p.SoleBackup {
				return m.becomeMaster(now, StateBackup)
			}
			m.masterDown = now.Add(m.SkewTime())
			return nil
		}
		preempt := m.p.Preempt && !now.Before(m.preemptAfter)
		if !preempt || a.Priority >= m.p.Priority {
			m.master = src
			m.masterAdverInterval = interval
			m.masterDown = now.Add(m.MasterDownInterval())
		}
		// Otherwise discard: the lower-priority Master is preempted when
		// Master_Down_Timer runs out.
		return nil
	case StateMaster:
		if a.Priority == PriorityStop {
			// Another router stopped believing it was Master; assert ourselves.
			m.adverAt = now.Add(m.p.Interval)
			return []Action{{Kind: ActionSend, Priority: m.p.Priority}}
		}
		if a.Priority > m.p.Priority || (a.Priority == m.p.Priority && src.Compare(m.p.LocalAddr) > 0) {
			m.master = src
			// One last advert after stepping down (not in RFC 5798, which
			// just goes quiet): the new Master may never have heard us, e.g.
			// when a partition heals and it speaks first, and only a
			// lower-priority advert tells it to re-announce the VIPs that
			// neighbours may still resolve to our MAC. Other Backups treat
			// it as any advert from a Master whose adverts follow.
			return append(m.becomeBackup(now, StateMaster, interval), Action{Kind: ActionSend, Priority: m.p.Priority})
		}
		// RFC 5798 discards the advert; like keepalived (garp_lower_prio_*)
		// we also tell the other router and the neighbours who is Master,
		// so that a healed partition converges without waiting for ARP
		// entries to expire. The caller rate-limits this.
		return []Action{{Kind: ActionSend, Priority: m.p.Priority}, {Kind: ActionAnnounce}}
	}
	return nil
}

// SetPriority changes the local priority, e.g. when a tracked condition
// changes. A Master advertises the new priority at once so that a better
// Backup can preempt without waiting for the next advert.
func (m *Machine) SetPriority(now time.Time, prio uint8) []Action {
	if prio == PriorityStop || prio == m.p.Priority {
		return nil
	}
	m.p.Priority = prio
	switch m.state {
	case StateMaster:
		m.adverAt = now.Add(m.p.Interval)
		return []Action{{Kind: ActionSend, Priority: prio}}
	case StateBackup:
		if prio == PriorityOwner {
			return m.becomeMaster(now, StateBackup)
		}
	}
	return nil
}

// SetFault enters (fault true) or leaves Fault. A Master entering Fault sends
// priority 0 so that its peer takes over at once; leaving Fault is like
// starting again.
func (m *Machine) SetFault(now time.Time, fault bool) []Action {
	switch {
	case fault && (m.state == StateBackup || m.state == StateMaster):
		return m.leave(StateFault)
	case !fault && m.state == StateFault:
		return m.enter(now, StateFault)
	}
	return nil
}

// ForceMaster makes a Backup Master now; a sync group uses it when another
// member became Master, so that all VIPs of the group move together.
func (m *Machine) ForceMaster(now time.Time) []Action {
	if m.state != StateBackup {
		return nil
	}
	return m.becomeMaster(now, StateBackup)
}

// ForceBackup makes a Master Backup now; a sync group uses it when another
// member lost Mastership to a better router.
func (m *Machine) ForceBackup(now time.Time) []Action {
	if m.state != StateMaster {
		return nil
	}
	return m.becomeBackup(now, StateMaster, m.masterAdverInterval)
}

// ForceFault puts the Machine in Fault (sync group: one member faulty means
// the whole group is).
func (m *Machine) ForceFault(now time.Time) []Action { return m.SetFault(now, true) }
