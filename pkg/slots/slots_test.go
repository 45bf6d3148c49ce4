package slots

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func nodesN(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("st%d", i+1))
	}
	return out
}

// counts returns each node's primaries and backups.
func counts(m *Map) (p, b map[string]int) {
	p, b = map[string]int{}, map[string]int{}
	for _, s := range m.Slots {
		p[s.Primary]++
		for _, x := range s.Backups {
			b[x]++
		}
	}
	return p, b
}

func spread(c map[string]int, nodes []string) int {
	lo, hi := Count*3, 0
	for _, n := range nodes {
		lo, hi = min(lo, c[n]), max(hi, c[n])
	}
	return hi - lo
}

func TestPlaceNew(t *testing.T) {
	for _, tc := range []struct {
		nodes, replicas, wantBackups int
	}{
		{1, 0, 0}, {1, 2, 0}, {2, 1, 1}, {3, 0, 0}, {3, 1, 1}, {3, 2, 2}, {4, 1, 1}, {5, 2, 2}, {7, 2, 2},
	} {
		t.Run(fmt.Sprintf("%dnodes_r%d", tc.nodes, tc.replicas), func(t *testing.T) {
			nodes := nodesN(tc.nodes)
			m, err := Place(nil, nodes, tc.replicas, Sync)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			for i, s := range m.Slots {
				if len(s.Backups) != tc.wantBackups || len(s.InSync) != len(s.Backups) {
					t.Fatalf("slot %d: %+v, want %d backups all in sync", i, s, tc.wantBackups)
				}
			}
			p, b := counts(m)
			if d := spread(p, nodes); d > 1 {
				t.Errorf("primaries %v: spread %d", p, d)
			}
			if d := spread(b, nodes); tc.wantBackups > 0 && d > 1 {
				t.Errorf("backups %v: spread %d", b, d)
			}
			// Placing again changes nothing.
			again, err := Place(m, nodes, tc.replicas, Sync)
			if err != nil {
				t.Fatal(err)
			}
			if moved := movedPrimaries(m, again); moved != 0 {
				t.Errorf("placing again moved %d primaries", moved)
			}
		})
	}
}

func movedPrimaries(a, b *Map) int {
	n := 0
	for i := range a.Slots {
		if a.Slots[i].Primary != b.Slots[i].Primary {
			n++
		}
	}
	return n
}

func TestPlaceErrors(t *testing.T) {
	if _, err := Place(nil, nil, 1, Sync); err == nil {
		t.Error("no nodes: no error")
	}
	if _, err := Place(nil, nodesN(3), 3, Sync); err == nil {
		t.Error("replicas 3: no error")
	}
	if _, err := Place(nil, nodesN(3), 1, "maybe"); err == nil {
		t.Error("replication maybe: no error")
	}
}

// allInSync marks every backup in sync (as after a rebuild).
func allInSync(m *Map) {
	for i := range m.Slots {
		m.Slots[i].InSync = slices.Clone(m.Slots[i].Backups)
	}
}

