package slots

import (
	"cmp"
	"errors"
	"slices"
)

// Place returns the placement of a tenant over nodes (the storage nodes
// that are members, alive or not), starting from prev (nil for a new
// tenant). Place is pure: the raft leader calls it and commits the result
// by compare-and-set.
//
// A new tenant is placed at once, every backup in sync (there is nothing
// to miss). Otherwise Place computes the target placement (see target:
// every slot a primary and min(replicas, len(nodes)-1) backups on
// distinct nodes, each node within one of its share of primaries and of
// backups, as few slots moved as possible) and starts the moves towards
// it: each slot that differs gets Next, the nodes it lacks join as
// backups out of sync (to be rebuilt), and Advance carries the moves as
// far as they go now. A move is make-before-break: no copy in sync leaves
// a slot before its replacement is in sync, and a primary moves only to
// an in-sync backup (the two swap), so a slot never has fewer in-sync
// copies than before, and no acknowledged write is lost. Only a tenant
// without replicas (a cache) moves a primary at once to a node without
// its items (they are lost, as a cache's may be), and so does a slot whose
// primary left the members with no in-sync backup (its data is gone).
//
// While prev has moves under way over the same nodes, replicas and
// replication, Place only advances them: a plan is made from a settled
// map and carried out to its end, so that the rebalance converges rather
// than chases a target that shifts with every step. A change of nodes,
// replicas or replication plans anew from where the slots are.
//
// Every slot whose primary changes gets one new epoch, above every epoch
// of prev.
func Place(prev *Map, nodes []string, replicas int, replication string) (*Map, error) {
	nodes = slices.Clone(nodes)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	if len(nodes) == 0 || nodes[0] == "" {
		return nil, errors.New("slots: place: no storage nodes")
	}
	m := &Map{Replicas: replicas, Replication: replication, Nodes: nodes, Slots: make([]Slot, Count)}
	if err := m.validateHeader(); err != nil {
		return nil, err
	}
	if prev == nil {
		for i, t := range target(&Map{Slots: make([]Slot, Count)}, nodes, replicas) {
			m.Slots[i] = Slot{Primary: t.Primary, Backups: t.Backups, InSync: slices.Clone(t.Backups), Epoch: 1}
		}
		return m, nil
	}
	if prev.Moving() > 0 && prev.Replicas == replicas && prev.Replication == replication && slices.Equal(prev.Nodes, nodes) {
		next, _ := Advance(prev)
		return next, nil
	}
	member := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		member[n] = true
	}
	epoch := prev.MaxEpoch() + 1
	for i, t := range target(prev, nodes, replicas) {
		ps := prev.Slots[i]
		s := Slot{Primary: ps.Primary, Backups: slices.Clone(ps.Backups), InSync: slices.Clone(ps.InSync), Epoch: ps.Epoch}
		switch {
		case t.Primary == s.Primary && sameSet(t.Backups, s.Backups):
			// In place (its backups may still be rebuilt).
		case t.Primary != s.Primary && !slices.Contains(s.InSync, t.Primary) &&
			(replicas == 0 || s.Primary == "" || !member[s.Primary]):
			// A cache, or a slot whose data left with its primary: no
			// copy to keep.
			s = Slot{Primary: t.Primary, Backups: t.Backups, Epoch: epoch}
			for _, b := range t.Backups {
				if slices.Contains(ps.InSync, b) {
					s.InSync = append(s.InSync, b)
				}
			}
		default:
			s.Next = append([]string{t.Primary}, t.Backups...)
		}
		m.Slots[i] = s
	}
	for i := range m.Slots {
		advanceSlot(&m.Slots[i], epoch)
	}
	return m, nil
}

// Moving is the number of slots with a move under way.
func (m *Map) Moving() int {
	n := 0
	for _, s := range m.Slots {
		if len(s.Next) > 0 {
			n++
		}
	}
	return n
}

