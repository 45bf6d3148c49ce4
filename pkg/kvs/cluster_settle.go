package kvs

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Writes split by a move. When a slot's primary moves while a write run by
// the old primary is on its way to the backups, they may learn the move at
// slightly different times: one refuses the write under the newer epoch,
// another applies it. The old primary undoes it, but cannot answer either
// way by itself: a backup has it, another does not. The slot's new primary
// decides: it took the slot over from the write's epoch, and before it
// serves the slot its resync makes every in-sync copy equal its own
// (cluster_resync.go). So once its resync is done, the write happened if the
// new primary applied it (its resync gave it to the others, this node
// included), and ran nowhere if it refused it (its resync took it back from
// the others): the old primary answers success, or "unavailable" and the
// forwarding node sends the write again to the new primary (see
// cluster_move.go). A client sees no error either way, and the write runs
// once.
//
// The old primary asks the new one on its replication stream to it, with
// a Q record of the write's epoch and slot: A (took the slot over straight
// from that epoch, and its resync is done), W (not yet) or E (the slot went
// another way). Anything it cannot be sure of (no new primary within the
// time, one that never got the write or whose answer was lost, an E) is
// the error of the split write, as before: the write may have happened.

// splitWrite is the error of a write, run at epoch, that a backup refused
// under a newer epoch while another may have applied it: answers are every
// backup's (in the order of backups). Its message is err's.
type splitWrite struct {
	slot    int
	epoch   uint64
	backups []string
	answers []*future
	err     error
}

func (e *splitWrite) Error() string { return e.err.Error() }

// settle returns the outcome of a split write of key, undone here, as the
// slot's new primary decides it (see above): nil if it happened, an error
// that says "unavailable" if it ran nowhere, sw if it is not certain.
func (rp *replicator) settle(key []byte, sw *splitWrite) error {
	deadline := time.Now().Add(rp.r.n.opts.RequestTimeout / 2)
	m := rp.r.m.Load()
	for m == nil || m.Slots[sw.slot].Epoch <= sw.epoch {
		if m, _ = rp.r.waitVer(rp.r.ver.Load(), deadline); m == nil {
			return sw // this node has not learned the move
		}
	}
	to := m.Slots[sw.slot].Primary
	j := slices.Index(sw.backups, to)
	if j < 0 {
		return sw
	}
	sw.answers[j].wait()
	applied := string(sw.answers[j].data) == "A\r\n"
	if !applied && !refused(sw.answers[j].data) {
		return sw // its answer was lost
	}
	q := encodeRecordOp(sw.epoch, sw.slot, 'Q', nil, Item{})
	for wait := lagRetry; ; wait = min(2*wait, maxLagRetry) {
		f := rp.stream(to).send(q)
		f.wait()
		switch string(f.data) {
		case "A\r\n":
			if applied {
				return nil
			}
			return fmt.Errorf("lbd: unavailable: slot %d moved to %s, which refused a write of %q: it applied nowhere", sw.slot, to, key)
		case "W\r\n":
		default:
			return sw
		}
		if time.Until(deadline) < wait {
			return sw
		}
		time.Sleep(wait)
	}
}

// settled answers a Q record (see settle): A once this node took the slot
// over straight from the record's epoch (its map before had that epoch)
// and its resync is done, W until then, E if the slot went another way.
func (rp *replicator) settled(rec record) string {
	m := rp.r.m.Load()
	if m == nil || m.Slots[rec.slot].Epoch <= rec.epoch {
		return "W\r\n" // the move is not here yet
	}
	s := m.Slots[rec.slot]
	rp.rs.tookMu.Lock()
	took := rp.rs.took[rec.slot]
	rp.rs.tookMu.Unlock()
	switch {
	case s.Primary != rp.r.n.opts.Node || took.at != s.Epoch || took.from != rec.epoch:
		return "E slot " + strconv.Itoa(rec.slot) + " epoch " + strconv.FormatUint(s.Epoch, 10) + " is not a hand-over to " + rp.r.n.opts.Node + " from epoch " + strconv.FormatUint(rec.epoch, 10) + "\r\n"
	case rp.resyncWaits(rec.slot, s.Epoch):
		return "W\r\n"
	}
	return "A\r\n"
}

// tookOver records that this node takes slot over at epoch at, from the
// slot's epoch from in its map before (see settled).
func (rp *replicator) tookOver(slot int, at, from uint64) {
	rp.rs.tookMu.Lock()
	rp.rs.took[slot] = struct{ at, from uint64 }{at, from}
	rp.rs.tookMu.Unlock()
}