// TestPlaceProperties checks, over random membership changes, that a
// placement is valid, that primaries move only to in-sync backups (or
// anywhere for a cache), that epochs grow where primaries change, and that
// a cache's node add moves no more than the newcomer's share.
func TestPlaceProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 60 {
		replicas := iter % 3
		nodes := nodesN(2 + rng.IntN(4))
		m, err := Place(nil, nodes, replicas, Sync)
		if err != nil {
			t.Fatal(err)
		}
		for step := range 6 {
			allInSync(m)
			next := slices.Clone(nodes)
			switch rng.IntN(3) {
			case 0: // add
				next = append(next, fmt.Sprintf("new%d_%d", iter, step))
			case 1: // remove one
				if len(next) > 1 {
					i := rng.IntN(len(next))
					next = slices.Delete(next, i, i+1)
				}
			}
			pm, err := Place(m, next, replicas, Sync)
			if err != nil {
				t.Fatal(err)
			}
			member := map[string]bool{}
			for _, n := range next {
				member[n] = true
			}
			checkStep(t, fmt.Sprintf("iter %d step %d", iter, step), m, pm, member)
			// The moves end once the new backups are rebuilt.
			settled := pm
			for k := 0; settled.Moving() > 0; k++ {
				if k == 4 {
					t.Fatalf("iter %d step %d: %d slots still moving", iter, step, settled.Moving())
				}
				allInSync(settled)
				s2, err := Place(settled, next, replicas, Sync)
				if err != nil {
					t.Fatal(err)
				}
				checkStep(t, fmt.Sprintf("iter %d step %d settle %d", iter, step, k), settled, s2, member)
				settled = s2
			}
			for i, s := range settled.Slots {
				if want := min(replicas, len(next)-1); len(s.Backups) != want {
					t.Fatalf("slot %d: %d backups, want %d", i, len(s.Backups), want)
				}
			}
			if replicas == 0 && len(next) == len(nodes)+1 {
				share := (Count + len(next) - 1) / len(next)
				if moved := movedPrimaries(m, pm); moved > share {
					t.Fatalf("adding a node moved %d primaries, share %d", moved, share)
				}
				if p, _ := counts(pm); spread(p, next) > 1 {
					t.Fatalf("cache after add: primaries %v", p)
				}
			}
			if len(next) < len(nodes) {
				// Only the removed node's primaries move.
				for i, s := range pm.Slots {
					if old := m.Slots[i]; member[old.Primary] && s.Primary != old.Primary && replicas > 0 && !slices.Contains(old.InSync, s.Primary) {
						t.Fatalf("slot %d of a remaining node moved", i)
					}
				}
			}
			m, nodes = settled, next
		}
	}
}

