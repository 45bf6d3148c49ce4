package slots

import (
	"fmt"
	"slices"
	"testing"
)

// drainAsLeader drains the nodes of draining from m as pkg/kvs's raft
// leader does (PlaceMembers: Place over the active nodes, KeepDraining,
// then DropDrained; every monitor interval Rebalance, which advances the
// moves and plans anew every fifth), the primaries rebuilding their new
// backups between the leader's steps. Every map the leader commits is
// checked (checkStep, and a moved primary went to an in-sync backup; with
// one replica, to the slot's sole backup). It returns the settled map and
// the copies placed on nodes that lacked them (each one a rebuild).
func drainAsLeader(t *testing.T, m *Map, draining []string, rebuild func(*Map)) (end *Map, added int) {
	t.Helper()
	var active []string
	member := map[string]bool{}
	for _, n := range m.Nodes {
		if !slices.Contains(draining, n) {
			active = append(active, n)
			member[n] = true
		}
	}
	step := 0
	commit := func(next *Map) {
		t.Helper()
		step++
		checkStep(t, fmt.Sprintf("step %d", step), m, next, member)
		for i, s := range next.Slots {
			o := m.Slots[i]
			for _, h := range holders(s) {
				if !slices.Contains(holders(o), h) {
					added++
				}
			}
			if s.Primary == o.Primary || m.Replicas == 0 {
				continue
			}
			if !slices.Contains(o.InSync, s.Primary) {
				t.Fatalf("step %d: slot %d: primary %s handed to %s, not an in-sync backup %v", step, i, o.Primary, s.Primary, o.InSync)
			}
			if m.Replicas == 1 && !slices.Equal(o.Backups, []string{s.Primary}) {
				t.Fatalf("step %d: slot %d: primary %s handed to %s with backups %v", step, i, o.Primary, s.Primary, o.Backups)
			}
		}
		m = next
	}
	for tick := range 1000 {
		before := m
		if slices.Equal(m.Nodes, active) {
			if next, changed := DropDrained(m, draining); changed {
				commit(next)
			}
		} else {
			next, err := Place(m, active, m.Replicas, m.Replication)
			if err != nil {
				t.Fatal(err)
			}
			commit(KeepDraining(m, next, draining))
		}
		if m.Moving() > 0 || tick%5 == 0 {
			next, changed, err := Rebalance(m)
			if err != nil {
				t.Fatal(err)
			}
			if changed {
				commit(next)
			}
		}
		synced := m.Clone()
		rebuild(synced)
		if m == before && string(synced.Encode()) == string(m.Encode()) && tick%5 == 0 {
			return m, added
		}
		m = synced
	}
	t.Fatalf("drain not done after 1000 ticks: %d slots moving", m.Moving())
	return nil, 0
}

// pairedLayout is a tenant placed as Place placed new tenants before their
// backups were spread: with one replica, each node's backups all on one
// partner (st1 and st2, st3 and st4).
func pairedLayout(nodes []string) *Map {
	m := &Map{Replicas: 1, Replication: Sync, Nodes: nodes, Slots: make([]Slot, Count)}
	for i := range m.Slots {
		p, b := nodes[i%len(nodes)], nodes[(i%len(nodes))^1]
		m.Slots[i] = Slot{Primary: p, Backups: []string{b}, InSync: []string{b}, Epoch: 1}
	}
	return m
}

// TestDrainCopies: a drain moves each of the draining node's copies once
// (a new copy per slot copy it held, rebuilt while it still serves), to
// nodes that end even within one of their share of primaries and of
// backups; a moved primary goes to an in-sync backup (with one replica
// its sole backup); no slot ever has fewer in-sync copies.
func TestDrainCopies(t *testing.T) {
	layouts := []struct {
		name string
		make func(t *testing.T, nodes []string, replicas int) *Map
	}{
		{"new", func(t *testing.T, nodes []string, replicas int) *Map {
			return mapOver(t, nodes, replicas)
		}},
		{"added", func(t *testing.T, nodes []string, replicas int) *Map {
			m := mapOver(t, nodes[:len(nodes)-1], replicas)
			m, _ = Place(m, nodes, replicas, Sync)
			var n int
			return settle(t, m, rebuildOnePair, &n)
		}},
		{"failed over and back", func(t *testing.T, nodes []string, replicas int) *Map {
			m, _ := Failover(mapOver(t, nodes, replicas), map[string]bool{"st2": true})
			var n int
			return settle(t, m, rebuildOnePair, &n)
		}},
	}
	for _, lay := range layouts {
		for _, n := range []int{3, 4, 5} {
			for _, replicas := range []int{0, 1, 2} {
				for _, d := range []string{"st1", fmt.Sprintf("st%d", n)} {
					t.Run(fmt.Sprintf("%s/%d nodes/r%d/drain %s", lay.name, n, replicas, d), func(t *testing.T) {
						start := lay.make(t, nodesN(n), replicas)
						held := heldBy(start, d)
						end, added := drainAsLeader(t, start, []string{d}, rebuildOnePair)
						t.Logf("%s held %d slot copies; %d rebuilt", d, held, added)
						if added > held {
							t.Errorf("%d copies rebuilt, %s held %d", added, d, held)
						}
						if c := heldBy(end, d); c != 0 {
							t.Errorf("%s still holds %d slots", d, c)
						}
						checkEven(t, end)
					})
				}
			}
		}
	}
	// The layout of a tenant placed before backups were spread: st4's
	// partner st3 holds every slot st4 does, so it takes none of their
	// new copies and must take others' to end at its share: the fewest
	// copies a drain can rebuild is held + share - st3's copies (682 of
	// 2,048 copies over three nodes; it used to rebuild 1,023).
	t.Run("paired/4 nodes/r1/drain st4", func(t *testing.T) {
		start := pairedLayout(nodesN(4))
		held, partner := heldBy(start, "st4"), heldBy(start, "st3")
		end, added := drainAsLeader(t, start, []string{"st4"}, rebuildOnePair)
		least := held + 2*Count/3 - partner
		t.Logf("st4 held %d slot copies; %d rebuilt, %d at least", held, added, least)
		if added > least+1 {
			t.Errorf("%d copies rebuilt, %d would do", added, least)
		}
		checkEven(t, end)
	})
}

// heldBy is the number of slots node holds (as primary or backup).
func heldBy(m *Map, node string) int {
	n := 0
	for _, s := range m.Slots {
		if slices.Contains(holders(s), node) {
			n++
		}
	}
	return n
}

// TestPlaceNewSpreadsBackups: a new tenant's backups of each node's
// primaries are spread evenly over the other nodes (within one), so a
// node drained or failed over hands its primaries to every other node.
func TestPlaceNewSpreadsBackups(t *testing.T) {
	for n := 2; n <= 9; n++ {
		for _, replicas := range []int{1, 2} {
			m := mapOver(t, nodesN(n), replicas)
			pairs := map[string]map[string]int{}
			for _, s := range m.Slots {
				if pairs[s.Primary] == nil {
					pairs[s.Primary] = map[string]int{}
				}
				for _, b := range s.Backups {
					pairs[s.Primary][b]++
				}
			}
			for p, bs := range pairs {
				var others []string
				for _, x := range nodesN(n) {
					if x != p {
						others = append(others, x)
					}
				}
				if d := spread(bs, others); d > 1 {
					t.Errorf("%d nodes r%d: %s's backups %v: spread %d", n, replicas, p, bs, d)
				}
			}
		}
	}
}
