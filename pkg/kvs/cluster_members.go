package kvs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/slots"
)

// Members reads the storage membership from the cluster state; ok is
// false while it has none (a cluster whose leader has not seeded it).
func Members(st cluster.Store) (m *slots.Members, version uint64, ok bool, err error) {
	e, found := st.Get(slots.MembersKey)
	if !found {
		return &slots.Members{}, 0, false, nil
	}
	m, err = slots.DecodeMembers(e.Value)
	if err != nil {
		return nil, 0, false, err
	}
	return m, e.Version, true, nil
}

// Maps reads every tenant's slot map from the cluster state (tenant →
// map).
func Maps(st cluster.Store) (map[string]*slots.Map, error) {
	out := map[string]*slots.Map{}
	for _, e := range st.List(slots.KeyPrefix) {
		m, err := slots.Decode(e.Value)
		if err != nil {
			return nil, fmt.Errorf("kvs: %s: %w", e.Key, err)
		}
		out[strings.TrimPrefix(e.Key, slots.KeyPrefix)] = m
	}
	return out, nil
}

// ChangeMembers read-modify-writes the storage membership by
// compare-and-set: change gets the current membership (seeded from
// storage, the file's storage nodes, if the state has none) and the slot
// maps, and returns the next one, nil for no change, or an error to give
// up (nothing is written). It returns the membership written.
func ChangeMembers(ctx context.Context, st cluster.Store, storage []string, change func(cur *slots.Members, maps map[string]*slots.Map) (*slots.Members, error)) (*slots.Members, error) {
	for {
		cur, ver, ok, err := Members(st)
		if err != nil {
			return nil, err
		}
		if !ok {
			cur = slots.SeedMembers(storage)
		}
		maps, err := Maps(st)
		if err != nil {
			return nil, err
		}
		next, err := change(cur, maps)
		if err != nil {
			return nil, err
		}
		if next == nil {
			if ok {
				return cur, nil
			}
			next = cur // the seed
		}
		_, err = st.Propose(ctx, cluster.Op{Key: slots.MembersKey, Value: next.Encode(), IfVersion: cluster.Version(ver)})
		if errors.Is(err, cluster.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kvs: storage membership: %w", err)
		}
		return next, nil
	}
}

// PlaceMembers, on the raft leader, places every tenant of tenants over
// the active storage nodes of the membership, whose map has none or
// differs in nodes, replicas or replication; a tenant with a draining
// node's slots that cannot move yet (a rebuild under way) waits for a
// later call. A draining node's in-sync copies stay extra backups until
// the slots' new backups are in sync (slots.KeepDraining), and a later
// call drops them (slots.DropDrained). It returns the tenants changed.
func PlaceMembers(ctx context.Context, st cluster.Store, mem *slots.Members, tenants []TenantPlacement) (placed []string, err error) {
	placement := mem.Placement()
	var errs []error
	for _, t := range tenants {
		if e, ok := st.Get(slots.Key(t.Tenant)); ok {
			m, err := slots.Decode(e.Value)
			if err == nil && m.Replicas == t.Replicas && m.Replication == t.Replication && slices.Equal(m.Nodes, placement) {
				// Placed: drop what draining nodes keep of slots whose new
				// backups are in sync.
				if _, changed := slots.DropDrained(m, mem.Draining()); changed {
					_, err := updateMap(ctx, st, t.Tenant, func(cur *slots.Map) (*slots.Map, error) {
						next, changed := slots.DropDrained(cur, mem.Draining())
						if !changed {
							return nil, nil
						}
						return next, nil
					})
					if err != nil {
						errs = append(errs, fmt.Errorf("kvs: %s: %w", t.Tenant, err))
					} else {
						placed = append(placed, t.Tenant)
					}
				}
				continue
			}
			if err == nil {
				if node, n := mem.Waiting(t.Tenant, m); n > 0 {
					errs = append(errs, fmt.Errorf("kvs: %s: %d slots of draining node %s wait for an in-sync backup", t.Tenant, n, node))
					continue
				}
			}
		}
		if _, err := placeTenant(ctx, st, t.Tenant, placement, mem.Draining(), t.Replicas, t.Replication); err != nil {
			errs = append(errs, err)
			continue
		}
		placed = append(placed, t.Tenant)
	}
	return placed, errors.Join(errs...)
}

