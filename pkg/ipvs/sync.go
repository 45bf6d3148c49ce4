package ipvs

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"

	"github.com/lbd-project/lbd/internal/statefile"
)

// Connection synchronisation: the kernel's IPVS sync daemons. A master
// daemon multicasts the state of the connections its director schedules; a
// backup daemon receives them and creates the same connection entries, so
// that after a failover the new director forwards every established
// connection to the real server it already talks to. lbd starts and stops
// them over generic netlink (IPVS_CMD_NEW_DAEMON, IPVS_CMD_DEL_DAEMON) and
// reads them back (IPVS_CMD_GET_DAEMON); a SyncManager owns only the daemons
// it started.

// SyncState is the role of a sync daemon (IP_VS_STATE_MASTER, _BACKUP).
type SyncState uint32

// The two sync daemons a network namespace can run, one of each.
const (
	SyncMaster SyncState = 1
	SyncBackup SyncState = 2
)

// String returns "master" or "backup".
func (s SyncState) String() string {
	switch s {
	case SyncMaster:
		return "master"
	case SyncBackup:
		return "backup"
	}
	return fmt.Sprintf("syncstate(%d)", uint32(s))
}

// SyncDaemon is one kernel sync daemon. The zero values of MaxLen, Group,
// Port and TTL leave the kernel's defaults (a payload that fits the
// interface's MTU, 224.0.0.81 or ff02::81, port 8848, TTL 1); the kernel
// reports the values it chose.
type SyncDaemon struct {
	State     SyncState  `json:"state"`
	Interface string     `json:"interface"`
	SyncID    uint8      `json:"syncid"`
	MaxLen    uint16     `json:"maxlen,omitempty"`
	Group     netip.Addr `json:"group,omitzero"`
	Port      uint16     `json:"port,omitempty"`
	TTL       uint8      `json:"ttl,omitempty"`
}

// String describes d like ipvsadm --list --daemon.
func (d SyncDaemon) String() string {
	s := fmt.Sprintf("%s sync daemon (mcast=%s, syncid=%d", d.State, d.Interface, d.SyncID)
	if d.Group.IsValid() {
		s += ", group=" + d.Group.String()
	}
	if d.Port != 0 {
		s += fmt.Sprintf(", port=%d", d.Port)
	}
	if d.TTL != 0 {
		s += fmt.Sprintf(", ttl=%d", d.TTL)
	}
	if d.MaxLen != 0 {
		s += fmt.Sprintf(", maxlen=%d", d.MaxLen)
	}
	return s + ")"
}

