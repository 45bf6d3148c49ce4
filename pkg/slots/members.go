package slots

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Storage membership: which storage nodes hold slots. It is kept in the
// replicated cluster state under MembersKey, seeded from the file's
// storage nodes when the key is absent (a new cluster), and changed by
// `lbctl node add | drain | remove` (by compare-and-set) and by a storage
// node leaving the file. The raft leader places every tenant over
// Members.Placement(); it alone changes the slot maps.

// MembersKey is the cluster state's key of the storage membership.
const MembersKey = "kvsmembers"

// Member states.
const (
	// Active: slots are placed on the node.
	Active = "active"
	// Draining: slots move off the node; it keeps serving until none is
	// left, then `lbctl node remove` takes it out.
	Draining = "draining"
	// Removed: out of the storage tier; a file that still lists the node
	// does not put it back (`lbctl node add` does).
	Removed = "removed"
)

// Member is one storage node's membership.
type Member struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// Members is the storage membership, sorted by name.
type Members struct {
	Nodes []Member `json:"nodes"`
}

// SeedMembers returns the membership of a new cluster: every storage node
// of the file, active.
func SeedMembers(storage []string) *Members {
	m := &Members{}
	for _, n := range storage {
		m = m.with(n, Active)
	}
	return m
}

// DecodeMembers parses and checks a membership.
func DecodeMembers(b []byte) (*Members, error) {
	var m Members
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("slots: members: %w", err)
	}
	for i, n := range m.Nodes {
		if n.Name == "" || (n.State != Active && n.State != Draining && n.State != Removed) {
			return nil, fmt.Errorf("slots: members: node %d: name %q state %q", i, n.Name, n.State)
		}
		if i > 0 && m.Nodes[i-1].Name >= n.Name {
			return nil, fmt.Errorf("slots: members: %q not sorted or twice", n.Name)
		}
	}
	return &m, nil
}

// Encode returns the membership as JSON.
func (m *Members) Encode() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("slots: encode members: %v", err)) // plain data: cannot fail
	}
	return b
}

// State is a node's state; "" if it never was a member.
func (m *Members) State(node string) string {
	for _, n := range m.Nodes {
		if n.Name == node {
			return n.State
		}
	}
	return ""
}

// Placement are the active nodes, sorted: the nodes slots are placed on.
func (m *Members) Placement() []string {
	var out []string
	for _, n := range m.Nodes {
		if n.State == Active {
			out = append(out, n.Name)
		}
	}
	return out
}

// with returns a copy with node in state.
func (m *Members) with(node, state string) *Members {
	c := &Members{Nodes: slices.Clone(m.Nodes)}
	i, found := slices.BinarySearchFunc(c.Nodes, node, func(a Member, n string) int { return strings.Compare(a.Name, n) })
	if found {
		c.Nodes[i].State = state
	} else {
		c.Nodes = slices.Insert(c.Nodes, i, Member{Name: node, State: state})
	}
	return c
}

// Errors of the membership changes (errors.Is), for the API's status codes.
var (
	// ErrUnknownNode: the node is not a storage node of the configuration.
	ErrUnknownNode = errors.New("unknown storage node")
	// ErrRefused: the change would leave the storage tier unable to
	// serve or lose data, or the node is not in the state it needs.
	ErrRefused = errors.New("refused")
)

// Add returns the membership with node active: a new node gets slots
// (rebuilt onto it), a draining one stops draining, a removed one comes
// back. storage are the configuration's storage nodes.
func (m *Members) Add(node string, storage []string) (*Members, error) {
	if !slices.Contains(storage, node) {
		return nil, fmt.Errorf("%w: %s (add it to the file's nodes with role storage first)", ErrUnknownNode, node)
	}
	if m.State(node) == Active {
		return nil, fmt.Errorf("%w: node %s is already active", ErrRefused, node)
	}
	return m.with(node, Active), nil
}

// Drain returns the membership with node draining: its slots move to the
// other active nodes. maps are the tenants' slot maps (tenant → map). It
// refuses when no other node is active, and when node is the only in-sync
// copy of a slot of a tenant with replicas (a rebuild is under way: its
// data could go nowhere yet).
func (m *Members) Drain(node string, maps map[string]*Map) (*Members, error) {
	switch m.State(node) {
	case "":
		return nil, fmt.Errorf("%w: %s is not a member of the storage tier", ErrUnknownNode, node)
	case Draining:
		return nil, fmt.Errorf("%w: node %s is already draining", ErrRefused, node)
	case Removed:
		return nil, fmt.Errorf("%w: node %s is removed", ErrRefused, node)
	}
	next := m.with(node, Draining)
	if len(next.Placement()) == 0 {
		return nil, fmt.Errorf("%w: node %s is the last active storage node: its slots could go nowhere (add a node first)", ErrRefused, node)
	}
	if t, n := StrandedSlots(maps, node, next.Placement()); n > 0 {
		return nil, fmt.Errorf("%w: node %s holds the only in-sync copy of %d slots of tenant %s (a rebuild is under way; retry when lbctl kvs status shows every backup in sync)", ErrRefused, node, n, t)
	}
	return next, nil
}