// Advance returns m with every move under way (Slot.Next) carried as far
// as it goes now, in this order for each slot:
//
//   - make: every node of Next holds the slot (a node it lacks joins as a
//     backup out of sync, which its primary then rebuilds);
//   - a backup that is neither in Next nor in sync leaves (it counts for
//     nothing, and its rebuild would be wasted);
//   - shed: while the slot has more in-sync copies than its move wants
//     (len(Next): the primary and replicas backups), a backup in sync that
//     is not in Next leaves;
//   - hand over, unless a copy was shed in this step: once Next[0] is an
//     in-sync backup, it becomes the primary under a new epoch and the old
//     primary takes its place as an in-sync backup (it has every
//     acknowledged write), so the slot keeps as many in-sync copies;
//   - break, not in the step of a hand-over: once the primary is Next[0]
//     and every other node of Next is in sync, the slot's backups are
//     Next[1:] and the move is done.
//
// The hand-over waits for the commit after a shed so that a slot with one
// replica changes its primary with no other backup than the new primary:
// a write the old primary ran meanwhile either ran there too or, refused
// under the newer epoch, ran nowhere and is sent again (pkg/kvs's
// ranNowhere), never applied by one backup and refused by another. The
// break waits for the commit after a hand-over, so that the nodes that
// forward requests see one more map soon after it (pkg/kvs's retrySlot
// sends again at once under a newer map).
//
// changed is false if nothing moved. The raft leader calls it (through
// Place and Rebalance) and commits the result by compare-and-set.
func Advance(m *Map) (next *Map, changed bool) {
	c := m.Clone()
	epoch := m.MaxEpoch() + 1
	for i := range c.Slots {
		if advanceSlot(&c.Slots[i], epoch) {
			changed = true
		}
	}
	if !changed {
		return m, false
	}
	return c, true
}

// advanceSlot carries s's move one step further (see Advance).
func advanceSlot(s *Slot, epoch uint64) (changed bool) {
	if len(s.Next) == 0 {
		return false
	}
	for _, n := range s.Next {
		if n != s.Primary && !slices.Contains(s.Backups, n) {
			s.Backups = append(s.Backups, n)
			changed = true
		}
	}
	n := len(s.Backups)
	s.Backups = slices.DeleteFunc(s.Backups, func(b string) bool {
		return !slices.Contains(s.Next, b) && !slices.Contains(s.InSync, b)
	})
	changed = changed || n != len(s.Backups)
	shed := false
	for j := len(s.Backups) - 1; j >= 0 && s.Primary != "" && 1+len(s.InSync) > len(s.Next); j-- {
		if b := s.Backups[j]; !slices.Contains(s.Next, b) {
			s.Backups = slices.Delete(s.Backups, j, j+1)
			s.InSync = slices.DeleteFunc(s.InSync, func(x string) bool { return x == b })
			shed = true
		}
	}
	changed = changed || shed
	handed := false
	if to := s.Next[0]; !shed && s.Primary != to && slices.Contains(s.InSync, to) {
		j := slices.Index(s.Backups, to)
		s.InSync = slices.DeleteFunc(s.InSync, func(b string) bool { return b == to })
		if s.Primary != "" {
			s.Backups[j] = s.Primary
			s.InSync = append(s.InSync, s.Primary)
		} else {
			s.Backups = slices.Delete(s.Backups, j, j+1)
		}
		s.Primary, s.Epoch = to, epoch
		changed, handed = true, true
	}
	if !handed && s.Primary == s.Next[0] && !slices.ContainsFunc(s.Next[1:], func(b string) bool { return !slices.Contains(s.InSync, b) }) {
		s.Backups, s.InSync, s.Next = slices.Clone(s.Next[1:]), slices.Clone(s.Next[1:]), nil
		if len(s.Backups) == 0 {
			s.Backups, s.InSync = nil, nil
		}
		changed = true
	}
	return changed
}

// Rebalance returns the leader's next step for m over its own nodes,
// replicas and replication (see Place): the moves under way advanced, or,
// if none is, the moves towards an even spread started. changed is false
// if m is already there.
func Rebalance(m *Map) (next *Map, changed bool, err error) {
	next, err = Place(m, m.Nodes, m.Replicas, m.Replication)
	if err != nil {
		return nil, false, err
	}
	if string(next.Encode()) == string(m.Encode()) {
		return m, false, nil
	}
	return next, true, nil
}

// sameSet reports whether a and b hold the same nodes.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, n := range a {
		if !slices.Contains(b, n) {
			return false
		}
	}
	return true
}

