package slots

import (
	"errors"
	"slices"
	"testing"
)

// mapOver places a tenant over nodes with every backup in sync.
func mapOver(t *testing.T, nodes []string, replicas int) *Map {
	t.Helper()
	m, err := Place(nil, nodes, replicas, Sync)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMembersTransitions(t *testing.T) {
	file := nodesN(4)
	seed := SeedMembers(nodesN(3))
	r1 := mapOver(t, nodesN(3), 1)
	// st1's slots with their backups out of sync: a rebuild under way.
	rebuilding := r1.Clone()
	for i := range rebuilding.Slots {
		if rebuilding.Slots[i].Primary == "st1" {
			rebuilding.Slots[i].InSync = nil
		}
	}
	drained := mapOver(t, []string{"st2", "st3"}, 1)
	draining := seed.with("st1", Draining)
	for _, tc := range []struct {
		name    string
		m       *Members
		op      string
		node    string
		force   bool
		maps    map[string]*Map
		want    []Member // nil: an error
		wantErr error
	}{
		{"add a file node", seed, "add", "st4", false, nil, []Member{{"st1", Active}, {"st2", Active}, {"st3", Active}, {"st4", Active}}, nil},
		{"add an unknown node", seed, "add", "st9", false, nil, nil, ErrUnknownNode},
		{"add an active node", seed, "add", "st1", false, nil, nil, ErrRefused},
		{"add stops a drain", draining, "add", "st1", false, nil, []Member{{"st1", Active}, {"st2", Active}, {"st3", Active}}, nil},
		{"add a removed node", seed.with("st2", Removed), "add", "st2", false, nil, []Member{{"st1", Active}, {"st2", Active}, {"st3", Active}}, nil},

		{"drain", seed, "drain", "st1", false, map[string]*Map{"a": r1}, []Member{{"st1", Draining}, {"st2", Active}, {"st3", Active}}, nil},
		{"drain a cache tenant's node", seed, "drain", "st1", false, map[string]*Map{"a": mapOver(t, nodesN(3), 0)}, []Member{{"st1", Draining}, {"st2", Active}, {"st3", Active}}, nil},
		{"drain the only in-sync copy", seed, "drain", "st1", false, map[string]*Map{"a": r1, "b": rebuilding}, nil, ErrRefused},
		{"drain the last active node", SeedMembers([]string{"st1"}), "drain", "st1", false, nil, nil, ErrRefused},
		{"drain twice", draining, "drain", "st1", false, nil, nil, ErrRefused},
		{"drain a non-member", seed, "drain", "st4", false, nil, nil, ErrUnknownNode},

		{"remove a drained node", draining, "remove", "st1", false, map[string]*Map{"a": drained}, []Member{{"st1", Removed}, {"st2", Active}, {"st3", Active}}, nil},
		{"remove a node still draining", draining, "remove", "st1", false, map[string]*Map{"a": r1}, nil, ErrRefused},
		{"remove an active node", seed, "remove", "st1", false, map[string]*Map{"a": drained}, nil, ErrRefused},
		{"remove a dead node", seed, "remove", "st1", true, map[string]*Map{"a": r1}, []Member{{"st1", Removed}, {"st2", Active}, {"st3", Active}}, nil},
		{"remove the last in-sync copy", seed, "remove", "st1", true, map[string]*Map{"a": rebuilding}, nil, ErrRefused},
		{"remove the last active node", SeedMembers([]string{"st1"}), "remove", "st1", true, nil, nil, ErrRefused},
		{"remove twice", seed.with("st1", Removed), "remove", "st1", true, nil, nil, ErrRefused},
		{"remove a non-member", seed, "remove", "st9", true, nil, nil, ErrUnknownNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := string(tc.m.Encode())
			var got *Members
			var err error
			switch tc.op {
			case "add":
				got, err = tc.m.Add(tc.node, file)
			case "drain":
				got, err = tc.m.Drain(tc.node, tc.maps)
			default:
				got, err = tc.m.Remove(tc.node, tc.maps, tc.force)
			}
			if string(tc.m.Encode()) != before {
				t.Fatal("the membership given was changed")
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Nodes, tc.want) {
				t.Fatalf("got %v, want %v", got.Nodes, tc.want)
			}
		})
	}
}

func TestMembersPlacementAndFile(t *testing.T) {
	m := SeedMembers([]string{"st3", "st1", "st2", "st4"}).with("st2", Draining).with("st4", Removed)
	if got := m.Placement(); !slices.Equal(got, []string{"st1", "st3"}) {
		t.Fatalf("placement %v", got)
	}
	// st3 leaves the file; st4 (removed) and st5 (never added) are in it.
	next, changed := m.SyncFile([]string{"st1", "st2", "st4", "st5"})
	if !changed || next.State("st3") != Removed || next.State("st4") != Removed || next.State("st5") != "" || next.State("st2") != Draining {
		t.Fatalf("changed %v, %v", changed, next.Nodes)
	}
	if _, changed := next.SyncFile([]string{"st1", "st2", "st4", "st5"}); changed {
		t.Fatal("a second sync changed the membership")
	}
}

