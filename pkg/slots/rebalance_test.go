package slots

import (
	"fmt"
	"slices"
	"testing"
)

// rebuildAll marks every backup in sync, as if every rebuild ended.
func rebuildAll(m *Map) { allInSync(m) }

// rebuildOnePair ends one rebuild: the backups on one node of the slots of
// one primary (the first pair out of sync), as a primary rebuilds one
// backup node at a time.
func rebuildOnePair(m *Map) {
	for _, s := range m.Slots {
		for _, b := range s.Backups {
			if slices.Contains(s.InSync, b) {
				continue
			}
			p := s.Primary
			for i := range m.Slots {
				x := &m.Slots[i]
				if x.Primary == p && slices.Contains(x.Backups, b) && !slices.Contains(x.InSync, b) {
					x.InSync = append(x.InSync, b)
				}
			}
			return
		}
	}
}

// settle runs the leader's rebalance (Rebalance, as the monitor's tick
// does) and the primaries' rebuilds in turn until nothing moves, checking
// every map committed (checkStep: no slot on a node twice, no slot with
// fewer in-sync copies than replicas+1 once it had them, primaries moved
// only to in-sync backups). It returns the settled map, and adds to added
// the copies it placed on nodes (each one a rebuild).
func settle(t *testing.T, m *Map, rebuild func(*Map), added *int) *Map {
	t.Helper()
	member := map[string]bool{}
	for _, n := range m.Nodes {
		member[n] = true
	}
	for step := range 400 {
		next, changed, err := Rebalance(m)
		if err != nil {
			t.Fatal(err)
		}
		checkStep(t, fmt.Sprintf("step %d", step), m, next, member)
		for i := range next.Slots {
			for _, h := range holders(next.Slots[i]) {
				if !slices.Contains(holders(m.Slots[i]), h) {
					*added++
				}
			}
		}
		for i, s := range next.Slots {
			// With one replica, the primary moves with no other backup
			// than the new primary (see Advance).
			if o := m.Slots[i]; m.Replicas == 1 && s.Primary != o.Primary && !slices.Equal(o.Backups, []string{s.Primary}) {
				t.Fatalf("step %d: slot %d: primary %s handed to %s with backups %v", step, i, o.Primary, s.Primary, o.Backups)
			}
		}
		m = next
		synced := m.Clone()
		rebuild(synced)
		if !changed && string(synced.Encode()) == string(m.Encode()) {
			return m
		}
		m = synced
	}
	t.Fatalf("not settled after 400 steps: %d slots moving", m.Moving())
	return nil
}

// checkEven checks a settled map: nothing moving, every slot with its
// replicas in sync, each node within one of its fair share of primaries
// and of backups, and placing again moves nothing.
func checkEven(t *testing.T, m *Map) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if n := m.Moving(); n != 0 {
		t.Fatalf("%d slots still moving", n)
	}
	r := min(m.Replicas, len(m.Nodes)-1)
	for i, s := range m.Slots {
		if len(s.Backups) != r || len(s.InSync) != r {
			t.Fatalf("slot %d: %+v, want %d backups in sync", i, s, r)
		}
	}
	p, b := counts(m)
	n := len(m.Nodes)
	for _, x := range m.Nodes {
		if p[x] < Count/n || p[x] > (Count+n-1)/n {
			t.Errorf("primaries %v: %s not within one of %d/%d", p, x, Count, n)
		}
		if b[x] < Count*r/n || b[x] > (Count*r+n-1)/n {
			t.Errorf("backups %v: %s not within one of %d/%d", b, x, Count*r, n)
		}
	}
	if _, changed, _ := Rebalance(m); changed {
		t.Error("a settled map moves again")
	}
}

// newCopies returns the copies b places that a lacks, and the fewest that
// could do: what the nodes that hold more slots in b than in a gained.
func newCopies(a, b *Map) (added, needed int) {
	ha, hb := map[string]int{}, map[string]int{}
	for i := range a.Slots {
		for _, h := range holders(a.Slots[i]) {
			ha[h]++
		}
		for _, h := range holders(b.Slots[i]) {
			hb[h]++
			if !slices.Contains(holders(a.Slots[i]), h) {
				added++
			}
		}
	}
	for n, c := range hb {
		needed += max(0, c-ha[n])
	}
	return added, needed
}

// primaryMoves returns the slots whose primary differs from a to b, and
// the fewest that could: what the nodes that ended with fewer lost.
func primaryMoves(a, b *Map) (moved, needed int) {
	pa, _ := counts(a)
	pb, _ := counts(b)
	for n, c := range pa {
		needed += max(0, c-pb[n])
	}
	return movedPrimaries(a, b), needed
}

