package kvs

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/lbd-project/lbd/pkg/slots"
)

// Resync on takeover. A write in flight when a slot's primary changes can
// end applied by one copy and not by another, and nothing acknowledged is
// lost, yet the copies disagree:
//
//   - with two copies besides the primary's, a hand-over whose new map
//     reached the backups at different times, or a failover: one backup
//     applied the write, another refused it (stale epoch); the old primary
//     undoes it, and the new primary's copy decides its answer once this
//     resync is done (cluster_settle.go), or it died before answering;
//   - a hand-over with any replicas, one included: the new primary applied
//     the write under the old epoch but its answer was lost with the
//     connection; the old primary cannot take it out of the in-sync set
//     (it is no longer the primary), so it undoes the write and answers
//     SERVER_ERROR, and it is now the new primary's in-sync backup without
//     the write.
//
// If the new primary has the write and serves it, a backup that lacks it
// would, promoted later, make a write that was read vanish; if a backup
// has a write the new primary lacks, it would make one appear after reads
// that missed it.
//
// So a node that takes a slot over (it was not its primary in the map it
// had before, and the slot has an in-sync backup: the old primary after a
// hand-over, or another) serves the slot only once it made every in-sync
// backup's copy equal to its own. Its copy is the truth: it had every acknowledged
// write, as an in-sync backup; the resync starts once its map has the new
// epoch and the old primary's records it was applying are done (from then
// on it refuses them). The copies can differ only by the writes
// in flight at the change (and by what one copy alone evicted or saw
// expire), so only what differs is sent, on the replication stream:
//
//  1. A begin record (B) for the slots. A backup applies it only once its
//     own map has the new epoch (before that, the old primary's writes
//     could still run there) and no write it ran as the old primary still
//     waits for its backups (so no undo of one comes after the resync).
//     From then on nothing but the new primary's records changes its copy
//     of the slots (the new primary serves nothing of them, and refuses
//     nothing either: its records are the only writer), bar expiry and
//     eviction. It answers with a digest of each slot: the sum of a hash
//     of each live item (key, cas, flags, expiry, value and the meta bits
//     a write sets; not the access time nor the fetched bit, which reads
//     set on one copy only), so independent of order.
//  2. The new primary computes its own digests. A slot whose digests are
//     equal on every in-sync backup is served at once.
//  3. For the other slots, a list record (L): the backup answers with each
//     live item's key and hash. The new primary sends, for each key whose
//     hash differs or that only one side has, its item (F: stored as is,
//     even over an item with a higher cas) or a delete (D) if it has none
//     (anymore: read at the time it is sent, under the slot's lock),
//     throttled to the rebuild's bandwidth limit; the slots are served
//     once every backup applied them.
//
// Expiry and eviction: an item that expired or was evicted on one copy
// only differs, and is sent or deleted as any other (one that expires
// between the two digests makes the slot differ, and its key is then
// deleted or sent again). What a copy evicts after the comparison is lost
// there as on any cache copy.
//
// A backup that does not apply a step (or whose key list would be too
// long for one answer) leaves the in-sync set (shrink), as for a write; a
// resync that cannot finish is tried again, the slot unserved meanwhile.
// While a slot is not served a request for it waits, as for a fenced slot,
// and is sent again once it is (the node's change notification). The new
// primary serves nothing of the slot before, reads included: a write
// nobody was told succeeded can still go either way until then.
//
// The old primary, an in-sync backup after a hand-over, is resynced as any
// backup: its B waits for the undo of its writes whose answers were lost
// (their shrink fails, the slot being no longer its own), so the digests
// compare its copy without them. If that takes longer than the new
// primary's request timeout (an answer that neither comes nor fails), the
// old primary leaves the in-sync set and is rebuilt. With one backup, the old primary
// hands over only while the new primary is its sole backup
// (pkg/slots.Advance): a write ran at both, or only at the old primary
// (which undid it: the copies are equal), or at the new primary only (its
// answer lost: the resync sends it). No resync after a failover with no
// in-sync backup left.
//
// Cost: the slots of one map change share one epoch, so a node resyncs
// them at once: one B (and, for differing slots only, one L) per backup,
// one pass over its store for its own digests, and one pass over each
// backup's store per B it gets, each hashing only the items of the slots
// in question. A drain of a node hands its primaries over in one step: the
// drained node gets one B from each node that takes slots from it.

