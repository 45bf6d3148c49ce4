package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// groupFaultReason is the fault a SyncGroup raises on its healthy members
// while another member is faulty.
const groupFaultReason = "sync group"

// SyncGroup makes its instances change state together (keepalived's
// vrrp_sync_group): when one becomes Master the others follow, when one
// loses Mastership to a better router the others step down too, and while
// one is in FAULT all are. Use it when the VIPs of several VRIDs must stay
// on the same director (e.g. a public and a private side).
type SyncGroup struct {
	name     string
	members  []*Instance
	log      *slog.Logger
	notifier *notifier

	mu       sync.Mutex
	ownFault map[*Instance]bool
	state    State
}

// NewSyncGroup groups members, which must not be run on their own. notify
// runs with "GROUP" as the kind when the group as a whole changes state.
func NewSyncGroup(name string, members []*Instance, notify Notify, log *slog.Logger) (*SyncGroup, error) {
	if name == "" {
		return nil, fmt.Errorf("vrrp: sync group has no name")
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("vrrp: sync group %s has no members", name)
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("vrrp_sync_group", name)
	g := &SyncGroup{name: name, members: members, log: log,
		notifier: newNotifier(notify, "GROUP", name, log), ownFault: map[*Instance]bool{}}
	for _, m := range members {
		if m.group != nil {
			return nil, fmt.Errorf("vrrp: sync group %s: %s is already in sync group %s", name, m, m.group.name)
		}
	}
	for _, m := range members {
		m.group = g
	}
	return g, nil
}

// Name returns the group's name.
func (g *SyncGroup) Name() string { return g.name }

// Members returns the group's instances.
func (g *SyncGroup) Members() []*Instance { return append([]*Instance(nil), g.members...) }

// State returns the group's state: FAULT if any member is, MASTER or BACKUP
// if all members are, otherwise the state it was in last (a transition is
// under way), INIT before start and after stop.
func (g *SyncGroup) State() State {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state
}

// Run runs every member until ctx is done or one of them fails; then it
// stops them all and returns their errors.
func (g *SyncGroup) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nctx, ncancel := context.WithCancel(context.Background())
	ndone := make(chan struct{})
	go func() { defer close(ndone); g.notifier.run(nctx) }()
	defer func() { ncancel(); <-ndone }()

	errs := make([]error, len(g.members))
	var wg sync.WaitGroup
	for n, m := range g.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[n] = m.Run(ctx); errs[n] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vrrp: sync group %s: %w", g.name, err)
	}
	return nil
}

// memberChanged runs on member i's goroutine after it changed state by
// itself (not because the group forced it: forced changes are consequences,
// and echoing them back would let stale orders bounce between members).
func (g *SyncGroup) memberChanged(i *Instance, from, to State) {
	for _, o := range g.members {
		if o == i {
			continue
		}
		switch {
		case to == StateMaster:
			o.ctl.put(func(now time.Time) []Action { return o.forced(o.m().ForceMaster(now)) })
		case from == StateMaster && to == StateBackup:
			o.ctl.put(func(now time.Time) []Action { return o.forced(o.m().ForceBackup(now)) })
		}
	}
	g.update()
}

// faultsChanged runs on member i's goroutine when its own (not the
// group's) fault conditions changed.
func (g *SyncGroup) faultsChanged(i *Instance, faulty bool) {
	g.mu.Lock()
	g.ownFault[i] = faulty
	var bad []string
	for m, f := range g.ownFault {
		if f {
			bad = append(bad, m.cfg.Name)
		}
	}
	g.mu.Unlock()
	for _, o := range g.members {
		// A member is held in FAULT while any other member has a fault of
		// its own; its own faults never hold itself through the group.
		held := false
		for _, name := range bad {
			if name != o.cfg.Name {
				held = true
			}
		}
		o.SetFault(groupFaultReason, held)
	}
	if len(bad) > 0 {
		g.log.Warn("vrrp: sync group held in FAULT", "faulty_members", strings.Join(bad, ","))
	}
}

// canGoMaster reports whether member i, whose master-down timer ran out,
// may become Master: only if every other member is Master already or has
// timed out too, i.e. no member still hears a Master (keepalived's rule).
// Without it, a member with no peer would pull the group to MASTER, the
// member that hears a better Master would pull it back, and so on.
func (g *SyncGroup) canGoMaster(i *Instance, now time.Time) bool {
	for _, o := range g.members {
		if o == i {
			continue
		}
		switch o.State() {
		case StateMaster:
		case StateBackup:
			if d := o.downAt.Load(); d == 0 || now.UnixNano() < d {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// update recomputes the group state and notifies on a change.
func (g *SyncGroup) update() {
	var all [4]int
	var prio uint8
	for _, m := range g.members {
		s := m.State()
		all[s]++
		prio = max(prio, m.Status().Priority)
	}
	g.mu.Lock()
	old := g.state
	switch n := len(g.members); {
	case all[StateFault] > 0:
		g.state = StateFault
	case all[StateMaster] == n:
		g.state = StateMaster
	case all[StateBackup] == n:
		g.state = StateBackup
	case all[StateInit] == n:
		g.state = StateInit
	}
	s := g.state
	g.mu.Unlock()
	if s != old {
		g.log.Info("vrrp: sync group state change", "from", old.String(), "to", s.String())
		g.notifier.changed(s, prio)
	}
}

// forced marks transitions the group ordered, so they are not echoed.
func (i *Instance) forced(as []Action) []Action {
	for n := range as {
		as[n].forced = true
	}
	return as
}
