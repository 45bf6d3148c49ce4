package kvs

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/pkg/slots"
)

// TestSettledAnswers: a backup answers an old primary's Q record (settle)
// A only once it took the slot over straight from the record's epoch and
// its resync then is done, even if the slot moved on since; W while the
// move or that resync is not there yet; E when its map is past the epoch
// and it did not take the slot over from it. The record survives its
// encoding.
func TestSettledAnswers(t *testing.T) {
	const slot, from, at = 5, 3, 7
	q := encodeRecordOp(from, slot, 'Q', nil, Item{})
	rec, err := readRecord(bufio.NewReader(bytes.NewReader(q)))
	if err != nil || rec.op != 'Q' || rec.epoch != from || rec.slot != slot || len(rec.key) != 0 {
		t.Fatalf("Q record %q read back as %+v, %v", q, rec, err)
	}
	placed := func(primary string, epoch uint64) *slots.Map {
		m := &slots.Map{Slots: make([]slots.Slot, slots.Count)}
		m.Slots[slot] = slots.Slot{Primary: primary, Backups: []string{"st2"}, InSync: []string{"st2"}, Epoch: epoch}
		return m
	}
	for _, tt := range []struct {
		name     string
		m        *slots.Map
		took     *takeoverOf
		wantHead string
	}{
		{"no map yet", nil, nil, "W"},
		{"the move not here yet", placed("st1", from), nil, "W"},
		{"the resync not done", placed("st3", at), &takeoverOf{at, from, false}, "W"},
		{"done", placed("st3", at), &takeoverOf{at, from, true}, "A"},
		{"done, and the slot moved on", placed("st1", at+1), &takeoverOf{at, from, true}, "A"},
		{"another primary", placed("st2", at), nil, "E"},
		{"taken over from another epoch", placed("st3", at), &takeoverOf{at, from + 1, true}, "E"},
		{"taken over before the epoch", placed("st3", at), &takeoverOf{from, from - 1, true}, "E"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &router{n: &clusterNode{opts: ClusterOptions{Node: "st3"}}}
			rp := newReplicator(r, nil)
			if tt.m != nil {
				r.m.Store(tt.m)
			}
			if tt.took != nil {
				rp.tookOver(slot, tt.took.at, tt.took.from, false)
				if tt.took.done {
					rp.tookOverDone(slot, tt.took.at)
				}
			}
			got := rp.apply(rec)
			if !strings.HasPrefix(got, tt.wantHead) || !strings.HasSuffix(got, "\r\n") {
				t.Fatalf("answer %q, want %s...", got, tt.wantHead)
			}
		})
	}
}

// TestPurgeRecordSlots: a purge record drops every key of the slots it
// lists, in one pass, and nothing else; under a map with a newer epoch for
// one of them it is refused and drops nothing. A record of one slot
// without a list (as lbd sent before) drops that slot.
func TestPurgeRecordSlots(t *testing.T) {
	keysIn := map[int][]string{}
	for i := 0; len(keysIn) < 3 || len(keysIn[0]) == 0; i++ {
		k := fmt.Sprintf("p:%d", i)
		if sl := slots.Of([]byte(k)); sl < 3 {
			keysIn[sl] = append(keysIn[sl], k)
		}
	}
	for _, tt := range []struct {
		name    string
		rec     []byte
		mapAt   uint64 // slot 1's epoch in the map
		want    string
		dropped []int
	}{
		{"two slots", purgeRecord(4, []int{0, 2}), 4, "A", []int{0, 2}},
		{"a newer epoch for one", purgeRecord(4, []int{0, 1}), 5, "S 5", nil},
		{"one slot, no list", []byte("R 4 1 X 0 0 0 0 0 0\r\n\r\n"), 4, "A", []int{1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := NewMemoryStore(1 << 20)
			r := &router{n: &clusterNode{opts: ClusterOptions{Node: "st2"}}, svc: &service{now: func() int64 { return 1 }}}
			rp := newReplicator(r, st)
			m := &slots.Map{Slots: make([]slots.Slot, slots.Count)}
			for i := range m.Slots {
				m.Slots[i] = slots.Slot{Primary: "st1", Backups: []string{"st2"}, Epoch: 4}
			}
			m.Slots[1].Epoch = tt.mapAt
			r.m.Store(m)
			for _, ks := range keysIn {
				for _, k := range ks {
					st.Mutate([]byte(k), 1, func(Item, bool) (Item, Op) { return Item{Value: []byte("v")}, OpStore })
				}
			}
			rec, err := readRecord(bufio.NewReader(bytes.NewReader(tt.rec)))
			if err != nil || !rec.purge {
				t.Fatalf("%q read as %+v, %v", tt.rec, rec, err)
			}
			if got := rp.apply(rec); got != tt.want+"\r\n" {
				t.Fatalf("answer %q, want %q", got, tt.want)
			}
			for sl, ks := range keysIn {
				for _, k := range ks {
					_, found := st.Get([]byte(k), 1)
					if found == slices.Contains(tt.dropped, sl) {
						t.Errorf("%s (slot %d) found %v after the purge of %v", k, sl, found, tt.dropped)
					}
				}
			}
		})
	}
}