// resyncTimeout bounds how long a backup waits, before a resync's begin,
// for its map to have the new epoch and its own writes to be done.
const resyncTimeout = time.Second

// maxKeyList bounds a backup's answer to a list record (one line).
const maxKeyList = maxForwardData

// resyncs is a replicator's resync state: at a primary, the slots waiting
// for theirs, and counters.
type resyncs struct {
	// waiting[i] is 1 + the epoch of slot i that waits for its resync,
	// 0 if none (see resyncWaits).
	waiting [slots.Count]atomic.Uint64
	// took[i], under tookMu: slot i's last takeover by this node (see
	// settled).
	tookMu sync.Mutex
	took   [slots.Count]takeoverOf

	// At the primary, over all resyncs: begins is the B records sent,
	// slotsEqual were served on equal digests, slotsCompared needed a key
	// list, keysSent is the items (F) and deletes (D) sent.
	begins        atomic.Int64
	slotsEqual    atomic.Int64
	slotsCompared atomic.Int64
	keysSent      atomic.Int64
}

// resyncStats is a snapshot of a replicator's resync counters.
type resyncStats struct {
	Begins, SlotsEqual, SlotsCompared, KeysSent int64
}

// resyncCounts returns the resync counters.
func (rp *replicator) resyncCounts() resyncStats {
	return resyncStats{rp.rs.begins.Load(), rp.rs.slotsEqual.Load(), rp.rs.slotsCompared.Load(), rp.rs.keysSent.Load()}
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
		rp.tookOver(i, s.Epoch, p.Epoch, len(s.InSync) == 0)
		if len(s.InSync) == 0 {
			continue // a failover with no in-sync backup left
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

// resynced serves slots ss of m: their resync is done.
func (rp *replicator) resynced(ss []int, m *slots.Map) {
	if len(ss) == 0 {
		return
	}
	for _, i := range ss {
		e := m.Slots[i].Epoch
		rp.tookOverDone(i, e)
		rp.rs.waiting[i].CompareAndSwap(e+1, 0)
	}
	rp.r.n.notify() // the requests waiting for the slots run now
}

// resync resyncs the slots ss taken over in m until done, or until they
// are no longer this node's at that epoch.
func (rp *replicator) resync(ss []int, m *slots.Map) {
	self := rp.r.n.opts.Node
	for {
		// m is loaded just after takeover: wait for it, then for the
		// records of the old primary being applied here under the map
		// before, so that this node's copy no longer changes.
		ch := rp.r.n.changes()
		cur := rp.r.m.Load()
		if cur == nil || slices.ContainsFunc(ss, func(i int) bool { return cur.Slots[i].Epoch < m.Slots[i].Epoch }) {
			select {
			case <-rp.r.n.ctx.Done():
				return
			case <-ch:
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		rp.quiesceSources()
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
		before := rp.resyncCounts()
		err := rp.resyncOnce(left, cur)
		if err == nil {
			after := rp.resyncCounts()
			rp.r.n.log.Info("kvs: slots taken over, backups resynced", "tenant", rp.r.tenant, "slots", len(left),
				"slots_equal", after.SlotsEqual-before.SlotsEqual, "keys_sent", after.KeysSent-before.KeysSent)
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

// quiesceSources waits for the records being applied here now (each
// under its stream source's lock, see applyFrom) to be done: one that
// passed its epoch check under the map before is applied by then.
func (rp *replicator) quiesceSources() {
	rp.srcMu.Lock()
	srcs := make([]*streamSource, 0, len(rp.sources))
	for _, src := range rp.sources {
		srcs = append(srcs, src)
	}
	rp.srcMu.Unlock()
	for _, src := range srcs {
		src.mu.Lock()
		src.mu.Unlock() // a barrier: nothing to do under it
	}
}

// resyncGroup is one backup's share of a resync: slots of one epoch (a
// record's slots share one).
type resyncGroup struct {
	backup string
	epoch  uint64
	slots  []int
}

// resyncOnce makes the copies of slots ss at their in-sync backups in m
// equal to this node's, serving each slot as soon as it is; a backup that
// does not apply a step leaves the in-sync set. An error: a backup could
// not be taken out (the slots not served yet are tried again).
func (rp *replicator) resyncOnce(ss []int, m *slots.Map) error {
	type key struct {
		backup string
		epoch  uint64
	}
	byKey := map[key]*resyncGroup{}
	var groups []*resyncGroup
	for _, i := range ss {
		for _, b := range m.Slots[i].InSync {
			k := key{b, m.Slots[i].Epoch}
			g := byKey[k]
			if g == nil {
				g = &resyncGroup{backup: b, epoch: k.epoch}
				byKey[k] = g
				groups = append(groups, g)
			}
			g.slots = append(g.slots, i)
		}
	}
	// 1. Begin, and each backup's digests.
	begins := make([]*future, len(groups))
	rp.rs.begins.Add(int64(len(groups)))
	for j, g := range groups {
		begins[j] = rp.stream(g.backup).send(encodeRecordOp(g.epoch, g.slots[0], 'B', nil, Item{Value: slotList(g.slots)}))
	}
	own := rp.slotDigests(ss)
	differ := make([]bool, slots.Count)
	var errs []error
	var copies []*resyncGroup
	for j, g := range groups {
		begins[j].wait()
		ds, err := parseDigests(begins[j].data, len(g.slots))
		if err != nil {
			errs = append(errs, rp.resyncFailed(g, err))
			continue
		}
		c := &resyncGroup{backup: g.backup, epoch: g.epoch}
		for k, i := range g.slots {
			if ds[k] != own[i] {
				differ[i] = true
				c.slots = append(c.slots, i)
			}
		}
		if len(c.slots) > 0 {
			copies = append(copies, c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// 2. The slots equal everywhere are served now.
	var equal, rest []int
	for _, i := range ss {
		if differ[i] {
			rest = append(rest, i)
		} else {
			equal = append(equal, i)
		}
	}
	rp.rs.slotsEqual.Add(int64(len(equal)))
	rp.resynced(equal, m)
	// 3. The keys that differ.
	for _, c := range copies {
		rp.rs.slotsCompared.Add(int64(len(c.slots)))
		if err := rp.resyncKeys(c); err != nil {
			errs = append(errs, rp.resyncFailed(c, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	rp.resynced(rest, m)
	return nil
}

// resyncFailed takes g's backup out of the in-sync set after a resync
// step it did not apply (why); an error if it could not be.
func (rp *replicator) resyncFailed(g *resyncGroup, why error) error {
	if err := rp.shrink(g.backup, g.slots[0], g.epoch); err != nil {
		return fmt.Errorf("backup %s did not apply the resync (%v) and could not leave the in-sync set: %w", g.backup, why, err)
	}
	return nil
}

// resyncKeys asks g's backup for its keys of g's slots and sends it what
// differs from this node's copy; an error if the backup did not apply it.
func (rp *replicator) resyncKeys(g *resyncGroup) error {
	pc := rp.stream(g.backup)
	lf := pc.send(encodeRecordOp(g.epoch, g.slots[0], 'L', nil, Item{Value: slotList(g.slots)}))
	mine := rp.keyHashes(g.slots)
	lf.wait()
	theirs, err := parseKeyList(lf.data)
	if err != nil {
		return err
	}
	var keys []string
	for k, h := range mine {
		if th, ok := theirs[k]; !ok || th != h {
			keys = append(keys, k)
		}
	}
	for k := range theirs {
		if _, ok := mine[k]; !ok {
			keys = append(keys, k)
		}
	}
	th := newThrottle(rp.r.n.opts.RebuildBytesPerSec)
	var fs []*future
	for _, k := range keys {
		key := []byte(k)
		i := slots.Of(key)
		l := &rp.locks[i]
		l.mu.Lock()
		it, found, err := peek(rp.inner, key, rp.r.svc.now())
		if err != nil {
			l.mu.Unlock()
			return fmt.Errorf("read %q: %w", key, err)
		}
		var rec []byte
		if found {
			rec = encodeRecordOp(g.epoch, i, 'F', key, it)
		} else {
			rec = encodeRecordOp(g.epoch, i, 'D', key, Item{})
		}
		fs = append(fs, pc.send(rec))
		l.mu.Unlock()
		rp.rs.keysSent.Add(1)
		th.sent += int64(len(rec))
		if err := th.wait(rp.r.n.ctx); err != nil {
			return err
		}
	}
	for _, f := range fs {
		f.wait()
		if string(f.data) != "A\r\n" {
			return errors.New(strings.TrimSpace(string(f.data)))
		}
	}
	return nil
}

// peek reads key's live item from st without changing it.
func peek(st Store, key []byte, now int64) (Item, bool, error) {
	var found bool
	it, err := st.Mutate(key, now, func(cur Item, f bool) (Item, Op) {
		found = f
		return cur, OpKeep
	})
	return it, found && err == nil, err
}

// itemHash hashes what a resync compares of an item: the key and what
// its writes set (see the top of the file).
func itemHash(key []byte, it Item) uint64 {
	var hdr [8 + 8 + 4 + 8 + 1]byte
	binary.LittleEndian.PutUint64(hdr[0:], uint64(len(key)))
	binary.LittleEndian.PutUint64(hdr[8:], it.CAS)
	binary.LittleEndian.PutUint32(hdr[16:], it.Flags)
	binary.LittleEndian.PutUint64(hdr[20:], uint64(it.Exptime))
	hdr[28] = it.Meta &^ MetaFetched
	d := xxhash.New()
	d.Write(hdr[:])
	d.Write(key)
	d.Write(it.Value)
	return d.Sum64()
}

// forItems calls fn with each live item of the local store in slots ss
// (see storeItems: fn keeps neither key nor value).
func (rp *replicator) forItems(ss []int, fn func(key []byte, it Item)) {
	want := make([]bool, slots.Count)
	for _, i := range ss {
		want[i] = true
	}
	storeItems(rp.inner, rp.r.svc.now(), func(k []byte) bool { return want[slots.Of(k)] }, fn)
}

// storeItems calls fn with each live item of st whose key want accepts.
// In a MemoryStore it runs under the item's shard's lock, one shard at a
// time, in one pass (no second lookup per key): fn must be quick, and
// keep neither the key nor the value it is given. Other stores: their
// keys first, then a read of each.
func storeItems(st Store, now int64, want func([]byte) bool, fn func(key []byte, it Item)) {
	if s, ok := st.(*MemoryStore); ok {
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.Lock()
			for _, b := range sh.ring[sh.hand:] {
				if b != nil && !b.expired(now) && want(b.keyBytes()) {
					fn(b.keyBytes(), b.item())
				}
			}
			sh.mu.Unlock()
		}
		return
	}
	for _, k := range storeKeys(st, want) {
		if it, ok, _ := peek(st, k, now); ok {
			fn(k, it)
		}
	}
}

// slotDigests returns the digest of each of slots ss in the local store:
// the sum of its live items' hashes.
func (rp *replicator) slotDigests(ss []int) map[int]uint64 {
	out := make(map[int]uint64, len(ss))
	for _, i := range ss {
		out[i] = 0
	}
	rp.forItems(ss, func(k []byte, it Item) { out[slots.Of(k)] += itemHash(k, it) })
	return out
}

// keyHashes returns the hash of each live item of slots ss in the local
// store, by key.
func (rp *replicator) keyHashes(ss []int) map[string]uint64 {
	out := map[string]uint64{}
	rp.forItems(ss, func(k []byte, it Item) { out[string(k)] = itemHash(k, it) })
	return out
}

// slotList encodes slots as a B or L record's value.
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

// parseSlotList decodes a B or L record's slots.
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

// appendDigests encodes a backup's answer to a B record: "A" and a digest
// (hex) per slot, in the record's order.
func appendDigests(b []byte, ds []uint64) []byte {
	b = append(b, 'A')
	for _, d := range ds {
		b = append(b, ' ')
		b = strconv.AppendUint(b, d, 16)
	}
	return append(b, '\r', '\n')
}

// parseDigests decodes the answer to a B record of n slots.
func parseDigests(ans []byte, n int) ([]uint64, error) {
	f := strings.Fields(string(ans))
	if len(f) == 0 || f[0] != "A" {
		return nil, errors.New(strings.TrimSpace(string(ans)))
	}
	if len(f) != n+1 {
		return nil, fmt.Errorf("%d digests for %d slots", len(f)-1, n)
	}
	out := make([]uint64, n)
	for j, s := range f[1:] {
		d, err := strconv.ParseUint(s, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("bad digest %q", s)
		}
		out[j] = d
	}
	return out, nil
}

// appendKeyList encodes a backup's answer to an L record: "A" and, per
// live item, its key (hex) and hash (hex) joined by a colon.
func appendKeyList(b []byte, keys [][]byte, hashes []uint64) []byte {
	b = append(b, 'A')
	for j, k := range keys {
		b = append(b, ' ')
		b = hex.AppendEncode(b, k)
		b = append(b, ':')
		b = strconv.AppendUint(b, hashes[j], 16)
	}
	return append(b, '\r', '\n')
}

// parseKeyList decodes the answer to an L record: hash by key.
func parseKeyList(ans []byte) (map[string]uint64, error) {
	f := strings.Fields(string(ans))
	if len(f) == 0 || f[0] != "A" {
		return nil, errors.New(strings.TrimSpace(string(ans)))
	}
	out := make(map[string]uint64, len(f)-1)
	for _, e := range f[1:] {
		hk, hh, ok := strings.Cut(e, ":")
		k, err := hex.DecodeString(hk)
		if !ok || err != nil || len(k) == 0 || len(k) > KeyMaxLength {
			return nil, fmt.Errorf("bad key %q", hk)
		}
		h, err := strconv.ParseUint(hh, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("bad hash %q", hh)
		}
		out[string(k)] = h
	}
	return out, nil
}

// resyncBegin applies a B record at a backup (see the top of the file):
// it answers with its digests of the slots.
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
		l.mu.Unlock()
	}
	ds := rp.slotDigests(ss)
	out := make([]uint64, len(ss))
	for j, i := range ss {
		out[j] = ds[i]
	}
	return string(appendDigests(nil, out))
}

// resyncList applies an L record at a backup: it answers with its live
// items' keys and hashes.
func (rp *replicator) resyncList(rec record) string {
	ss, err := parseSlotList(rec.item.Value)
	if err != nil {
		return "E " + err.Error() + "\r\n"
	}
	var keys [][]byte
	var hashes []uint64
	size := 0
	rp.forItems(ss, func(k []byte, it Item) {
		keys, hashes = append(keys, bytes.Clone(k)), append(hashes, itemHash(k, it))
		size += 2*len(k) + 18
	})
	if size > maxKeyList {
		return "E key list of " + strconv.Itoa(len(keys)) + " keys too long\r\n"
	}
	return string(appendKeyList(make([]byte, 0, size+8), keys, hashes))
}