// Validate reports what the kernel would refuse.
func (d SyncDaemon) Validate() error {
	var errs []error
	if d.State != SyncMaster && d.State != SyncBackup {
		errs = append(errs, fmt.Errorf("state %d: want master or backup", d.State))
	}
	if d.Interface == "" || len(d.Interface) >= 16 {
		errs = append(errs, fmt.Errorf("interface %q: want a name of 1 to 15 characters", d.Interface))
	}
	if d.Group.IsValid() && !d.Group.IsMulticast() {
		errs = append(errs, fmt.Errorf("group %s is not a multicast address", d.Group))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("ipvs: %s: %w", d, errors.Join(errs...))
}

// matches reports whether the kernel's daemon have is what want asks for,
// counting a zero field of want as "the kernel's default, whatever it is".
func (want SyncDaemon) matches(have SyncDaemon) bool {
	return want.State == have.State && want.Interface == have.Interface && want.SyncID == have.SyncID &&
		(want.MaxLen == 0 || want.MaxLen == have.MaxLen) &&
		(!want.Group.IsValid() || want.Group == have.Group) &&
		(want.Port == 0 || want.Port == have.Port) &&
		(want.TTL == 0 || want.TTL == have.TTL)
}

// SyncKernel starts, stops and lists the sync daemons of one network
// namespace. Netlink implements it.
type SyncKernel interface {
	SyncDaemons() ([]SyncDaemon, error)
	StartSyncDaemon(d SyncDaemon) error
	StopSyncDaemon(s SyncState) error
}

// SyncStateFileName is the file, in the state directory, that records the
// sync daemons lbd started.
const SyncStateFileName = "ipvs-sync.json"

// SyncManager keeps the kernel's sync daemons as asked, touching only the
// ones it started: a daemon an operator started (ipvsadm --start-daemon) is
// reported as a conflict and left running.
type SyncManager struct {
	k    SyncKernel
	path string // "" keeps the record in memory only
	log  *slog.Logger

	mu    sync.Mutex
	owned []SyncDaemon // as started, one per state at most
}

// NewSyncManager reads the record of the daemons a previous run started
// from stateDir ("" for none).
func NewSyncManager(k SyncKernel, stateDir string, log *slog.Logger) (*SyncManager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &SyncManager{k: k, log: log}
	if stateDir != "" {
		m.path = filepath.Join(stateDir, SyncStateFileName)
		var rec syncRecord
		if _, err := statefile.Load(m.path, &rec); err != nil {
			return nil, fmt.Errorf("ipvs: sync daemons: %w", err)
		}
		m.owned = rec.Daemons
	}
	return m, nil
}

type syncRecord struct {
	Daemons []SyncDaemon `json:"daemons"`
}

// SyncResult says what an Apply did.
type SyncResult struct {
	Started, Stopped []SyncDaemon
	// Conflicts are daemons lbd wanted to run whose place (master or
	// backup) is taken by one it did not start.
	Conflicts []SyncDaemon
}

// syncPlan is what Apply must do: pure, from what is wanted, what the
// kernel runs and what lbd started.
type syncPlan struct {
	stop      []SyncDaemon // owned daemons to stop (changed or unwanted)
	start     []SyncDaemon
	conflicts []SyncDaemon // kernel daemons in the way, not lbd's
	owned     []SyncDaemon // what lbd owns once the plan succeeded
}

func planSync(want, have, owned []SyncDaemon) syncPlan {
	var p syncPlan
	byState := func(ds []SyncDaemon, s SyncState) (SyncDaemon, bool) {
		i := slices.IndexFunc(ds, func(d SyncDaemon) bool { return d.State == s })
		if i < 0 {
			return SyncDaemon{}, false
		}
		return ds[i], true
	}
	for _, s := range []SyncState{SyncMaster, SyncBackup} {
		w, wanted := byState(want, s)
		h, running := byState(have, s)
		o, recorded := byState(owned, s)
		ours := running && recorded && o.matches(h)
		switch {
		case running && !ours:
			if wanted {
				p.conflicts = append(p.conflicts, h)
			}
		case running && ours && wanted && w.matches(h):
			p.owned = append(p.owned, o)
		case running && ours:
			p.stop = append(p.stop, h)
			if wanted {
				p.start = append(p.start, w)
				p.owned = append(p.owned, w)
			}
		case wanted:
			p.start = append(p.start, w)
			p.owned = append(p.owned, w)
		}
	}
	return p
}

// Apply makes the kernel run want (at most one master and one backup
// daemon), starting and stopping only lbd's own.
func (m *SyncManager) Apply(want []SyncDaemon) (SyncResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var res SyncResult
	for _, d := range want {
		if err := d.Validate(); err != nil {
			return res, err
		}
	}
	have, err := m.k.SyncDaemons()
	if err != nil {
		return res, fmt.Errorf("ipvs: list sync daemons: %w", err)
	}
	p := planSync(want, have, m.owned)
	res.Conflicts = p.conflicts
	if len(p.stop) == 0 && len(p.start) == 0 {
		if !slices.Equal(p.owned, m.owned) {
			err = m.save(p.owned)
		}
		return res, err
	}
	// The record is written before a daemon starts (so a crash right after
	// the start still knows it is lbd's) and after one stops.
	keep := slices.DeleteFunc(slices.Clone(p.owned), func(o SyncDaemon) bool {
		return slices.ContainsFunc(p.start, func(s SyncDaemon) bool { return s.State == o.State })
	})
	var errs []error
	for _, d := range p.stop {
		if err := m.k.StopSyncDaemon(d.State); err != nil {
			errs = append(errs, fmt.Errorf("ipvs: stop %s: %w", d, err))
			keep = append(keep, d)
			continue
		}
		res.Stopped = append(res.Stopped, d)
		m.log.Info("ipvs sync daemon stopped", "daemon", d.String())
	}
	for _, d := range p.start {
		if slices.ContainsFunc(keep, func(o SyncDaemon) bool { return o.State == d.State }) {
			continue // its old one could not be stopped
		}
		if err := m.save(append(slices.Clone(keep), d)); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := m.k.StartSyncDaemon(d); err != nil {
			errs = append(errs, fmt.Errorf("ipvs: start %s: %w", d, err))
			continue
		}
		keep = append(keep, d)
		res.Started = append(res.Started, d)
		m.log.Info("ipvs sync daemon started", "daemon", d.String())
	}
	if err := m.save(keep); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// Owned returns the daemons lbd started and runs.
func (m *SyncManager) Owned() []SyncDaemon {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.owned)
}

func (m *SyncManager) save(owned []SyncDaemon) error {
	slices.SortFunc(owned, func(a, b SyncDaemon) int { return int(a.State) - int(b.State) })
	m.owned = owned
	if m.path == "" {
		return nil
	}
	if err := statefile.Save(m.path, syncRecord{Daemons: owned}); err != nil {
		return fmt.Errorf("ipvs: record sync daemons: %w", err)
	}
	return nil
}
