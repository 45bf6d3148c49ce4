package kvs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// Resync on takeover. With two copies besides the primary's, a write in
// flight when a slot's primary changes (a hand-over whose new map reached
// the backups at different times, a failover) can be applied by one
// backup and not by another: the old primary then undoes it and answers
// SERVER_ERROR (or died before answering), but a copy keeps it. Nothing
// acknowledged is lost, yet the copies disagree: if the new primary has the
// write and serves it, the backup that lacks it would, promoted later,
// make a write that was read vanish; if a backup has a write the new
// primary lacks, it would make one appear after reads that missed it.
//
// So a node that takes a slot over (it was not its primary in the map it
// had before, and the slot has an in-sync backup other than the old
// primary) serves the slot only once it made every in-sync backup's copy
// equal to its own: on the replication stream, a begin record (B) for the
// slots, then every item of the slots (F: stored as is, even over an item
// with a higher cas), then an end record (Z), on which the backup deletes
// the slots' keys that neither an F nor a live write touched since the B.
// Its copy is the truth: it had every acknowledged write, as an in-sync
// backup. A backup applies the B only once its own map has the new epoch
// (before that, the old primary's writes could still run there) and no
// write it ran as the old primary still waits for its backups (so no undo
// of one comes after the resync). A backup that does not apply the resync
// leaves the in-sync set (shrink), as for a write; a resync that cannot
// finish is tried again, the slot unserved meanwhile. While the slot is
// not served a request for it waits, as for a fenced slot, and is sent
// again once it is (the node's change notification). The new primary
// serves nothing of the slot before, reads included: a write nobody was
// told succeeded can still go either way until then.
//
// With one backup, the old primary hands over only while the new primary
// is its sole backup (pkg/slots.Advance): a write ran either at both or
// only at the old primary, which undid it, so no resync is needed; nor
// after a failover with no in-sync backup left.

// resyncTimeout bounds how long a backup waits, before a resync's begin,
// for its map to have the new epoch and its own writes to be done.
const resyncTimeout = time.Second

// resyncs is a replicator's resync state: at a primary, the slots waiting
// for theirs; at a backup, the keys touched since a begin.
type resyncs struct {
	// waiting[i] is 1 + the epoch of slot i that waits for its resync,
	// 0 if none (see resyncWaits).
	waiting [slots.Count]atomic.Uint64

	mu      sync.Mutex
	open    map[int]map[string]struct{} // slot → keys touched since its B
	anyOpen atomic.Bool
}

// takeover starts the resync of the slots this node takes over in m
// (prev: its map before); it runs before m is loaded, so that no request
// of those slots is served under m first.
func (rp *replicator) takeover(prev, m *slots.Map) {
	if prev == nil || m.Replication != slots.Sync {
		return
	}
	self := rp.r.n.opts.Node
	var ss []int
	for i := range m.Slots {
		s, p := m.Slots[i], prev.Slots[i]
		if s.Primary != self || p.Primary == self || s.Epoch == p.Epoch {
			continue
		}
		if !slices.ContainsFunc(s.InSync, func(b string) bool { return b != p.Primary }) {
			continue
		}
		rp.rs.waiting[i].Store(s.Epoch + 1)
		ss = append(ss, i)
	}
	if len(ss) > 0 {
		go rp.resync(ss, m)
	}
}

// resyncWaits reports whether slot at epoch waits for its resync.
func (rp *replicator) resyncWaits(slot int, epoch uint64) bool {
	return rp.rs.waiting[slot].Load() == epoch+1
}