// TestRebalance: a node that returns (after its slots failed over) or is
// added gets its share (and a node drained hands its share to the others) of primaries and backups back, every move
// make-before-break (no slot ever with fewer than replicas+1 in-sync
// copies once it had them), however the rebuilds interleave, and the
// primaries move as few as the spread allows.
func TestRebalance(t *testing.T) {
	type scenario struct {
		name  string
		nodes int
		// start returns the map the rebalance starts from (a node back
		// or added) and the nodes it is placed over.
		start func(t *testing.T, nodes []string, replicas int) *Map
	}
	returns := func(down ...string) func(*testing.T, []string, int) *Map {
		return func(t *testing.T, nodes []string, replicas int) *Map {
			m, _ := Place(nil, nodes, replicas, Sync)
			for _, d := range down {
				m, _ = Failover(m, map[string]bool{d: true})
				// Back, empty: its backups are out of sync until rebuilt.
			}
			return m
		}
	}
	added := func(t *testing.T, nodes []string, replicas int) *Map {
		m, _ := Place(nil, nodes[:len(nodes)-1], replicas, Sync)
		next, err := Place(m, nodes, replicas, Sync)
		if err != nil {
			t.Fatal(err)
		}
		checkStep(t, "add", m, next, map[string]bool{})
		for i, s := range next.Slots {
			if s.Primary == nodes[len(nodes)-1] && replicas > 0 {
				t.Fatalf("slot %d: a new node got a primary before any rebuild", i)
			}
		}
		return next
	}
	drained := func(t *testing.T, nodes []string, replicas int) *Map {
		m, _ := Place(nil, append(slices.Clone(nodes), "st9"), replicas, Sync)
		next, err := Place(m, nodes, replicas, Sync)
		if err != nil {
			t.Fatal(err)
		}
		member := map[string]bool{}
		for _, n := range nodes {
			member[n] = true
		}
		checkStep(t, "drain", m, next, member)
		return next
	}
	for _, sc := range []scenario{
		{"st9 drained of 4", 3, drained},
		{"st9 drained of 3", 2, drained},
		{"st1 returns of 3", 3, returns("st1")},
		{"st2 returns of 3", 3, returns("st2")},
		{"st1 returns of 4", 4, returns("st1")},
		{"st1 then st2 die, both return, of 4", 4, returns("st1", "st2")},
		{"st3 added to 2", 3, added},
		{"st4 added to 3", 4, added},
		{"st5 added to 4", 5, added},
	} {
		for _, replicas := range []int{0, 1, 2} {
			for _, rb := range []struct {
				name string
				f    func(*Map)
			}{{"all rebuilds at once", rebuildAll}, {"one rebuild at a time", rebuildOnePair}} {
				t.Run(fmt.Sprintf("%s/r%d/%s", sc.name, replicas, rb.name), func(t *testing.T) {
					nodes := nodesN(sc.nodes)
					start := sc.start(t, nodes, replicas)
					added := 0
					end := settle(t, start, rb.f, &added)
					checkEven(t, end)
					if moved, needed := primaryMoves(start, end); replicas > 0 && moved != needed {
						t.Errorf("%d primaries moved, %d would do", moved, needed)
					}
					// New copies (rebuilds): as few as the spread needs, but
					// for a few (a backup moved to even out backups).
					if _, needed := newCopies(start, end); added > needed+len(nodes) {
						t.Errorf("%d copies rebuilt, %d would do", added, needed)
					}
				})
			}
		}
	}
}

// TestRebalanceKillsInTurn: the shape that left primaries at 228/398/398
// (a rebalance that moved a primary only to an in-sync backup under its
// share stopped short): each node of three killed and brought back in
// turn, the rebalance running while the returning node is rebuilt.
func TestRebalanceKillsInTurn(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("r%d", replicas), func(t *testing.T) {
			m, _ := Place(nil, nodesN(3), replicas, Sync)
			for round, down := range []string{"st1", "st2", "st3", "st1", "st3", "st2"} {
				m, _ = Failover(m, map[string]bool{down: true})
				var added int
				m = settle(t, m, rebuildOnePair, &added)
				t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) { checkEven(t, m) })
			}
		})
	}
}

