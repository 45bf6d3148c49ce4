// Package slots is the storage tier's placement: a tenant's keys hash to
// Count fixed slots, and each slot has a primary and backups on distinct
// storage nodes, an epoch and an in-sync set. The Map is kept in the
// replicated cluster state under Key(tenant) as JSON and changed only by
// compare-and-set; the functions that compute a new Map (Place, Failover,
// ShrinkInSync) are pure and used by the raft leader (Failover, Place) and
// by a slot's primary (ShrinkInSync).
//
// Count is 1,024, as Couchbase's vBuckets, not Redis Cluster's 16,384: a
// storage tier here has a handful of nodes (four in the seed, tens at
// most), and 1,024 slots already balance them within a tenth of a percent;
// the map is per tenant and goes through the raft log on every failover,
// so a map a sixteenth the size keeps each such commit about 50 KB rather
// than 800 KB, and the per-slot state a node keeps (epoch, in-sync set,
// replication and rebuild progress) stays small.
package slots

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// Count is the number of slots of every tenant.
const Count = 1024

// KeyPrefix is the cluster state's prefix of the slot maps.
const KeyPrefix = "slots/"

// Key is the cluster state's key of a tenant's slot map.
func Key(tenant string) string { return KeyPrefix + tenant }

// EpochShift places a slot's epoch in the high bits of the cas uniques its
// primary hands out: a primary promoted at epoch e issues cas values from
// e<<EpochShift up, above every value issued under an earlier epoch (each
// epoch may issue 2^40 values), so cas uniques stay monotonic across
// failover.
const EpochShift = 40

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Of returns the slot of key: CRC-32C of the key (in hardware on amd64 and
// arm64) modulo Count.
func Of(key []byte) int { return int(crc32.Checksum(key, castagnoli) % Count) }

// Replication modes of a tenant.
const (
	// Sync acknowledges a write once every in-sync backup has it.
	Sync = "sync"
	// Async acknowledges a write once the primary has it; the backups
	// follow. May lose the replication lag on failover.
	Async = "async"
)

// Slot is one slot's placement.
type Slot struct {
	// Primary is the node that serves the slot; "" while no node can (its
	// data was lost with every copy and the map waits for an operator).
	Primary string `json:"p"`
	// Backups are the nodes that receive the slot's writes, in order.
	Backups []string `json:"b,omitempty"`
	// InSync are the backups that have every acknowledged write: a write
	// waits for them (sync mode), and only they may be promoted.
	InSync []string `json:"s,omitempty"`
	// Epoch changes every time the primary does; replication records and
	// forwarded requests carry it, and stale ones are refused.
	Epoch uint64 `json:"e"`
	// Next is the slot's move under way (a rebalance, a node added or
	// drained), empty when none is: Next[0] is the primary it moves to,
	// Next[1:] its backups. A move is make-before-break: the nodes of
	// Next join as backups (rebuilt, then in sync), the primary moves to
	// Next[0] once it is in sync (the old one stays an in-sync backup),
	// and the copies not in Next leave once all of Next is in sync, so a
	// move never leaves a slot fewer in-sync copies (see Advance).
	Next []string `json:"n,omitempty"`
}

// Map is one tenant's placement.
type Map struct {
	// Replicas is the number of backups per slot wanted (0, 1 or 2).
	Replicas int `json:"replicas"`
	// Replication is Sync or Async.
	Replication string `json:"replication"`
	// Nodes are the storage nodes slots may be placed on, sorted.
	Nodes []string `json:"nodes"`
	// Slots has Count entries.
	Slots []Slot `json:"slots"`
}

// Decode parses and checks a Map.
func Decode(b []byte) (*Map, error) {
	var m Map
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("slots: decode: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Encode returns the Map as JSON.
func (m *Map) Encode() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("slots: encode: %v", err)) // plain data: cannot fail
	}
	return b
}