// resync resyncs the slots ss taken over in m until done, or until they
// are no longer this node's at that epoch.
func (rp *replicator) resync(ss []int, m *slots.Map) {
	self := rp.r.n.opts.Node
	for {
		// m is loaded just after takeover: until then, go by m.
		cur := rp.r.m.Load()
		if cur == nil || slices.ContainsFunc(ss, func(i int) bool { return cur.Slots[i].Epoch < m.Slots[i].Epoch }) {
			cur = m
		}
		var left []int
		for _, i := range ss {
			e := m.Slots[i].Epoch
			if rp.resyncWaits(i, e) && cur.Slots[i].Primary == self && cur.Slots[i].Epoch == e {
				left = append(left, i)
			}
		}
		if len(left) == 0 {
			return
		}
		err := rp.resyncOnce(left, cur)
		if err == nil {
			for _, i := range left {
				e := m.Slots[i].Epoch
				rp.rs.waiting[i].CompareAndSwap(e+1, 0)
			}
			rp.r.n.log.Info("kvs: slots taken over, backups resynced", "tenant", rp.r.tenant, "slots", len(left))
			rp.r.n.notify() // the requests waiting for the slots run now
			return
		}
		rp.r.n.log.Warn("kvs: resync of slots taken over", "tenant", rp.r.tenant, "slots", len(left), "err", err)
		select {
		case <-rp.r.n.ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// resyncOnce sends slots ss's items to their in-sync backups in m and
// waits for them; a backup that does not apply them leaves the in-sync
// set. An error: a backup could not be taken out.
func (rp *replicator) resyncOnce(ss []int, m *slots.Map) error {
	want := make([]bool, slots.Count)
	for _, i := range ss {
		want[i] = true
	}
	bySlot := map[int][][]byte{}
	for _, k := range storeKeys(rp.inner, func(k []byte) bool { return want[slots.Of(k)] }) {
		i := slots.Of(k)
		bySlot[i] = append(bySlot[i], k)
	}
	// The slots of each backup, by epoch (a record's slots share one).
	type group struct {
		backup string
		epoch  uint64
	}
	groups := map[group][]int{}
	for _, i := range ss {
		for _, b := range m.Slots[i].InSync {
			g := group{b, m.Slots[i].Epoch}
			groups[g] = append(groups[g], i)
		}
	}
	var errs []error
	for g, gs := range groups {
		pc := rp.stream(g.backup)
		list := slotList(gs)
		fs := []*future{pc.send(encodeRecordOp(g.epoch, gs[0], 'B', nil, Item{Value: list}))}
		now := rp.r.svc.now()
		for _, i := range gs {
			l := &rp.locks[i]
			l.mu.Lock()
			for _, k := range bySlot[i] {
				it, err := rp.inner.Mutate(k, now, func(cur Item, found bool) (Item, Op) { return cur, OpKeep })
				if err == nil && it.Value != nil {
					fs = append(fs, pc.send(encodeRecordOp(g.epoch, i, 'F', k, it)))
				}
			}
			l.mu.Unlock()
		}
		fs = append(fs, pc.send(encodeRecordOp(g.epoch, gs[0], 'Z', nil, Item{Value: list})))
		failed := ""
		for _, f := range fs {
			f.wait()
			if string(f.data) != "A\r\n" && failed == "" {
				failed = strings.TrimSpace(string(f.data))
			}
		}
		if failed == "" {
			continue
		}
		if err := rp.shrink(g.backup, gs[0], g.epoch); err != nil {
			errs = append(errs, fmt.Errorf("backup %s did not apply the resync (%s) and could not leave the in-sync set: %w", g.backup, failed, err))
		}
	}
	return errors.Join(errs...)
}

// slotList encodes slots as a B or Z record's value.
func slotList(ss []int) []byte {
	var b []byte
	for j, i := range ss {
		if j > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(i), 10)
	}
	return b
}

// parseSlotList decodes a B or Z record's slots.
func parseSlotList(v []byte) ([]int, error) {
	var out []int
	for _, f := range bytes.Fields(v) {
		i, err := strconv.Atoi(string(f))
		if err != nil || i < 0 || i >= slots.Count {
			return nil, fmt.Errorf("bad slot %q", f)
		}
		out = append(out, i)
	}
	if len(out) == 0 {
		return nil, errors.New("no slots")
	}
	return out, nil
}

// resyncBegin applies a B record at a backup (see the top of the file).
func (rp *replicator) resyncBegin(rec record) string {
	ss, err := parseSlotList(rec.item.Value)
	if err != nil {
		return "E " + err.Error() + "\r\n"
	}
	// The new map here first: from then on, this node runs no write of
	// the slots as their primary.
	ctx, cancel := context.WithTimeout(rp.r.n.ctx, resyncTimeout)
	defer cancel()
	for {
		ch := rp.r.n.changes()
		m := rp.r.m.Load()
		behind := m == nil
		for _, i := range ss {
			if m != nil && m.Slots[i].Epoch > rec.epoch {
				return "S " + strconv.FormatUint(m.Slots[i].Epoch, 10) + "\r\n"
			}
			behind = behind || m.Slots[i].Epoch < rec.epoch
		}
		if !behind {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "E map behind epoch " + strconv.FormatUint(rec.epoch, 10) + "\r\n"
		}
	}
	for _, i := range ss {
		// Its writes as the old primary done (or undone) first.
		l := &rp.locks[i]
		l.mu.Lock()
		for len(l.pending) > 0 {
			l.cond.Wait()
		}
		rp.rs.mu.Lock()
		if rp.rs.open == nil {
			rp.rs.open = map[int]map[string]struct{}{}
		}
		rp.rs.open[i] = map[string]struct{}{}
		rp.rs.anyOpen.Store(true)
		rp.rs.mu.Unlock()
		l.mu.Unlock()
	}
	return "A\r\n"
}

// resyncTouch notes, at a backup, a key that a record of a slot being
// resynced stored or deleted.
func (rp *replicator) resyncTouch(slot int, key []byte) {
	if !rp.rs.anyOpen.Load() {
		return
	}
	rp.rs.mu.Lock()
	if t := rp.rs.open[slot]; t != nil {
		t[string(key)] = struct{}{}
	}
	rp.rs.mu.Unlock()
}

// resyncDrop forgets slot's resync (a purge replaces it).
func (rp *replicator) resyncDrop(slot int) {
	if !rp.rs.anyOpen.Load() {
		return
	}
	rp.rs.mu.Lock()
	delete(rp.rs.open, slot)
	rp.rs.anyOpen.Store(len(rp.rs.open) > 0)
	rp.rs.mu.Unlock()
}

// resyncEnd applies a Z record at a backup: the keys of its slots that no
// record touched since their B are not the primary's, and go.
func (rp *replicator) resyncEnd(rec record) string {
	ss, err := parseSlotList(rec.item.Value)
	if err != nil {
		return "E " + err.Error() + "\r\n"
	}
	rp.rs.mu.Lock()
	touched := map[int]map[string]struct{}{}
	for _, i := range ss {
		t := rp.rs.open[i]
		if t == nil {
			rp.rs.mu.Unlock()
			return "E no resync of slot " + strconv.Itoa(i) + " begun\r\n"
		}
		touched[i] = t
		delete(rp.rs.open, i)
	}
	rp.rs.anyOpen.Store(len(rp.rs.open) > 0)
	rp.rs.mu.Unlock()
	stale := storeKeys(rp.inner, func(k []byte) bool {
		t := touched[slots.Of(k)]
		if t == nil {
			return false
		}
		_, ok := t[string(k)]
		return !ok
	})
	now := rp.r.svc.now()
	for _, k := range stale {
		if _, err := rp.inner.Mutate(k, now, deleteFn); err != nil {
			return "E " + strings.ReplaceAll(err.Error(), "\r\n", " ") + "\r\n"
		}
	}
	return "A\r\n"
}
