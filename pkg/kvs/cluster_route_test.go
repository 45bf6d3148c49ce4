package kvs

import (
	"fmt"
	"strings"
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

// TestMergeGets checks the merge of a multi-get's parts: values in the
// order of the keys (a key asked twice gets its value twice, a miss
// none), whatever part holds them, and an error part as the whole reply.
func TestMergeGets(t *testing.T) {
	v := func(k, d string) string { return fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\n", k, len(d), d) }
	for _, tc := range []struct {
		name  string
		keys  string
		parts []string
		want  string
	}{
		{"two parts", "a b c d", []string{v("a", "1") + v("c", "3") + "END\r\n", v("b", "2") + v("d", "4") + "END\r\n"},
			v("a", "1") + v("b", "2") + v("c", "3") + v("d", "4") + "END\r\n"},
		{"misses", "a b c d", []string{v("c", "3") + "END\r\n", "END\r\n", v("d", "4") + "END\r\n"},
			v("c", "3") + v("d", "4") + "END\r\n"},
		{"a key twice", "a b a", []string{v("a", "1") + v("a", "1") + "END\r\n", v("b", "2") + "END\r\n"},
			v("a", "1") + v("b", "2") + v("a", "1") + "END\r\n"},
		{"a key the prefix of another", "ab a", []string{v("a", "x") + "END\r\n", v("ab", "y") + "END\r\n"},
			v("ab", "y") + v("a", "x") + "END\r\n"},
		{"data with a newline", "a b", []string{v("a", "1\r\nVALUE b 0 1") + "END\r\n", v("b", "2") + "END\r\n"},
			v("a", "1\r\nVALUE b 0 1") + v("b", "2") + "END\r\n"},
		{"an error part", "a b", []string{v("a", "1") + "END\r\n", "SERVER_ERROR lbd: unavailable: x\r\n"},
			"SERVER_ERROR lbd: unavailable: x\r\n"},
		{"a part cut short", "a b", []string{v("a", "1") + "END\r\n", "VALUE b 0 5\r\n12\r\nEND\r\n"},
			"VALUE b 0 5\r\n12\r\nEND\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var keys [][]byte
			for _, k := range strings.Fields(tc.keys) {
				keys = append(keys, []byte(k))
			}
			var parts [][]byte
			for _, p := range tc.parts {
				parts = append(parts, []byte(p))
			}
			if got := string(mergeGets([]byte("out:"), keys, parts)); got != "out:"+tc.want {
				t.Fatalf("got\n%q\nwant\n%q", got, "out:"+tc.want)
			}
		})
	}
}
