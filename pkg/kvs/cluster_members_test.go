package kvs

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterMembersPlace: the membership is seeded from the file's
// storage nodes; the leader's PlaceMembers places tenants over its active
// nodes, re-places them when a node is added, drained or leaves the file
// (no map names a removed node; primaries stay balanced), and holds a
// tenant whose draining node is the only in-sync copy of slots.
func TestClusterMembersPlace(t *testing.T) {
	ctx := context.Background()
	st := cluster.NewMemory()
	file := []string{"st1", "st2", "st3"}
	ts := []TenantPlacement{{Tenant: "a", Replicas: 1, Replication: slots.Sync}, {Tenant: "b", Replicas: 0, Replication: slots.Sync}}
	mem, err := ChangeMembers(ctx, st, file, func(*slots.Members, map[string]*slots.Map) (*slots.Members, error) { return nil, nil })
	if err != nil || !slices.Equal(mem.Placement(), file) {
		t.Fatalf("seed: %v %v", mem, err)
	}
	// rebuilt marks every backup in sync (the rebuilds' part).
	rebuilt := func() {
		t.Helper()
		for tn := range mustMaps(t, st) {
			if _, err := updateMap(ctx, st, tn, func(cur *slots.Map) (*slots.Map, error) {
				c := cur.Clone()
				for i := range c.Slots {
					c.Slots[i].InSync = slices.Clone(c.Slots[i].Backups)
				}
				return c, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// settle runs the rebuilds and the monitor's rebalance until it
	// changes nothing.
	settle := func() {
		t.Helper()
		for round := 0; ; round++ {
			if round == 20 {
				t.Fatal("the rebalance does not settle")
			}
			rebuilt()
			changed := false
			for tn := range mustMaps(t, st) {
				if _, err := updateMap(ctx, st, tn, func(cur *slots.Map) (*slots.Map, error) {
					next, ch, err := slots.Rebalance(cur)
					if !ch {
						return nil, err
					}
					changed = true
					return next, err
				}); err != nil {
					t.Fatal(err)
				}
			}
			if !changed {
				return
			}
		}
	}
	place := func(want ...string) {
		t.Helper()
		mem, _, _, err := Members(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := PlaceMembers(ctx, st, mem, ts); err != nil {
			t.Fatal(err)
		}
		settle()
		maps, _ := Maps(st)
		for tn, m := range maps {
			if !slices.Equal(m.Nodes, want) {
				t.Fatalf("%s over %v, want %v", tn, m.Nodes, want)
			}
			p := map[string]int{}
			for i, s := range m.Slots {
				if !slices.Contains(want, s.Primary) {
					t.Fatalf("%s slot %d on %s", tn, i, s.Primary)
				}
				for _, b := range s.Backups {
					if !slices.Contains(want, b) {
						t.Fatalf("%s slot %d backup %s", tn, i, b)
					}
				}
				p[s.Primary]++
			}
			for _, n := range want {
				if p[n] < slots.Count/len(want) || p[n] > slots.Count/len(want)+1 {
					t.Fatalf("%s primaries %v: uneven", tn, p)
				}
			}
			t.Logf("%s primaries %v", tn, p)
		}
		if placed, err := PlaceMembers(ctx, st, mem, ts); err != nil || len(placed) > 0 {
			t.Fatalf("a second round placed %v (%v)", placed, err)
		}
	}
	change := func(fn func(cur *slots.Members, maps map[string]*slots.Map) (*slots.Members, error)) error {
		_, err := ChangeMembers(ctx, st, file, fn)
		return err
	}
	place("st1", "st2", "st3")

	file = append(file, "st4")
	if err := change(func(cur *slots.Members, _ map[string]*slots.Map) (*slots.Members, error) { return cur.Add("st4", file) }); err != nil {
		t.Fatal(err)
	}
	place("st1", "st2", "st3", "st4")

	// Drain st2 while its slots' backups of a are out of sync: refused.
	a := mustMaps(t, st)["a"]
	stale := a.Clone()
	for i := range stale.Slots {
		if stale.Slots[i].Primary == "st2" {
			stale.Slots[i].InSync = nil
		}
	}
	if err := change(func(cur *slots.Members, maps map[string]*slots.Map) (*slots.Members, error) {
		maps["a"] = stale
		return cur.Drain("st2", maps)
	}); err == nil {
		t.Fatal("drained the only in-sync copy")
	}
	if err := change(func(cur *slots.Members, maps map[string]*slots.Map) (*slots.Members, error) {
		return cur.Drain("st2", maps)
	}); err != nil {
		t.Fatal(err)
	}
	// Until the new backups are rebuilt, st2's in-sync copies of a stay
	// (in sync): no slot has fewer copies with every write.
	mem, _, _, _ = Members(st)
	if _, err := PlaceMembers(ctx, st, mem, ts); err != nil {
		t.Fatal(err)
	}
	kept := 0
	for i, s := range mustMaps(t, st)["a"].Slots {
		if s.Primary == "st2" {
			t.Fatalf("slot %d: st2 still primary", i)
		}
		if slices.Contains(s.Backups, "st2") {
			kept++
			if !slices.Contains(s.InSync, "st2") {
				t.Fatalf("slot %d: %+v", i, s)
			}
		}
	}
	if kept == 0 {
		t.Fatal("no copy kept on st2 during its drain")
	}
	t.Logf("st2 keeps %d copies during the rebuild", kept)
	rebuilt()
	place("st1", "st3", "st4")
	if err := change(func(cur *slots.Members, maps map[string]*slots.Map) (*slots.Members, error) {
		return cur.Remove("st2", maps, false)
	}); err != nil {
		t.Fatal(err)
	}

	// st3 leaves the file.
	file = []string{"st1", "st2", "st4"}
	if err := change(func(cur *slots.Members, _ map[string]*slots.Map) (*slots.Members, error) {
		next, _ := cur.SyncFile(file)
		return next, nil
	}); err != nil {
		t.Fatal(err)
	}
	place("st1", "st4")
	mem, _, _, _ = Members(st)
	if mem.State("st2") != slots.Removed || mem.State("st3") != slots.Removed {
		t.Fatalf("membership %v", mem.Nodes)
	}
	ms, err := MembersStatus(st)
	if err != nil || len(ms) != 2 || ms[0].Name != "st1" || ms[1].Name != "st4" {
		t.Fatalf("status %+v %v", ms, err)
	}
}

func mustMaps(t *testing.T, st cluster.Store) map[string]*slots.Map {
	t.Helper()
	maps, err := Maps(st)
	if err != nil {
		t.Fatal(err)
	}
	return maps
}

func TestWriteMembers(t *testing.T) {
	ms := []MemberStatus{
		{Name: "st1", State: slots.Active, Joined: true, Primaries: 512, Backups: 400, InSync: 100},
		{Name: "st2", State: slots.Draining, Joined: true, Primaries: 3, Backups: 7},
		{Name: "st3", State: slots.Draining, Joined: true},
		{Name: "st4", State: slots.Active},
	}
	for _, tc := range []struct {
		bars bool
		want []string
	}{
		{false, []string{"rebuilding 100/400 (25%)", "moving off: 10 slots left", "drained: lbctl node remove st3", "not joined"}},
		{true, []string{"rebuilding [#####...............] 100/400 (25%)"}},
	} {
		var b strings.Builder
		WriteMembers(&b, ms, tc.bars)
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("bars %v: no %q in\n%s", tc.bars, w, b.String())
			}
		}
		if !tc.bars && strings.Contains(b.String(), "[") {
			t.Errorf("a bar without a terminal:\n%s", b.String())
		}
	}
}