// checkStep checks one step of the leader's placement, from old to next
// over the member nodes: next is valid (no slot on a node twice), every
// primary is a member, the epoch grows where the primary changes and only
// there, a primary moves only to an in-sync backup (but a cache's, or one
// whose node left with no in-sync backup), and no slot has fewer in-sync
// copies (primary and in-sync backups) than before, nor than replicas+1
// if it had them.
func checkStep(t *testing.T, what string, old, next *Map, member map[string]bool) {
	t.Helper()
	if err := next.Validate(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	r := min(next.Replicas, len(next.Nodes)-1)
	for i, s := range next.Slots {
		o := old.Slots[i]
		if !member[s.Primary] && member[o.Primary] {
			t.Fatalf("%s: slot %d: primary %q not a member", what, i, s.Primary)
		}
		if s.Primary == o.Primary {
			if s.Epoch != o.Epoch {
				t.Fatalf("%s: slot %d: epoch changed without a move", what, i)
			}
		} else {
			if s.Epoch <= old.MaxEpoch() {
				t.Fatalf("%s: slot %d moved with epoch %d <= %d", what, i, s.Epoch, old.MaxEpoch())
			}
			if next.Replicas > 0 && member[o.Primary] && !slices.Contains(o.InSync, s.Primary) {
				t.Fatalf("%s: slot %d: live primary %s moved to %s, not an in-sync backup %v", what, i, o.Primary, s.Primary, o.InSync)
			}
		}
		if next.Replicas == 0 {
			continue
		}
		if got, was := copies(s), copies(o); got < min(r+1, was) {
			t.Fatalf("%s: slot %d: %d in-sync copies (%+v), had %d (%+v)", what, i, got, s, was, o)
		}
	}
}

// copies is the number of in-sync copies of a slot: its primary and its
// in-sync backups.
func copies(s Slot) int {
	if s.Primary == "" {
		return len(s.InSync)
	}
	return 1 + len(s.InSync)
}

// TestPlaceConverges: with replicas, a node added gets its share of
// primaries once its backups are in sync (a second Place swaps them in).
func TestPlaceConverges(t *testing.T) {
	m, _ := Place(nil, nodesN(3), 1, Sync)
	allInSync(m)
	m, _ = Place(m, nodesN(4), 1, Sync)
	p, _ := counts(m)
	if p["st4"] != 0 {
		t.Fatalf("a new node got primaries before any rebuild: %v", p)
	}
	allInSync(m)
	m, _ = Place(m, nodesN(4), 1, Sync)
	allInSync(m)
	m, _ = Place(m, nodesN(4), 1, Sync)
	p, b := counts(m)
	if spread(p, nodesN(4)) > 1 || spread(b, nodesN(4)) > 1 {
		t.Fatalf("after rebuilds: primaries %v backups %v", p, b)
	}
}

func TestFailover(t *testing.T) {
	for _, tc := range []struct {
		name        string
		replicas    int
		inSync      bool
		wantMoved   bool
		wantPrimary func(old Slot) string
	}{
		{"in-sync backup promoted", 1, true, true, func(o Slot) string { return o.Backups[0] }},
		{"no in-sync backup: stays", 1, false, false, func(o Slot) string { return o.Primary }},
		{"cache moves anywhere", 0, false, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := Place(nil, nodesN(3), tc.replicas, Sync)
			for i := range m.Slots {
				if !tc.inSync {
					m.Slots[i].InSync = nil
				}
			}
			down := map[string]bool{"st2": true}
			f, changed := Failover(m, down)
			if changed != (tc.wantMoved || tc.inSync) {
				t.Fatalf("changed %v", changed)
			}
			if err := f.Validate(); err != nil {
				t.Fatal(err)
			}
			for i, s := range f.Slots {
				old := m.Slots[i]
				if slices.Contains(s.InSync, "st2") {
					t.Fatalf("slot %d: down node still in sync", i)
				}
				if old.Primary != "st2" {
					if s.Primary != old.Primary || s.Epoch != old.Epoch {
						t.Fatalf("slot %d of a live primary changed", i)
					}
					continue
				}
				if tc.wantMoved {
					if s.Primary == "st2" || s.Epoch <= m.MaxEpoch() {
						t.Fatalf("slot %d: %+v after failover", i, s)
					}
					if tc.replicas > 0 && !slices.Contains(s.Backups, "st2") {
						t.Fatalf("slot %d: the old primary is not a backup: %+v", i, s)
					}
				}
				if tc.wantPrimary != nil && s.Primary != tc.wantPrimary(old) {
					t.Fatalf("slot %d primary %s, want %s", i, s.Primary, tc.wantPrimary(old))
				}
			}
			if _, again := Failover(f, down); again && tc.wantMoved {
				t.Fatal("a second failover changed the map")
			}
		})
	}
}

func TestShrinkAndAddInSync(t *testing.T) {
	m, _ := Place(nil, nodesN(3), 2, Sync)
	allInSync(m)
	s0 := m.Slots[0]
	got, err := m.ShrinkInSync(s0.Primary, s0.Backups[0], map[int]uint64{0: s0.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got.Slots[0].InSync, s0.Backups[0]) || len(m.Slots[0].InSync) != 2 {
		t.Fatalf("shrink: %+v (original %+v)", got.Slots[0], m.Slots[0])
	}
	if _, err := m.ShrinkInSync(s0.Primary, s0.Backups[0], map[int]uint64{0: s0.Epoch + 1}); err == nil {
		t.Fatal("a stale epoch shrank the in-sync set")
	}
	back, err := got.AddInSync(s0.Primary, s0.Backups[0], 0, s0.Epoch)
	if err != nil || !slices.Contains(back.Slots[0].InSync, s0.Backups[0]) {
		t.Fatalf("add: %v %+v", err, back)
	}
	if _, err := got.AddInSync(s0.Backups[1], s0.Backups[0], 0, s0.Epoch); err == nil {
		t.Fatal("a non-primary added to the in-sync set")
	}
	// Many slots in one copy: every one in sync, the original untouched;
	// one slot at a stale epoch refuses them all.
	none, _ := m.ShrinkInSync(s0.Primary, s0.Backups[0], map[int]uint64{0: s0.Epoch})
	epochs := map[int]uint64{}
	for i, s := range m.Slots {
		if s.Primary == s0.Primary && s.Backups[0] == s0.Backups[0] {
			epochs[i] = s.Epoch
		}
	}
	all, err := none.AddInSyncAll(s0.Primary, s0.Backups[0], epochs)
	if err != nil || len(epochs) < 2 {
		t.Fatalf("add all (%d slots): %v", len(epochs), err)
	}
	for i := range epochs {
		if n := len(slices.DeleteFunc(slices.Clone(all.Slots[i].InSync), func(b string) bool { return b != s0.Backups[0] })); n != 1 {
			t.Fatalf("slot %d: %d copies of %s in sync: %v", i, n, s0.Backups[0], all.Slots[i].InSync)
		}
	}
	if slices.Contains(none.Slots[0].InSync, s0.Backups[0]) {
		t.Fatal("AddInSyncAll changed the map it was called on")
	}
	epochs[0]++
	if _, err := none.AddInSyncAll(s0.Primary, s0.Backups[0], epochs); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("a stale epoch among many: %v", err)
	}
}

