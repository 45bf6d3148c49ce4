package slots

import (
	"cmp"
	"errors"
	"slices"
)

// Place returns the placement of a tenant over nodes (the storage nodes
// that are members, alive or not), starting from prev (nil for a new
// tenant): every slot gets a primary and min(replicas, len(nodes)-1)
// backups on distinct nodes, each node about the same number of primaries
// and of backups, and as few slots as possible move:
//
//   - a primary stays where it is while its node is a member and under its
//     share; a primary moves only to one of the slot's in-sync backups (the
//     two swap, and no acknowledged write is lost) or, for a tenant without
//     replicas (a cache), to any node (its items there are lost, as a cache's
//     may be); otherwise it stays over its share until a backup it can move
//     to is in sync (rebuilt), and a later Place moves it;
//   - a slot whose primary is no longer a member goes to an in-sync backup
//     if it has one, else to the least loaded node;
//   - backups stay where they are within their node's share; new backups
//     are not in sync until rebuilt (those of a new tenant, placed with
//     prev nil, are: there is nothing to miss).
//
// Every slot whose primary changes gets one new epoch, above every epoch of
// prev. Place is pure: the raft leader calls it and commits the result by
// compare-and-set.
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
	fresh := prev == nil
	if fresh {
		prev = &Map{Slots: make([]Slot, Count)}
	}
	member := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		member[n] = true
	}
	r := min(replicas, len(nodes)-1)
	epoch := prev.MaxEpoch() + 1

	// Primaries.
	var prevP map[string]int = map[string]int{}
	for _, s := range prev.Slots {
		prevP[s.Primary]++
	}
	quota := quotas(Count, nodes, prevP)
	load := map[string]int{}
	var todo []int
	for i, s := range prev.Slots {
		if member[s.Primary] && load[s.Primary] < quota[s.Primary] {
			m.Slots[i] = Slot{Primary: s.Primary, Epoch: s.Epoch}
			load[s.Primary]++
			continue
		}
		todo = append(todo, i)
	}
	for _, i := range todo {
		s := prev.Slots[i]
		// An in-sync backup that is a member and under its share.
		var to string
		for _, b := range s.InSync {
			if member[b] && load[b] < quota[b] && (to == "" || load[b] < load[to]) {
				to = b
			}
		}
		if to == "" && !member[s.Primary] {
			// The primary leaves: any in-sync backup that stays, over
			// its share if need be (it has every acknowledged write).
			for _, b := range s.InSync {
				if member[b] && (to == "" || load[b] < load[to]) {
					to = b
				}
			}
		}
		switch {
		case to != "":
		case member[s.Primary] && replicas > 0:
			to = s.Primary // no safe move yet: stays over its share
		default:
			if to = leastLoaded(nodes, load, quota, nil); to == "" {
				// Every node is full (a kept primary went over): the least loaded.
				to = leastLoaded(nodes, load, nil, nil)
			}
		}
		m.Slots[i].Primary = to
		m.Slots[i].Epoch = s.Epoch
		if to != s.Primary {
			m.Slots[i].Epoch = epoch
		}
		load[to]++
	}

	// Backups.
	if r == 0 {
		return m, nil
	}
	prevB := map[string]int{}
	for _, s := range prev.Slots {
		for _, b := range s.Backups {
			prevB[b]++
		}
	}
	bquota := quotas(Count*r, nodes, prevB)
	bload := map[string]int{}
	for i := range m.Slots {
		s, ps := &m.Slots[i], prev.Slots[i]
		// Candidates in order: in-sync backups, other backups, the old
		// primary if it moved (it has every acknowledged write).
		var cands []string
		cands = append(cands, ps.InSync...)
		cands = append(cands, ps.Backups...)
		if ps.Primary != s.Primary && ps.Primary != "" {
			cands = append(cands, ps.Primary)
		}
		for _, b := range cands {
			if len(s.Backups) == r {
				break
			}
			if !member[b] || b == s.Primary || slices.Contains(s.Backups, b) || bload[b] >= bquota[b] {
				continue
			}
			s.Backups = append(s.Backups, b)
			bload[b]++
			inSync := slices.Contains(ps.InSync, b) || (b == ps.Primary && s.Primary != ps.Primary && slices.Contains(ps.InSync, s.Primary))
			if inSync {
				s.InSync = append(s.InSync, b)
			}
		}
	}
	for i := range m.Slots {
		s := &m.Slots[i]
		for len(s.Backups) < r {
			excl := append([]string{s.Primary}, s.Backups...)
			b := leastLoaded(nodes, bload, bquota, excl)
			if b == "" {
				b = leastLoaded(nodes, bload, nil, excl)
			}
			s.Backups = append(s.Backups, b)
			if fresh {
				s.InSync = append(s.InSync, b) // a new tenant has no data to miss
			}
			bload[b]++
		}
	}
	// A node over its share hands backups to one under it (a new backup,
	// out of sync until rebuilt).
	for i := range m.Slots {
		s := &m.Slots[i]
		for j, b := range s.Backups {
			if bload[b] <= bquota[b] {
				continue
			}
			u := leastLoaded(nodes, bload, bquota, append([]string{s.Primary}, s.Backups...))
			if u == "" {
				continue
			}
			s.Backups[j] = u
			s.InSync = slices.DeleteFunc(s.InSync, func(x string) bool { return x == b })
			bload[b]--
			bload[u]++
		}
	}
	return m, nil
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
// primary and stays unavailable rather than lose acknowledged writes.
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
		s.Primary, s.Epoch = to, epoch
		changed = true
	}
	return c, changed
}