// TenantPlacement is what the placement of a tenant needs of its
// configuration.
type TenantPlacement struct {
	Tenant      string
	Replicas    int
	Replication string
}

// MemberStatus is one storage node of the membership, with what the slot
// maps place on it (summed over the tenants), for `lbctl kvs status` and
// `lbctl node`.
type MemberStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Joined: the node published its peer address (its lbd runs, or ran).
	Joined    bool `json:"joined"`
	Primaries int  `json:"primaries"`
	Backups   int  `json:"backups"`
	// InSync are the backups that have every write; Backups - InSync are
	// being rebuilt (a node added: its rebuild's progress).
	InSync int `json:"in_sync"`
}

// MembersStatus returns the membership's active and draining nodes (a
// removed node is gone from the storage tier), sorted by name, and any
// node the maps still place slots on; nil while there is no membership.
func MembersStatus(st cluster.Store) ([]MemberStatus, error) {
	mem, _, ok, err := Members(st)
	if err != nil || !ok {
		return nil, err
	}
	maps, err := Maps(st)
	if err != nil {
		return nil, err
	}
	by := map[string]*MemberStatus{}
	for _, n := range mem.Nodes {
		by[n.Name] = &MemberStatus{Name: n.Name, State: n.State}
	}
	get := func(n string) *MemberStatus {
		if by[n] == nil {
			by[n] = &MemberStatus{Name: n, State: mem.State(n)}
		}
		return by[n]
	}
	for _, m := range maps {
		for _, s := range m.Slots {
			if s.Primary != "" {
				get(s.Primary).Primaries++
			}
			for _, b := range s.Backups {
				ms := get(b)
				ms.Backups++
				if slices.Contains(s.InSync, b) {
					ms.InSync++
				}
			}
		}
	}
	var out []MemberStatus
	for _, ms := range by {
		if ms.State == slots.Removed && ms.Primaries+ms.Backups == 0 {
			continue
		}
		_, ms.Joined = st.Get(NodeKey(ms.Name))
		out = append(out, *ms)
	}
	slices.SortFunc(out, func(a, b MemberStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// WriteMembers prints the storage nodes as `lbctl kvs status` and `lbctl
// node` show them; bars draws progress bars (for a terminal), else the
// progress is plain figures.
func WriteMembers(w io.Writer, ms []MemberStatus, bars bool) {
	fmt.Fprintf(w, "storage nodes:\n  %-16s %-9s %9s %8s %8s  %s\n", "node", "state", "primaries", "backups", "in-sync", "progress")
	for _, m := range ms {
		state := m.State
		if state == "" {
			state = "not-member"
		}
		progress := ""
		held := m.Primaries + m.Backups
		switch {
		case !m.Joined:
			progress = "not joined (is its lbd running?)"
		case m.State == slots.Draining && held == 0:
			progress = "drained: lbctl node remove " + m.Name
		case m.State == slots.Draining || m.State == slots.Removed:
			progress = fmt.Sprintf("moving off: %d slots left", held)
		case m.Backups > m.InSync:
			progress = "rebuilding " + bar(m.InSync, m.Backups, bars)
		}
		fmt.Fprintf(w, "  %-16s %-9s %9d %8d %8d  %s\n", m.Name, state, m.Primaries, m.Backups, m.InSync, progress)
	}
}

// bar shows done of all: a bar and the figures on a terminal, the
// figures alone otherwise.
func bar(done, all int, bars bool) string {
	pct := 100.0
	if all > 0 {
		pct = 100 * float64(done) / float64(all)
	}
	s := fmt.Sprintf("%d/%d (%.0f%%)", done, all, pct)
	if bars {
		full := min(int(pct/5), 20)
		s = "[" + strings.Repeat("#", full) + strings.Repeat(".", 20-full) + "] " + s
	}
	return s
}
