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
// to miss), each node's primaries' backups spread over the other nodes
// (see spreadLayout). Otherwise Place computes the target placement (see target:
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
		for i, t := range spreadLayout(nodes, replicas) {
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
// ranNowhere), never applied by one backup and refused by another (a write
// the new primary applied but whose answer was lost, undone at the old
// primary, is made equal by pkg/kvs's takeover resync). The
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
//   - a slot whose primary is no longer a member (drained, removed, dead)
//     goes to its in-sync backup furthest under its share, over it if need
//     be (it has every acknowledged write, and the slot keeps as many
//     in-sync copies);
//   - every other primary stays where it is, but a node over its share
//     (counting what it took above) lets go of the excess: first slots
//     with an in-sync backup on a node under its share (no rebuild), then
//     with a backup out of sync there (rebuilt anyway), then any (to the
//     node furthest under its share: one new copy, the old primary stays
//     its backup);
//   - the old primary of a slot whose primary moves is its backup (the two
//     swap), over its node's share if need be; other backups stay where
//     they are within their node's share, in-sync ones first; the rest go
//     to the nodes with the fewest, the slots with the fewest choices
//     first; a node still over its share hands new copies on along a chain
//     of slots to one under it (no more rebuilds), then kept ones.
//
// So a drain rebuilds one copy per slot copy the draining node held when
// the other nodes can take them evenly (Place spreads a new tenant's
// backups so that they can), and a node back after a failover or added
// takes back copies it holds.
func target(prev *Map, nodes []string, replicas int) []Slot {
	out := make([]Slot, Count)
	member := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		member[n] = true
	}
	r := min(replicas, len(nodes)-1)

	// Primaries.
	prevP := map[string]int{}
	for _, s := range prev.Slots {
		prevP[s.Primary]++
	}
	quota := quotas(Count, nodes, prevP)
	load := map[string]int{}
	assign := func(i int, to string) {
		out[i].Primary = to
		load[to]++
	}
	// The least loaded of cands that are members (relative to their
	// quota: the furthest under it), if underQuota only those under it;
	// "" if none.
	pick := func(cands []string, underQuota bool) string {
		to := ""
		for _, b := range cands {
			if member[b] && (!underQuota || load[b] < quota[b]) && (to == "" || load[b]-quota[b] < load[to]-quota[to]) {
				to = b
			}
		}
		return to
	}
	var kept []int
	for i, s := range prev.Slots {
		if member[s.Primary] {
			kept = append(kept, i)
			load[s.Primary]++
		}
	}
	// A slot whose primary left the members (drained, removed, dead) goes
	// to its in-sync backup furthest under its share, over it if need be
	// (it has every acknowledged write and needs no rebuild; with one
	// replica it is, but while a rebuild is under way, the slot's sole
	// backup, see Advance); that node then lets go of primaries of its own
	// below. Without one, to a backup
	// under its share, else the least loaded.
	for i, s := range prev.Slots {
		if member[s.Primary] {
			continue
		}
		to := pick(s.InSync, false)
		if to == "" {
			to = pick(s.Backups, true)
		}
		if to == "" {
			if to = leastLoaded(nodes, load, quota, nil); to == "" {
				to = leastLoaded(nodes, load, nil, nil)
			}
		}
		assign(i, to)
	}
	// A member over its share lets go of the excess, each slot to a node
	// under its share: first the slots with an in-sync copy on such a
	// node (no rebuild), then those with a copy out of sync there (being
	// rebuilt anyway), then any (a new copy). Slots are taken in order
	// across the nodes over their share, each tier before the next, so
	// that every node under its share gets first the slots it holds.
	excess := func(n string) bool { return load[n] > quota[n] }
	moved := make([]bool, Count)
	for tier := range 3 {
		for _, i := range kept {
			s := prev.Slots[i]
			if moved[i] || !excess(s.Primary) {
				continue
			}
			var to string
			switch tier {
			case 0:
				to = pick(s.InSync, true)
			case 1:
				to = pick(s.Backups, true)
			default:
				to = leastLoaded(nodes, load, quota, []string{s.Primary})
			}
			if to == "" {
				continue
			}
			load[s.Primary]--
			moved[i] = true
			assign(i, to)
		}
	}
	for _, i := range kept {
		if !moved[i] {
			out[i].Primary = prev.Slots[i].Primary
		}
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
	// The slots that lack backups get them on the nodes under their share
	// with the fewest, the slots with the fewest such nodes to choose from
	// first (the rest is evened out below).
	var lack []int
	choice := make([]int, Count)
	for i := range out {
		if len(out[i].Backups) < r {
			lack = append(lack, i)
			for _, n := range nodes {
				if bload[n] < bquota[n] && !slices.Contains(holders(out[i]), n) {
					choice[i]++
				}
			}
		}
	}
	slices.SortStableFunc(lack, func(a, b int) int { return cmp.Compare(choice[a], choice[b]) })
	for _, i := range lack {
		s := &out[i]
		for len(s.Backups) < r {
			excl := holders(*s)
			b := leastLoaded(nodes, bload, bquota, excl)
			if b == "" {
				b = leastLoaded(nodes, bload, nil, excl)
			}
			s.Backups = append(s.Backups, b)
			bload[b]++
		}
	}
	// A node over its share hands backups to one under it: first those
	// that are new copies anyway (the one under its share takes the
	// rebuild instead), then any.
	for shiftNewBackups(out, prev, swapped, nodes, bload, bquota) {
	}
	for i := range out {
		evenBackups(&out[i], swapped[i], nodes, bload, bquota)
	}
	return out
}

// shiftNewBackups moves one backup's worth of load from a node over its
// share (bload over bquota) to one under it along a chain of new copies
// (backups prev lacks, to be rebuilt anyway): in each slot of the chain a
// new copy goes to the chain's next node, which does not hold the slot,
// so that no more copies are rebuilt than before. It reports whether it
// found such a chain.
func shiftNewBackups(out []Slot, prev *Map, swapped []bool, nodes []string, bload, bquota map[string]int) bool {
	type edge struct {
		from string
		slot int
	}
	for _, o := range nodes {
		if bload[o] <= bquota[o] {
			continue
		}
		parent := map[string]edge{o: {}}
		queue := []string{o}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			for i := range out {
				s := &out[i]
				j := slices.Index(s.Backups, x)
				if j < 0 || (j == 0 && swapped[i]) || slices.Contains(holders(prev.Slots[i]), x) {
					continue
				}
				for _, w := range nodes {
					if _, seen := parent[w]; seen || slices.Contains(holders(*s), w) {
						continue
					}
					parent[w] = edge{x, i}
					if bload[w] >= bquota[w] {
						queue = append(queue, w)
						continue
					}
					// Found: apply the chain from its end.
					bload[w]++
					bload[o]--
					for at := w; at != o; at = parent[at].from {
						e := parent[at]
						b := out[e.slot].Backups
						b[slices.Index(b, e.from)] = at
					}
					return true
				}
			}
		}
	}
	return false
}