// target returns where prev's slots should be over nodes: each a primary
// and min(replicas, len(nodes)-1) backups on distinct nodes (Primary and
// Backups only), each node within one of its share of primaries and of
// backups, as few slots as possible moved from prev:
//
//   - a primary stays where it is while its node is a member and under its
//     share (a node over it lets go first of the slots with a copy, in
//     sync first, on a node under its share); one that moves goes to one
//     of the slot's in-sync backups if one is under its share (no rebuild
//     needed), else to another of its backups under its share, else to
//     the node with the fewest;
//   - a slot whose primary is no longer a member goes to an in-sync backup
//     if it has one (over its share if need be: it has the data);
//   - the old primary of a slot whose primary moves is its backup (the two
//     swap), over its node's share if need be; other backups stay where
//     they are within their node's share, in-sync ones first; the rest go
//     to the nodes with the fewest.
func target(prev *Map, nodes []string, replicas int) []Slot {
	out := make([]Slot, Count)
	member := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		member[n] = true
	}
	r := min(replicas, len(nodes)-1)

	// Primaries.
	var prevP map[string]int = map[string]int{}
	for _, s := range prev.Slots {
		prevP[s.Primary]++
	}
	quota := quotas(Count, nodes, prevP)
	load := map[string]int{}
	// A node over its share keeps first the slots that have no copy on a
	// node under its share (moving them would need a new copy), then
	// those with one out of sync, and lets go of those with one in sync:
	// as few new copies as possible.
	under := func(n string) bool { return member[n] && prevP[n] < quota[n] }
	rank := func(s Slot) int {
		switch {
		case slices.ContainsFunc(s.InSync, under):
			return 0
		case slices.ContainsFunc(s.Backups, under):
			return 1
		}
		return 2
	}
	order := make([]int, Count)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(rank(prev.Slots[b]), rank(prev.Slots[a])) })
	var todo []int
	for _, i := range order {
		s := prev.Slots[i]
		if member[s.Primary] && load[s.Primary] < quota[s.Primary] {
			out[i].Primary = s.Primary
			load[s.Primary]++
			continue
		}
		todo = append(todo, i)
	}
	slices.Sort(todo)
	pick := func(cands []string, underQuota bool) string {
		to := ""
		for _, b := range cands {
			if member[b] && (!underQuota || load[b] < quota[b]) && (to == "" || load[b] < load[to]) {
				to = b
			}
		}
		return to
	}
	for _, i := range todo {
		s := prev.Slots[i]
		to := pick(s.InSync, true)
		if to == "" && !member[s.Primary] {
			// The primary left: any in-sync backup that stays, over its
			// share if need be (it has every acknowledged write).
			to = pick(s.InSync, false)
		}
		if to == "" {
			to = pick(s.Backups, true)
		}
		if to == "" {
			if to = leastLoaded(nodes, load, quota, nil); to == "" {
				// Every node is full (a kept primary went over): the least loaded.
				to = leastLoaded(nodes, load, nil, nil)
			}
		}
		out[i].Primary = to
		load[to]++
	}

	// Backups.
	if r == 0 {
		return out
	}
	prevB := map[string]int{}
	for _, s := range prev.Slots {
		for _, b := range s.Backups {
			prevB[b]++
		}
	}
	bquota := quotas(Count*r, nodes, prevB)
	bload := map[string]int{}
	// A primary that moves stays the slot's backup, over its node's share
	// if need be: the two swap, and with one replica the slot changes
	// primary with no other backup than the new primary (see Advance). A
	// later rebalance evens the backups out.
	swapped := make([]bool, Count)
	for i := range out {
		s, ps := &out[i], prev.Slots[i]
		if ps.Primary != s.Primary && member[ps.Primary] {
			s.Backups = append(s.Backups, ps.Primary)
			bload[ps.Primary]++
			swapped[i] = true
		}
	}
	for i := range out {
		s, ps := &out[i], prev.Slots[i]
		// Candidates in order: in-sync backups, other backups.
		var cands []string
		cands = append(cands, ps.InSync...)
		cands = append(cands, ps.Backups...)
		for _, b := range cands {
			if len(s.Backups) == r {
				break
			}
			if !member[b] || b == s.Primary || slices.Contains(s.Backups, b) || bload[b] >= bquota[b] {
				continue
			}
			s.Backups = append(s.Backups, b)
			bload[b]++
		}
	}
	for i := range out {
		s := &out[i]
		for len(s.Backups) < r {
			excl := append([]string{s.Primary}, s.Backups...)
			b := leastLoaded(nodes, bload, bquota, excl)
			if b == "" {
				b = leastLoaded(nodes, bload, nil, excl)
			}
			s.Backups = append(s.Backups, b)
			bload[b]++
		}
	}
	// A node over its share hands backups to one under it.
	for i := range out {
		s := &out[i]
		for j, b := range s.Backups {
			if bload[b] <= bquota[b] || (j == 0 && swapped[i]) {
				continue
			}
			u := leastLoaded(nodes, bload, bquota, append([]string{s.Primary}, s.Backups...))
			if u == "" {
				continue
			}
			s.Backups[j] = u
			bload[b]--
			bload[u]++
		}
	}
	return out
}

