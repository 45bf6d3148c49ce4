package kvs

import (
	"fmt"
	"testing"

	"github.com/lbd-project/lbd/pkg/slots"
)

// TestPrimariesMatchTheMap checks the compact primaries against the map
// they are made of, and that a map they cannot hold has none (its slots
// are read instead).
func TestPrimariesMatchTheMap(t *testing.T) {
	mapOf := func(n, names int) *slots.Map {
		m := &slots.Map{Slots: make([]slots.Slot, n)}
		for i := range m.Slots {
			m.Slots[i].Epoch = uint64(i * 3)
			if i%7 != 3 { // "": a slot with no primary
				m.Slots[i].Primary = fmt.Sprintf("st%d", i%names)
			}
		}
		return m
	}
	for _, tc := range []struct {
		name string
		m    *slots.Map
		ok   bool
	}{
		{"three nodes", mapOf(slots.Count, 3), true},
		{"one node", mapOf(slots.Count, 1), true},
		{"255 names and none", mapOf(slots.Count, 255), true},
		{"too many names", mapOf(slots.Count, 300), false},
		{"too few slots", mapOf(slots.Count-1, 3), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPrimaries(tc.m)
			if (p != nil) != tc.ok {
				t.Fatalf("primaries made: %v, want %v", p != nil, tc.ok)
			}
			r := &router{}
			r.m.Store(tc.m)
			r.prims.Store(p)
			for sl := range tc.m.Slots {
				if p != nil && (p.names[p.idx[sl]] != tc.m.Slots[sl].Primary || p.epoch[sl] != tc.m.Slots[sl].Epoch) {
					t.Fatalf("slot %d: %q epoch %d, want %q epoch %d", sl, p.names[p.idx[sl]], p.epoch[sl], tc.m.Slots[sl].Primary, tc.m.Slots[sl].Epoch)
				}
			}
			for i := range 200 {
				key := fmt.Appendf(nil, "k%d", i)
				node, sl, ok := r.owner(key)
				if !ok || sl != slots.Of(key) || node != tc.m.Slots[sl].Primary {
					t.Fatalf("owner(%s) = %q, %d, %v; want %q, %d", key, node, sl, ok, tc.m.Slots[slots.Of(key)].Primary, slots.Of(key))
				}
			}
		})
	}
}