// evenBackups hands s's backups on nodes over their share (bload over
// bquota) to nodes under it that do not hold s, but for a swapped old
// primary (Backups[0]).
func evenBackups(s *Slot, swapped bool, nodes []string, bload, bquota map[string]int) {
	for j, b := range s.Backups {
		if bload[b] <= bquota[b] || (j == 0 && swapped) {
			continue
		}
		u := leastLoaded(nodes, bload, bquota, holders(*s))
		if u == "" {
			continue
		}
		s.Backups[j] = u
		bload[b]--
		bload[u]++
	}
}

// holders are the nodes that hold a slot: its primary and backups.
func holders(s Slot) []string { return append([]string{s.Primary}, s.Backups...) }

// spreadLayout is a new tenant's placement over nodes: the primaries dealt
// in turn, and each node's primaries' backups spread evenly over the other
// nodes (each backup on the node with the fewest backups of that primary
// yet, then the fewest backups), then evened out across the nodes. When a
// node dies or is drained, its primaries go to in-sync backups on every
// other node, not all to one partner (which would end with twice its share
// of primaries, and evening that out rebuilds a copy per slot moved).
func spreadLayout(nodes []string, replicas int) []Slot {
	out := make([]Slot, Count)
	n := len(nodes)
	r := min(replicas, n-1)
	bload := make([]int, n)
	pair := make([][]int, n) // primary → backup → slots
	for p := range pair {
		pair[p] = make([]int, n)
	}
	at := make([][]int, Count) // the slots' backups, as indexes of nodes
	for i := range out {
		p := i % n
		for range r {
			best := -1
			for d := 1; d < n; d++ {
				x := (p + d) % n
				if slices.Contains(at[i], x) {
					continue
				}
				if best < 0 || pair[p][x] < pair[p][best] || (pair[p][x] == pair[p][best] && bload[x] < bload[best]) {
					best = x
				}
			}
			at[i] = append(at[i], best)
			bload[best]++
			pair[p][best]++
		}
	}
	// Even out the backups: the node with the most hands one to the node
	// with the fewest, in the slot whose primary has the fewest backups
	// on the latter relative to the former.
	for r > 0 {
		hi, lo := 0, 0
		for x := range bload {
			if bload[x] > bload[hi] {
				hi = x
			}
			if bload[x] < bload[lo] {
				lo = x
			}
		}
		if bload[hi]-bload[lo] <= 1 {
			break
		}
		best, bestK := -1, 0
		for i := range at {
			p := i % n
			if p == lo || !slices.Contains(at[i], hi) || slices.Contains(at[i], lo) {
				continue
			}
			if k := pair[p][lo] - pair[p][hi]; best < 0 || k < bestK {
				best, bestK = i, k
			}
		}
		if best < 0 {
			break
		}
		p := best % n
		at[best][slices.Index(at[best], hi)] = lo
		bload[hi]--
		bload[lo]++
		pair[p][hi]--
		pair[p][lo]++
	}
	for i := range out {
		out[i].Primary = nodes[i%n]
		for _, x := range at[i] {
			out[i].Backups = append(out[i].Backups, nodes[x])
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