// Validate checks the invariants every Map keeps.
func (m *Map) Validate() error {
	if m.Replicas < 0 || m.Replicas > 2 {
		return fmt.Errorf("slots: replicas %d not in 0..2", m.Replicas)
	}
	if m.Replication != Sync && m.Replication != Async {
		return fmt.Errorf("slots: replication %q (want sync or async)", m.Replication)
	}
	if len(m.Slots) != Count {
		return fmt.Errorf("slots: %d slots, want %d", len(m.Slots), Count)
	}
	for i, s := range m.Slots {
		seen := map[string]bool{}
		for _, n := range append([]string{s.Primary}, s.Backups...) {
			if n == "" {
				continue
			}
			if seen[n] {
				return fmt.Errorf("slots: slot %d: node %q twice", i, n)
			}
			seen[n] = true
		}
		for _, n := range s.InSync {
			if !slices.Contains(s.Backups, n) {
				return fmt.Errorf("slots: slot %d: in-sync %q is not a backup", i, n)
			}
		}
		for j, n := range s.Next {
			if n == "" || slices.Contains(s.Next[:j], n) {
				return fmt.Errorf("slots: slot %d: move to %q: empty or twice", i, n)
			}
		}
	}
	return nil
}

// Clone returns a deep copy.
func (m *Map) Clone() *Map {
	c := *m
	c.Nodes = slices.Clone(m.Nodes)
	c.Slots = make([]Slot, len(m.Slots))
	for i, s := range m.Slots {
		c.Slots[i] = Slot{Primary: s.Primary, Backups: slices.Clone(s.Backups), InSync: slices.Clone(s.InSync), Epoch: s.Epoch, Next: slices.Clone(s.Next)}
	}
	return &c
}

// MaxEpoch is the highest epoch of any slot. Epochs are tenant-wide
// monotonic: a slot whose primary changes gets MaxEpoch()+1, so a node's
// cas counter raised to MaxEpoch()<<EpochShift is above every cas value
// issued under an older epoch anywhere.
func (m *Map) MaxEpoch() uint64 {
	var e uint64
	for _, s := range m.Slots {
		e = max(e, s.Epoch)
	}
	return e
}

// ErrNotPrimary: a change a primary asked for no longer applies (the slot
// has another primary or epoch).
var ErrNotPrimary = errors.New("slots: not the slot's primary at that epoch")

// ShrinkInSync returns the map with backup removed from the in-sync set of
// every slot in which node is the primary at the epoch given in epochs
// (slot → epoch; a slot absent from epochs is not touched). It fails with
// ErrNotPrimary if any of those slots has changed primary or epoch.
func (m *Map) ShrinkInSync(node, backup string, epochs map[int]uint64) (*Map, error) {
	c := m.Clone()
	for i, e := range epochs {
		s := &c.Slots[i]
		if s.Primary != node || s.Epoch != e {
			return nil, fmt.Errorf("%w: slot %d", ErrNotPrimary, i)
		}
		s.InSync = slices.DeleteFunc(s.InSync, func(n string) bool { return n == backup })
	}
	return c, nil
}

// AddInSync returns the map with backup added to slot's in-sync set, if
// node is still its primary at epoch and backup still one of its backups.
func (m *Map) AddInSync(node, backup string, slot int, epoch uint64) (*Map, error) {
	return m.AddInSyncAll(node, backup, map[int]uint64{slot: epoch})
}

// AddInSyncAll is AddInSync for every slot of epochs (slot → epoch) in
// one copy of the map (a rebuild marks hundreds of slots in sync at once:
// a copy per slot made that quadratic). It fails with ErrNotPrimary if any
// of those slots has changed primary or epoch, or lost backup.
func (m *Map) AddInSyncAll(node, backup string, epochs map[int]uint64) (*Map, error) {
	for i, e := range epochs {
		if s := m.Slots[i]; s.Primary != node || s.Epoch != e || !slices.Contains(s.Backups, backup) {
			return nil, fmt.Errorf("%w: slot %d", ErrNotPrimary, i)
		}
	}
	c := m.Clone()
	for i := range epochs {
		if s := &c.Slots[i]; !slices.Contains(s.InSync, backup) {
			s.InSync = append(s.InSync, backup)
		}
	}
	return c, nil
}