// validateHeader checks the fields Place is given.
func (m *Map) validateHeader() error {
	c := *m
	c.Slots = make([]Slot, Count)
	return c.Validate()
}

// quotas deals total among nodes as evenly as possible; the nodes that get
// one more are those that held the most before (prev), so that fewer move.
func quotas(total int, nodes []string, prev map[string]int) map[string]int {
	order := slices.Clone(nodes)
	slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(prev[b], prev[a]) })
	q := make(map[string]int, len(nodes))
	for i, n := range order {
		q[n] = total / len(nodes)
		if i < total%len(nodes) {
			q[n]++
		}
	}
	return q
}

// leastLoaded returns the node with the lowest load (first by name on a
// tie) that is under its quota (any, if quota is nil) and not in excl; ""
// if none.
func leastLoaded(nodes []string, load, quota map[string]int, excl []string) string {
	best := ""
	for _, n := range nodes {
		if slices.Contains(excl, n) || (quota != nil && load[n] >= quota[n]) {
			continue
		}
		if best == "" || load[n] < load[best] {
			best = n
		}
	}
	return best
}

// Failover returns the map with every slot whose primary is in down given
// to one of its in-sync backups that is not down (the least loaded with
// primaries), under one new epoch, and every down node removed from the
// in-sync sets (it stays a backup, to be rebuilt when it returns: the
// demoted primary takes the promoted backup's place). A slot of a tenant
// without replicas moves to the least loaded live node (a cache: its items
// are lost); a slot with replicas but no live in-sync backup keeps its dead
// primary and stays unavailable rather than lose acknowledged writes. A
// slot failed over drops its move under way (Slot.Next), if any.
// changed is false if nothing had to change.
func Failover(m *Map, down map[string]bool) (next *Map, changed bool) {
	c := m.Clone()
	epoch := m.MaxEpoch() + 1
	load := map[string]int{}
	for _, s := range m.Slots {
		load[s.Primary]++
	}
	var live []string
	for _, n := range m.Nodes {
		if !down[n] {
			live = append(live, n)
		}
	}
	for i := range c.Slots {
		s := &c.Slots[i]
		n := len(s.InSync)
		s.InSync = slices.DeleteFunc(s.InSync, func(b string) bool { return down[b] })
		changed = changed || n != len(s.InSync)
		if s.Primary == "" || !down[s.Primary] {
			continue
		}
		to := ""
		for _, b := range s.InSync {
			if to == "" || load[b] < load[to] {
				to = b
			}
		}
		if to != "" {
			s.Backups[slices.Index(s.Backups, to)] = s.Primary
			s.InSync = slices.DeleteFunc(s.InSync, func(b string) bool { return b == to })
		} else if m.Replicas == 0 {
			if to = leastLoaded(live, load, nil, nil); to == "" {
				continue
			}
		} else {
			continue
		}
		load[s.Primary]--
		load[to]++
		// A move under way is dropped (its copies stay backups): the
		// next rebalance plans from where the slot is.
		s.Primary, s.Epoch, s.Next = to, epoch, nil
		changed = true
	}
	return c, changed
}
