package vrrp

import (
	"time"
)

// transition moves the VIPs and tells everyone who wants to know. forced
// says the sync group ordered it.
func (i *Instance) transition(from, to State, forced bool) {
	now := time.Now()
	owner := i.cfg.Priority == PriorityOwner
	switch {
	case to == StateMaster:
		if err := i.rt.vips.add(); err != nil {
			i.log.Error("vrrp: take over VIPs", "err", err)
		}
		i.sendGARP(i.cfg.GARPMasterRepeat)
		i.st.master.Add(1)
		i.rt.garpBurst = i.cfg.GARPMasterDelay > 0
		switch {
		case i.rt.garpBurst:
			i.rt.garpTimer.Reset(i.cfg.GARPMasterDelay)
		case i.cfg.GARPMasterRefresh > 0:
			i.rt.garpTimer.Reset(i.cfg.GARPMasterRefresh)
		}
	case from == StateMaster || from == StateInit || from == StateFault:
		// Also on start: VIPs left behind by a run that was killed go.
		i.rt.garpTimer.Stop()
		if !owner {
			removed, err := i.rt.vips.remove()
			if err != nil {
				i.log.Error("vrrp: release VIPs", "err", err)
			}
			if from == StateInit {
				// Right (a Backup must not hold the VIP), but someone
				// should know: a crashed run left it, or a person added it.
				// i.log names the instance (vrrp_instance).
				for _, p := range removed {
					i.log.Warn("vrrp: VIP was on the interface at start; removed it",
						"addr", p, "interface", i.cfg.Interface)
				}
			}
		}
	}
	prio := i.m().Priority()
	i.mu.Lock()
	i.state, i.since, i.prio = to, now, prio
	if to != StateBackup {
		i.master = i.m().Master()
	}
	i.mu.Unlock()
	i.log.Info("vrrp: state change", "from", from.String(), "to", to.String(), "priority", prio)
	i.notifier.changed(to, prio)
	if i.opts.OnStateChange != nil {
		i.opts.OnStateChange(StateChange{Instance: i.cfg.Name, From: from, To: to, Priority: prio, Time: now})
	}
	if i.group != nil {
		if forced {
			i.group.update()
		} else {
			i.group.memberChanged(i, from, to)
		}
	}
}

func (i *Instance) sendGARP(repeat int) {
	if err := i.rt.garp.send(repeat); err != nil {
		i.log.Warn("vrrp: gratuitous ARP", "err", err)
	}
}

// garpTimerFired sends the delayed burst (garp_master_delay) or a refresh
// (garp_master_refresh) while Master.
func (i *Instance) garpTimerFired() {
	if i.m().State() != StateMaster {
		return
	}
	if i.rt.garpBurst {
		i.rt.garpBurst = false
		i.sendGARP(i.cfg.GARPMasterRepeat)
	} else {
		i.sendGARP(i.cfg.GARPMasterRefreshRepeat)
	}
	if i.cfg.GARPMasterRefresh > 0 {
		i.rt.garpTimer.Reset(i.cfg.GARPMasterRefresh)
	}
}