// Remove returns the membership with node removed. Without force the node
// must be drained (draining, and in no map any more); with force (a dead
// node) it may hold slots, but not the last in-sync copy of a slot of a
// tenant with replicas, and it may not be the last active node.
func (m *Members) Remove(node string, maps map[string]*Map, force bool) (*Members, error) {
	st := m.State(node)
	switch {
	case st == "":
		return nil, fmt.Errorf("%w: %s is not a member of the storage tier", ErrUnknownNode, node)
	case st == Removed:
		return nil, fmt.Errorf("%w: node %s is already removed", ErrRefused, node)
	case st == Active && !force:
		return nil, fmt.Errorf("%w: node %s is active: drain it first (lbctl node drain %s), or --force for a dead node", ErrRefused, node, node)
	}
	next := m.with(node, Removed)
	if len(next.Placement()) == 0 {
		return nil, fmt.Errorf("%w: node %s is the last active storage node", ErrRefused, node)
	}
	if !force {
		if t, n := HeldSlots(maps, node); n > 0 {
			return nil, fmt.Errorf("%w: node %s still holds %d slots of tenant %s: wait for the drain to end (lbctl kvs status), or --force for a dead node", ErrRefused, node, n, t)
		}
		return next, nil
	}
	if t, n := StrandedSlots(maps, node, next.Placement()); n > 0 {
		return nil, fmt.Errorf("%w: node %s holds the only in-sync copy of %d slots of tenant %s: removing it loses them", ErrRefused, node, n, t)
	}
	return next, nil
}

// SyncFile returns the membership with every member that is no longer a
// storage node of the file removed; changed is false if none was.
func (m *Members) SyncFile(storage []string) (next *Members, changed bool) {
	next = m
	for _, n := range m.Nodes {
		if n.State != Removed && !slices.Contains(storage, n.Name) {
			next, changed = next.with(n.Name, Removed), true
		}
	}
	return next, changed
}

// HeldSlots returns the first tenant (by name) whose map places anything
// on node, and how many of its slots do.
func HeldSlots(maps map[string]*Map, node string) (tenant string, n int) {
	for _, t := range sortedTenants(maps) {
		c := 0
		for _, s := range maps[t].Slots {
			if s.Primary == node || slices.Contains(s.Backups, node) {
				c++
			}
		}
		if c > 0 {
			return t, c
		}
	}
	return "", 0
}

// StrandedSlots returns the first tenant with replicas (by name) of which
// node is the primary of slots that have no in-sync backup among
// placement, and how many: moving them off node would lose acknowledged
// writes. A tenant without replicas is a cache: its slots move anyway.
func StrandedSlots(maps map[string]*Map, node string, placement []string) (tenant string, n int) {
	for _, t := range sortedTenants(maps) {
		m := maps[t]
		if m.Replicas == 0 {
			continue
		}
		c := 0
		for _, s := range m.Slots {
			if s.Primary == node && !slices.ContainsFunc(s.InSync, func(b string) bool { return slices.Contains(placement, b) }) {
				c++
			}
		}
		if c > 0 {
			return t, c
		}
	}
	return "", 0
}

func sortedTenants(maps map[string]*Map) []string {
	ts := make([]string, 0, len(maps))
	for t := range maps {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// Waiting returns the first draining node (by name) whose slots of m
// cannot move yet (StrandedSlots over placement), and how many: the leader
// re-places the tenant once their backups are in sync.
func (m *Members) Waiting(tenant string, mp *Map) (node string, n int) {
	placement := m.Placement()
	for _, nd := range m.Nodes {
		if nd.State != Draining {
			continue
		}
		if _, c := StrandedSlots(map[string]*Map{tenant: mp}, nd.Name, placement); c > 0 {
			return nd.Name, c
		}
	}
	return "", 0
}

// KeepDraining returns next (a placement of prev over the active nodes)
// with, in every slot that has a backup not in sync yet, the copies next
// dropped from draining nodes that were in sync in prev (its old primary,
// if the primary moved to an in-sync backup, and its in-sync backups)
// kept as extra in-sync backups: a slot has no fewer copies with every
// acknowledged write during a drain than before it. DropDrained later
// removes them once the new backups are in sync.
func KeepDraining(prev, next *Map, draining []string) *Map {
	if prev == nil || len(draining) == 0 {
		return next
	}
	c := next.Clone()
	for i := range c.Slots {
		s, ps := &c.Slots[i], prev.Slots[i]
		if len(s.InSync) == len(s.Backups) {
			continue // nothing to wait for
		}
		var keep []string
		if ps.Primary != s.Primary && slices.Contains(ps.InSync, s.Primary) {
			keep = append(keep, ps.Primary)
		}
		keep = append(keep, ps.InSync...)
		for _, d := range keep {
			if slices.Contains(draining, d) && d != s.Primary && !slices.Contains(s.Backups, d) {
				s.Backups = append(s.Backups, d)
				s.InSync = append(s.InSync, d)
			}
		}
	}
	return c
}

// DropDrained returns m without the draining nodes' extra backups (see
// KeepDraining) of the slots whose other backups are all in sync; changed
// is false if none was dropped.
func DropDrained(m *Map, draining []string) (next *Map, changed bool) {
	next = m
	for i, s := range m.Slots {
		extra := 0
		others := true
		for _, b := range s.Backups {
			switch {
			case slices.Contains(draining, b):
				extra++
			case !slices.Contains(s.InSync, b):
				others = false
			}
		}
		if extra == 0 || !others || len(s.Backups)-extra < min(m.Replicas, len(m.Nodes)-1) {
			continue
		}
		if !changed {
			next, changed = m.Clone(), true
		}
		ns := &next.Slots[i]
		drop := func(b string) bool { return slices.Contains(draining, b) }
		ns.Backups = slices.DeleteFunc(ns.Backups, drop)
		ns.InSync = slices.DeleteFunc(ns.InSync, drop)
	}
	return next, changed
}

// Draining are the draining nodes.
func (m *Members) Draining() []string {
	var out []string
	for _, n := range m.Nodes {
		if n.State == Draining {
			out = append(out, n.Name)
		}
	}
	return out
}
