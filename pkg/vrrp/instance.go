package vrrp

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// StateChange is what an Instance reports on every transition.
type StateChange struct {
	// Instance is the instance's Config.Name.
	Instance string
	// From and To are the old and new state.
	From, To State
	// Priority is the priority in effect.
	Priority uint8
	// Time is when the change happened.
	Time time.Time
}

// Options are the dependencies of an Instance.
type Options struct {
	// Logger receives the instance's logs; default slog.Default().
	Logger *slog.Logger
	// OnStateChange, if set, is called on every transition from the
	// instance's goroutine, after the VIPs were moved. It must not block.
	OnStateChange func(StateChange)
}

// Status is a snapshot of an Instance.
type Status struct {
	// Name and VRID identify the instance.
	Name string
	VRID uint8
	// State is the current state.
	State State
	// Priority is the priority in effect (after SetPriorityOffset).
	Priority uint8
	// Master is the Master last heard from while Backup.
	Master netip.Addr
	// Since is when State was entered.
	Since time.Time
	// Stats are the instance's counters.
	Stats Stats
}

// Stats counts adverts since Run started.
type Stats struct {
	// AdvertsSent and AdvertsReceived count valid adverts for this VRID.
	AdvertsSent, AdvertsReceived uint64
	// DroppedTTL counts adverts whose TTL was not 255 (sent from off-link).
	DroppedTTL uint64
	// DroppedInvalid counts adverts that failed to decode (version, type,
	// length, checksum).
	DroppedInvalid uint64
	// DroppedSource counts adverts from a source that is not a configured
	// unicast peer.
	DroppedSource uint64
	// BecameMaster counts transitions to MASTER.
	BecameMaster uint64
	// SendErrs counts adverts that could not be sent.
	SendErrs uint64
}

type stats struct {
	sent, received, ttl, invalid, source, master, sendErrs atomic.Uint64
}

// Instance is one VRRP virtual router on one interface. Create it with New
// and run it with Run (or as part of a SyncGroup).
type Instance struct {
	cfg  Config
	opts Options
	log  *slog.Logger

	ctl   *mailbox[func(now time.Time) []Action]
	group *SyncGroup
	rt    *runtime // owned by the Run goroutine

	mu       sync.Mutex
	state    State
	since    time.Time
	prio     uint8
	master   netip.Addr
	offset   int
	faults   map[string]bool
	running  bool
	st       stats
	downAt   atomic.Int64 // Backup's master-down deadline (unix ns), 0 otherwise
	notifier *notifier
}

// New checks cfg and returns an Instance that does nothing until Run.
func New(cfg Config, opts Options) (*Instance, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("vrrp_instance", cfg.Name, "vrid", cfg.VRID)
	return &Instance{
		cfg:      cfg,
		opts:     opts,
		log:      log,
		ctl:      newMailbox[func(time.Time) []Action](),
		prio:     cfg.Priority,
		faults:   map[string]bool{},
		notifier: newNotifier(cfg.Notify, "INSTANCE", cfg.Name, log),
	}, nil
}

// Name returns the instance's name.
func (i *Instance) Name() string { return i.cfg.Name }

// Config returns the instance's configuration, with defaults filled in.
func (i *Instance) Config() Config { return i.cfg }

// State returns the current state.
func (i *Instance) State() State {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.state
}

// Status returns a snapshot of the instance.
func (i *Instance) Status() Status {
	i.mu.Lock()
	defer i.mu.Unlock()
	return Status{
		Name: i.cfg.Name, VRID: i.cfg.VRID, State: i.state, Priority: i.prio,
		Master: i.master, Since: i.since,
		Stats: Stats{
			AdvertsSent: i.st.sent.Load(), AdvertsReceived: i.st.received.Load(),
			DroppedTTL: i.st.ttl.Load(), DroppedInvalid: i.st.invalid.Load(),
			DroppedSource: i.st.source.Load(), BecameMaster: i.st.master.Load(),
			SendErrs: i.st.sendErrs.Load(),
		},
	}
}

// SetPriorityOffset adds delta to the configured priority, e.g. -50 while no
// real server of any service is healthy (keepalived's track weights). The
// result is kept within 1-254; an address owner's priority never changes.
func (i *Instance) SetPriorityOffset(delta int) {
	i.mu.Lock()
	i.offset = delta
	i.mu.Unlock()
	i.ctl.put(func(now time.Time) []Action {
		as := i.m().SetPriority(now, i.effectivePriority())
		i.mu.Lock()
		i.prio = i.m().Priority()
		i.mu.Unlock()
		return as
	})
}

func (i *Instance) effectivePriority() uint8 {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cfg.Priority == PriorityOwner {
		return PriorityOwner
	}
	return uint8(min(max(int(i.cfg.Priority)+i.offset, 1), 254))
}

// SetFault raises (faulty true) or clears a named fault condition. While any
// condition is raised the instance is in FAULT: it holds no VIPs and sends
// no adverts. Tracked interfaces use this with reason "link <name>".
func (i *Instance) SetFault(reason string, faulty bool) {
	i.ctl.put(func(now time.Time) []Action { return i.applyFault(now, reason, faulty) })
}

// applyFault raises or clears one fault condition; it runs on the Run
// goroutine. A sync group hears about the member's own conditions (not the
// ones the group raised) so that it can hold the other members in FAULT.
func (i *Instance) applyFault(now time.Time, reason string, faulty bool) []Action {
	i.mu.Lock()
	if i.faults[reason] == faulty {
		i.mu.Unlock()
		return nil
	}
	if faulty {
		i.faults[reason] = true
	} else {
		delete(i.faults, reason)
	}
	n := len(i.faults)
	own := n
	if i.faults[groupFaultReason] {
		own--
	}
	i.mu.Unlock()
	if faulty {
		i.log.Warn("vrrp: fault raised", "reason", reason)
	} else {
		i.log.Info("vrrp: fault cleared", "reason", reason, "remaining", n)
	}
	as := i.m().SetFault(now, n > 0)
	if i.group != nil && reason != groupFaultReason {
		i.group.faultsChanged(i, own > 0)
	}
	return as
}

// String names the instance for logs.
func (i *Instance) String() string {
	return fmt.Sprintf("vrrp_instance %s (vrid %d)", i.cfg.Name, i.cfg.VRID)
}

// publishDownAt makes the master-down deadline visible to the sync group.
func (i *Instance) publishDownAt() {
	var v int64
	if i.m().State() == StateBackup {
		v = i.m().Deadline().UnixNano()
	}
	i.downAt.Store(v)
}
