package kvs

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/pkg/slots"
)

// TestSettledAnswers: a new primary answers an old primary's Q record
// (settle) A only once it took the slot over straight from the record's
// epoch and its resync is done; W while the move or the resync is not
// there yet; E when the slot went another way. The record survives its
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
		took     [2]uint64 // at, from
		resyncs  bool
		wantHead string
	}{
		{"no map yet", nil, [2]uint64{at, from}, false, "W"},
		{"the move not here yet", placed("st1", from), [2]uint64{}, false, "W"},
		{"the resync not done", placed("st3", at), [2]uint64{at, from}, true, "W"},
		{"done", placed("st3", at), [2]uint64{at, from}, false, "A"},
		{"another primary", placed("st2", at), [2]uint64{at, from}, false, "E"},
		{"taken over from another epoch", placed("st3", at), [2]uint64{at, from + 1}, false, "E"},
		{"taken over at another epoch", placed("st3", at+1), [2]uint64{at, from}, false, "E"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &router{n: &clusterNode{opts: ClusterOptions{Node: "st3"}}}
			rp := newReplicator(r, nil)
			if tt.m != nil {
				r.m.Store(tt.m)
			}
			rp.tookOver(slot, tt.took[0], tt.took[1])
			if tt.resyncs {
				rp.rs.waiting[slot].Store(at + 1)
			}
			got := rp.apply(rec)
			if !strings.HasPrefix(got, tt.wantHead) || !strings.HasSuffix(got, "\r\n") {
				t.Fatalf("answer %q, want %s...", got, tt.wantHead)
			}
		})
	}
}