// TestRebalanceFailoverMidMove: a node dying while slots move (a failover
// of a move's new primary or of its old one) leaves a valid map whose
// moves go on once the node is back, and end even.
func TestRebalanceFailoverMidMove(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		for _, down := range []string{"st1", "st2", "st4"} {
			t.Run(fmt.Sprintf("r%d/%s", replicas, down), func(t *testing.T) {
				m, _ := Place(nil, nodesN(3), replicas, Sync)
				m, _ = Place(m, nodesN(4), replicas, Sync)
				rebuildOnePair(m)
				m, _ = Advance(m)
				if m.Moving() == 0 {
					t.Fatal("nothing moving")
				}
				f, _ := Failover(m, map[string]bool{down: true})
				if err := f.Validate(); err != nil {
					t.Fatal(err)
				}
				var added int
				checkEven(t, settle(t, f, rebuildAll, &added))
			})
		}
	}
}

func TestAdvance(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Slot
		want Slot
	}{
		{"settled", Slot{Primary: "a", Backups: []string{"b"}, InSync: []string{"b"}, Epoch: 3},
			Slot{Primary: "a", Backups: []string{"b"}, InSync: []string{"b"}, Epoch: 3}},
		{"new backup joins, the old stays in sync",
			Slot{Primary: "a", Backups: []string{"b"}, InSync: []string{"b"}, Epoch: 3, Next: []string{"a", "c"}},
			Slot{Primary: "a", Backups: []string{"b", "c"}, InSync: []string{"b"}, Epoch: 3, Next: []string{"a", "c"}}},
		{"new backup in sync: the old leaves",
			Slot{Primary: "a", Backups: []string{"b", "c"}, InSync: []string{"b", "c"}, Epoch: 3, Next: []string{"a", "c"}},
			Slot{Primary: "a", Backups: []string{"c"}, InSync: []string{"c"}, Epoch: 3}},
		{"primary waits for its successor to be in sync",
			Slot{Primary: "a", Backups: []string{"b"}, InSync: []string{"b"}, Epoch: 3, Next: []string{"c", "a"}},
			Slot{Primary: "a", Backups: []string{"b", "c"}, InSync: []string{"b"}, Epoch: 3, Next: []string{"c", "a"}}},
		{"primary handed over: the old one stays an in-sync backup",
			Slot{Primary: "a", Backups: []string{"b", "c"}, InSync: []string{"b", "c"}, Epoch: 3, Next: []string{"c", "a", "d"}},
			Slot{Primary: "c", Backups: []string{"b", "a", "d"}, InSync: []string{"b", "a"}, Epoch: 10, Next: []string{"c", "a", "d"}}},
		{"an extra in-sync copy leaves first, the hand-over waits for the next step",
			Slot{Primary: "a", Backups: []string{"b", "c"}, InSync: []string{"b", "c"}, Epoch: 3, Next: []string{"c", "a"}},
			Slot{Primary: "a", Backups: []string{"c"}, InSync: []string{"c"}, Epoch: 3, Next: []string{"c", "a"}}},
		{"handed over, done in the next step",
			Slot{Primary: "a", Backups: []string{"b"}, InSync: []string{"b"}, Epoch: 3, Next: []string{"b", "a"}},
			Slot{Primary: "b", Backups: []string{"a"}, InSync: []string{"a"}, Epoch: 10, Next: []string{"b", "a"}}},
		{"done",
			Slot{Primary: "b", Backups: []string{"a"}, InSync: []string{"a"}, Epoch: 10, Next: []string{"b", "a"}},
			Slot{Primary: "b", Backups: []string{"a"}, InSync: []string{"a"}, Epoch: 10}},
		{"a leaving backup out of sync goes at once",
			Slot{Primary: "a", Backups: []string{"b", "c"}, InSync: []string{"c"}, Epoch: 3, Next: []string{"a", "d"}},
			Slot{Primary: "a", Backups: []string{"c", "d"}, InSync: []string{"c"}, Epoch: 3, Next: []string{"a", "d"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.in
			s.Backups, s.InSync, s.Next = slices.Clone(s.Backups), slices.Clone(s.InSync), slices.Clone(s.Next)
			changed := advanceSlot(&s, 10)
			if fmt.Sprint(s) != fmt.Sprint(tc.want) {
				t.Fatalf("got %+v, want %+v", s, tc.want)
			}
			if changed != (fmt.Sprint(tc.in) != fmt.Sprint(tc.want)) {
				t.Fatalf("changed %v", changed)
			}
			floor := copies(tc.in)
			if len(tc.in.Next) > 0 {
				floor = min(floor, len(tc.in.Next)) // done: replicas+1
			}
			if copies(s) < floor {
				t.Fatalf("in-sync copies %d, had %d", copies(s), copies(tc.in))
			}
		})
	}
}