func TestMembersWaiting(t *testing.T) {
	m := SeedMembers(nodesN(3)).with("st1", Draining)
	r1 := mapOver(t, nodesN(3), 1)
	if n, c := m.Waiting("a", r1); c != 0 {
		t.Fatalf("%s waits with %d slots, every backup in sync", n, c)
	}
	rebuilding := r1.Clone()
	want := 0
	for i := range rebuilding.Slots {
		if rebuilding.Slots[i].Primary == "st1" {
			rebuilding.Slots[i].InSync = nil
			want++
		}
	}
	if n, c := m.Waiting("a", rebuilding); n != "st1" || c != want {
		t.Fatalf("waiting %s %d, want st1 %d", n, c, want)
	}
	// Placed over the others, the drained node serves no slot and keeps
	// its in-sync copies until the new backups are in sync; then it
	// holds nothing.
	next, err := Place(r1, m.Placement(), 1, Sync)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range next.Slots {
		if s.Primary == "st1" {
			t.Fatalf("slot %d: primary on the draining node", i)
		}
		if r1.Slots[i].Primary == "st1" && !slices.Contains(r1.Slots[i].InSync, s.Primary) {
			t.Fatalf("slot %d: primary %s was not an in-sync backup", i, s.Primary)
		}
		if len(s.InSync)+1 < len(r1.Slots[i].InSync)+1 {
			t.Fatalf("slot %d: %+v has fewer in-sync copies than %+v", i, s, r1.Slots[i])
		}
	}
	allInSync(next)
	if next, _ = Advance(next); next.Moving() != 0 {
		t.Fatalf("%d slots still moving once every backup is in sync", next.Moving())
	}
	if tn, c := HeldSlots(map[string]*Map{"a": next}, "st1"); c != 0 {
		t.Fatalf("st1 still holds %d slots of %s", c, tn)
	}
}

func TestDecodeMembers(t *testing.T) {
	m := SeedMembers(nodesN(3)).with("st2", Draining)
	got, err := DecodeMembers(m.Encode())
	if err != nil || !slices.Equal(got.Nodes, m.Nodes) {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{
		`{`, `{"nodes":[{"name":"","state":"active"}]}`, `{"nodes":[{"name":"a","state":"gone"}]}`,
		`{"nodes":[{"name":"b","state":"active"},{"name":"a","state":"active"}]}`,
		`{"nodes":[{"name":"a","state":"active"},{"name":"a","state":"removed"}]}`,
	} {
		if _, err := DecodeMembers([]byte(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

func FuzzDecodeMembers(f *testing.F) {
	f.Add(SeedMembers(nodesN(3)).Encode())
	f.Add([]byte(`{"nodes":[{"name":"a","state":"draining"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMembers(b)
		if err != nil {
			return
		}
		again, err := DecodeMembers(m.Encode())
		if err != nil || !slices.Equal(again.Nodes, m.Nodes) {
			t.Fatalf("round trip: %v %v", again, err)
		}
		_ = m.Placement()
	})
}

func TestKeepAndDropDraining(t *testing.T) {
	prev := mapOver(t, nodesN(3), 1)
	next, err := Place(prev, []string{"st1", "st3"}, 1, Sync)
	if err != nil {
		t.Fatal(err)
	}
	kept := KeepDraining(prev, next, []string{"st2"})
	if err := kept.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, s := range kept.Slots {
		ps := prev.Slots[i]
		// Every slot keeps at least the in-sync copies it had.
		if len(s.InSync) < len(ps.InSync) {
			t.Fatalf("slot %d: %+v had %+v", i, s, ps)
		}
		if s.Primary == "st2" {
			t.Fatalf("slot %d: primary on the draining node", i)
		}
	}
	if _, changed := DropDrained(kept, []string{"st2"}); changed {
		t.Fatal("dropped the draining copies before the new backups are in sync")
	}
	synced := kept.Clone()
	for i := range synced.Slots {
		synced.Slots[i].InSync = slices.Clone(synced.Slots[i].Backups)
	}
	dropped, changed := DropDrained(synced, []string{"st2"})
	if !changed {
		t.Fatal("nothing dropped once in sync")
	}
	if tn, n := HeldSlots(map[string]*Map{"a": dropped}, "st2"); n != 0 {
		t.Fatalf("st2 still holds %d slots of %s", n, tn)
	}
	for i, s := range dropped.Slots {
		if len(s.Backups) != 1 || len(s.InSync) != 1 {
			t.Fatalf("slot %d: %+v", i, s)
		}
	}
	if again := KeepDraining(nil, next, []string{"st2"}); again != next {
		t.Fatal("a new tenant's placement changed")
	}
}