func TestEncodeDecode(t *testing.T) {
	m, _ := Place(nil, nodesN(3), 1, Async)
	d, err := Decode(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if movedPrimaries(m, d) != 0 || d.Replication != Async {
		t.Fatal("round trip changed the map")
	}
	for _, bad := range []string{``, `{}`, `{"replicas":1,"replication":"sync","slots":[]}`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q): no error", bad)
		}
	}
}

func TestOf(t *testing.T) {
	hit := make([]int, Count)
	for i := range 100000 {
		hit[Of(fmt.Appendf(nil, "key:%d", i))]++
	}
	for i, n := range hit {
		if n < 50 || n > 150 {
			t.Fatalf("slot %d has %d of 100000 keys", i, n)
		}
	}
}

func FuzzDecode(f *testing.F) {
	m, _ := Place(nil, nodesN(3), 1, Sync)
	f.Add(m.Encode())
	f.Add([]byte(`{"replicas":7}`))
	moving, _ := Place(m, nodesN(4), 1, Sync) // moves under way (Next)
	f.Add(moving.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if _, err := Decode(m.Encode()); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// TestRebalanceKeepsACopy: the leader's rebalance after nodes died and
// came back (failovers, rebuilds, then Place over the same nodes) moves
// primaries back, and a slot whose primary moves keeps its old primary as
// an in-sync backup until its new backups are in sync: the slot never has
// its data on one node only while a new backup is rebuilt (a kill -9 of
// the new primary then would leave it unavailable).
//
// It failed before moves were make-before-break (round 0: slot 512,
// primary st3, lost its in-sync backup st1 for st2 until st2 was
// rebuilt). Found by cmd/lbd's TestClusterKVSFailoverUnavailability (a
// kill -9 right after a rebalance left a node's slots unavailable until
// it came back).
func TestRebalanceKeepsACopy(t *testing.T) {
	nodes := nodesN(3)
	m, _ := Place(nil, nodes, 1, Sync)
	for round, down := range []string{"st1", "st2", "st3", "st1", "st2", "st3", "st1"} {
		m, _ = Failover(m, map[string]bool{down: true})
		allInSync(m) // the node came back and was rebuilt
		next, err := Place(m, nodes, 1, Sync)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range next.Slots {
			old := m.Slots[i]
			if s.Primary != old.Primary && !slices.Contains(s.InSync, old.Primary) && copies(s) < 2 {
				t.Fatalf("round %d: slot %d moved from %s to %s, its backups %v in sync %v: the old primary is no in-sync backup",
					round, i, old.Primary, s.Primary, s.Backups, s.InSync)
			}
			if copies(s) < 2 {
				t.Fatalf("round %d: slot %d (primary %s) lost its in-sync backup %v for %v", round, i, s.Primary, old.InSync, s.Backups)
			}
		}
		m = next
		allInSync(m)
	}
}
