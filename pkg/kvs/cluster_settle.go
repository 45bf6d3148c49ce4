package kvs

import (
	"fmt"
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
// once. Until its map changes, the old primary runs no other write of the
// slot (it fenced it, see replicator.fenced): one waiting behind the
// undone write would run from the undone copy, and the backup that has
// the undone write would take the later one as newer.
//
// The old primary asks the backups that got the write, on its replication
// streams to them, with a Q record of the write's epoch and slot: A (this
// node took the slot over straight from that epoch, and its resync is
// done: it decided), W (not yet, or not here yet) or E (it did not take
// the slot over from that epoch). The one that answers A decides, even if
// the slot has moved on since (its resync made every in-sync copy equal
// its own, and the copies that the slot moved to since have it). Anything
// the old primary cannot be sure of (no decision within the time, the
// decider's answer to the write lost) is the error of the split write, as
// before: the write may have happened.

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
// backup that took its slot over decides it (see above): nil if it
// happened, an error that says "unavailable" if it ran nowhere, sw if it
// is not certain.
func (rp *replicator) settle(key []byte, sw *splitWrite) error {
	deadline := time.Now().Add(rp.r.n.opts.RequestTimeout / 2)
	q := encodeRecordOp(sw.epoch, sw.slot, 'Q', nil, Item{})
	qs := make([]*future, len(sw.backups))
	for wait := lagRetry; ; wait = min(2*wait, maxLagRetry) {
		for j, b := range sw.backups {
			qs[j] = rp.stream(b).send(q)
		}
		later := false
		for j, f := range qs {
			f.wait()
			switch string(f.data) {
			case "A\r\n":
				return rp.decided(key, sw, j)
			case "W\r\n":
				later = true
			}
		}
		if !later || time.Until(deadline) < wait {
			return sw
		}
		time.Sleep(wait)
	}
}

// decided returns the outcome of split write sw of key as backup j, which
// took its slot over and made the copies agree, decided it: its answer to
// the write.
func (rp *replicator) decided(key []byte, sw *splitWrite, j int) error {
	a := sw.answers[j]
	a.wait()
	switch {
	case string(a.data) == "A\r\n":
		return nil
	case refused(a.data):
		return fmt.Errorf("lbd: unavailable: slot %d moved to %s, which refused a write of %q: it applied nowhere", sw.slot, sw.backups[j], key)
	}
	return sw // its answer was lost
}

// settled answers a Q record (see settle): A once this node took the slot
// over straight from the record's epoch (its map before had that epoch)
// and its resync then is done, W until then or while its map is not past
// that epoch, E if it is and this node did not take the slot over from it.
func (rp *replicator) settled(rec record) string {
	rp.rs.tookMu.Lock()
	took := rp.rs.took[rec.slot]
	rp.rs.tookMu.Unlock()
	m := rp.r.m.Load()
	switch {
	case took.from == rec.epoch && took.at > rec.epoch && took.done:
		return "A\r\n"
	case took.from == rec.epoch && took.at > rec.epoch, m == nil || m.Slots[rec.slot].Epoch <= rec.epoch:
		return "W\r\n"
	}
	return "E slot " + strconv.Itoa(rec.slot) + " was not taken over by " + rp.r.n.opts.Node + " from epoch " + strconv.FormatUint(rec.epoch, 10) + "\r\n"
}

// takeoverOf is a slot's last takeover by this node: at epoch at, from
// epoch from in its map before; done once its resync is.
type takeoverOf struct {
	at, from uint64
	done     bool
}

// tookOver records that this node takes slot over at epoch at, from the
// slot's epoch from in its map before, its resync done already if done
// (see settled).
func (rp *replicator) tookOver(slot int, at, from uint64, done bool) {
	rp.rs.tookMu.Lock()
	rp.rs.took[slot] = takeoverOf{at, from, done}
	rp.rs.tookMu.Unlock()
}

// tookOverDone records that the resync of slot taken over at epoch at is
// done (see settled).
func (rp *replicator) tookOverDone(slot int, at uint64) {
	rp.rs.tookMu.Lock()
	if rp.rs.took[slot].at == at {
		rp.rs.took[slot].done = true
	}
	rp.rs.tookMu.Unlock()
}
