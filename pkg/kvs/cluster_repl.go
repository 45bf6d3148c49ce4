package kvs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// Replication. A clustered tenant's store is wrapped in a replicator: a
// write at a slot's primary is applied to the local store and, under the
// slot's lock (so that a key's records leave in the order its writes were
// applied), queued on the stream to each of the slot's backups as a record
// of the item as stored (its value, flags, expiry and cas: a backup stores
// exactly what the primary did, and a promoted backup hands out the same cas
// uniques). In sync mode the write is acknowledged once every in-sync backup
// has applied the record (to a durable store, as durably as its sync mode
// says); a backup that fails to is taken out of the slot's in-sync set in
// the cluster state first (the Kafka ISR pattern), and if that cannot be
// committed (this node is no longer the primary at that epoch) the write
// fails. A backup refuses records of an epoch older than its map's, so a
// primary that was failed over can no longer have writes acknowledged.
// Until its write is acknowledged, reads of the key wait: no client reads a
// value that a failover could still lose.
//
// Record (primary to backup), and the backup's answer:
//
//	R EPOCH SLOT OP FLAGS EXPTIME CAS META KEYLEN VALUELEN\r\n KEY VALUE \r\n
//	A\r\n (applied) | S EPOCH\r\n (stale epoch) | E MESSAGE\r\n
//
// OP is S (store the item) or D (delete the key); X (purge the slots
// listed as its value, or SLOT) for a rebuild; B, L and F (and D) for a
// new primary's resync (cluster_resync.go), whose B and L answers are "A"
// and the backup's digests or key list; Q for an old primary settling a
// write that a move split (cluster_settle.go), answered A, W (not yet) or
// E.

// replicator is the Store of a clustered tenant.
type replicator struct {
	r     *router
	inner Store
	locks [slots.Count]slotLock

	mu      sync.Mutex
	streams map[string]*peerConn // backup node → its stream
	closed  bool
	// shrinkMu serializes in-sync shrinks; shrinks counts them.
	shrinkMu sync.Mutex
	shrinks  atomic.Int64
	rb       rebuilds
	js       joins
	rs       resyncs
	// holdUntil (unix nanoseconds): a backup left the in-sync sets, and
	// writes are acknowledged only after this (see shrink).
	holdUntil atomic.Int64
	// fenced[slot] is 1 + the version of the slot map under which this
	// node stopped serving the slot: a write it applied could be neither
	// acknowledged by a backup nor the backup taken out of the in-sync set
	// (the node may be cut off, and a failover under way). The write is
	// undone here, and the slot is not served until the map changes.
	fenced [slots.Count]atomic.Uint64
	// streamSeq is the sequence of the last stream dialed to a backup
	// (see stream); sources, on the backup side, is each primary's
	// newest stream (see serveBackup).
	streamSeq atomic.Uint64
	srcMu     sync.Mutex
	sources   map[string]*streamSource
	// afterApply, tests only: at a backup, called with each record applied
	// from a stream, before its answer (a slow disk may sleep in it); true
	// ends the stream instead of answering (the answer is lost with the
	// connection).
	afterApply atomic.Pointer[func(record) bool]
}

// streamSource is, at a backup, the newest replication stream of one
// primary: only its records are applied. A stream the primary gave up (it
// timed out, or was cut off) can still deliver what the kernel had
// buffered for it long after, once the network heals: its purges, deletes
// and items, older than what the stream that replaced it carried, would
// undo a later rebuild and acknowledged writes of a backup in sync.
type streamSource struct {
	mu  sync.Mutex // held while a record of the source is applied
	seq uint64
}

// isFenced reports whether the node stopped serving slot under the
// current map (the fence is by map version), or, taken over at epoch,
// the slot waits for its backups' resync (cluster_resync.go).
func (rp *replicator) isFenced(slot int, epoch uint64) bool {
	return rp.fencedNow(slot) || rp.resyncWaits(slot, epoch)
}

// fencedNow reports whether the node stopped serving slot under the
// current map (see fenced).
func (rp *replicator) fencedNow(slot int) bool {
	return rp.fenced[slot].Load() == rp.r.ver.Load()+1
}

// slotLock orders a slot's writes and holds reads of keys whose write is
// not acknowledged yet.
type slotLock struct {
	mu      sync.Mutex
	cond    sync.Cond
	pending map[string]int
}

var _ Store = (*replicator)(nil)

func newReplicator(r *router, inner Store) *replicator {
	rp := &replicator{r: r, inner: inner, streams: map[string]*peerConn{}}
	for i := range rp.locks {
		rp.locks[i].cond.L = &rp.locks[i].mu
	}
	return rp
}

// slot returns key's slot and its placement; ok false without a map.
func (rp *replicator) slot(key []byte) (int, slots.Slot, *slots.Map) {
	m := rp.r.m.Load()
	i := slots.Of(key)
	if m == nil {
		return i, slots.Slot{}, nil
	}
	return i, m.Slots[i], m
}

// Get implements Store: a key whose write awaits its backups is read once
// they have it.
func (rp *replicator) Get(key []byte, now int64) (Item, bool) {
	if !rp.r.backups.Load() {
		// No slot has backups (as under the map slot would read: see
		// router.refresh), and no read waits: the slot's entry is not
		// read, a cache miss per key.
		return rp.inner.Get(key, now)
	}
	i, s, _ := rp.slot(key)
	if len(s.Backups) == 0 {
		return rp.inner.Get(key, now)
	}
	l := &rp.locks[i]
	l.mu.Lock()
	for l.pending[string(key)] > 0 {
		l.cond.Wait()
	}
	it, ok := rp.inner.Get(key, now)
	l.mu.Unlock()
	return it, ok
}

// anyPending reports whether a write to one of keys awaits its backups
// (a read of it would wait).
func (rp *replicator) anyPending(keys [][]byte) bool {
	for _, k := range keys {
		l := &rp.locks[slots.Of(k)]
		l.mu.Lock()
		p := l.pending[string(k)] > 0
		l.mu.Unlock()
		if p {
			return true
		}
	}
	return false
}

// Mutate implements Store.
func (rp *replicator) Mutate(key []byte, now int64, fn MutateFunc) (Item, error) {
	i, s, m := rp.slot(key)
	if len(s.Backups) == 0 {
		return rp.inner.Mutate(key, now, fn)
	}
	if self := rp.r.n.opts.Node; s.Primary != self {
		// Routed by an older map: it runs at the slot's primary.
		return Item{}, fmt.Errorf("lbd: unavailable: slot %d moved to %s", i, s.Primary)
	}
	l := &rp.locks[i]
	l.mu.Lock()
	for l.pending[string(key)] > 0 && m.Replication == slots.Sync {
		l.cond.Wait() // a read-modify-write reads acknowledged data only
	}
	// The placement again, under the slot's lock, as the record leaves:
	// a backup may have left the in-sync set meanwhile (the write does
	// not wait for it, and holds writes again, see shrink) or joined it
	// (the write waits for it: the leader may make it the primary next).
	// A slot that moved meanwhile (another primary or epoch) is not
	// written here: under the old placement, with no backup in sync
	// there, nothing would refuse the write and the new primary would
	// never see it. Nor is a slot fenced meanwhile (a write before this
	// one was undone here, see settle): this one would run from the
	// undone copy, and a backup that has the undone write would overwrite
	// it. It ran nowhere yet: the forwarding node sends it to the new
	// primary.
	js := rp.joinsOf(i) // before the map (see joinsOf)
	_, cur, cm := rp.slot(key)
	if cur.Primary != s.Primary || cur.Epoch != s.Epoch || rp.fencedNow(i) {
		l.mu.Unlock()
		return Item{}, fmt.Errorf("lbd: unavailable: slot %d moved while the write waited", i)
	}
	s, m = cur, cm
	var op Op
	var prev Item
	var prevFound bool
	it, err := rp.inner.Mutate(key, now, func(cur Item, found bool) (Item, Op) {
		next, o := fn(cur, found)
		op, prev, prevFound = o, cur, found
		return next, o
	})
	if err != nil || op == OpKeep {
		l.mu.Unlock()
		return it, err
	}
	rec := encodeRecord(s.Epoch, i, op, key, it)
	var waits, all, joinWaits []*future
	var waitFor []string
	var joining []*join
	for _, b := range s.Backups {
		f := rp.stream(b).send(rec)
		all = append(all, f)
		if m.Replication != slots.Sync {
			continue
		}
		if slices.Contains(s.InSync, b) {
			waits = append(waits, f)
			waitFor = append(waitFor, b)
		} else if j := joinFor(js, b); j != nil {
			// Rebuilt, and about to join (see cluster_join.go).
			joinWaits = append(joinWaits, f)
			joining = append(joining, j)
		}
	}
	hold := m.Replication == slots.Sync && rp.holding()
	if len(waits) == 0 && len(joinWaits) == 0 && !hold {
		l.mu.Unlock()
		return it, nil
	}
	if l.pending == nil {
		l.pending = map[string]int{}
	}
	k := string(key)
	l.pending[k]++
	l.mu.Unlock()

	var ended []*join
	waits, waitFor, ended = rp.settleJoins(joinWaits, joining, waits, waitFor)
	err = rp.await(i, s.Epoch, waits, waitFor, all, s.Backups)
	for _, j := range ended {
		rp.endJoin(j)
	}
	if err == nil && m.Replication == slots.Sync {
		rp.waitHold()
	}

	l.mu.Lock()
	if err != nil {
		// Before any read of the key runs: the write is undone here (a
		// backup that has it makes it happen after all), and the slot
		// fenced.
		rp.fenced[i].Store(rp.r.ver.Load() + 1)
		rp.inner.Mutate(key, now, func(cur Item, found bool) (Item, Op) {
			if prevFound {
				return prev, OpTouch
			}
			return cur, OpDelete
		})
	}
	if l.pending[k]--; l.pending[k] == 0 {
		delete(l.pending, k)
	}
	l.cond.Broadcast()
	l.mu.Unlock()
	var split *splitWrite
	if errors.As(err, &split) {
		// Released first: the new primary's resync waits for it here.
		err = rp.settle(key, split)
	}
	if err != nil {
		return Item{}, err
	}
	return it, nil
}

// await waits for the in-sync backups' answers (waits, from nodes) to a
// record of slot at epoch, sent to every backup (all, from backups); a
// backup that did not apply it leaves the in-sync set first. A record
// refused as stale is an error that says "unavailable" (the write ran
// nowhere: a forwarding node may send it to the slot's new primary) when
// no backup applied it (see appliedNowhere), and otherwise a *splitWrite
// (see settle).
func (rp *replicator) await(slot int, epoch uint64, waits []*future, nodes []string, all []*future, backups []string) error {
	for j, f := range waits {
		f.wait()
		ans := string(f.data)
		switch {
		case ans == "A\r\n":
			continue
		case strings.HasPrefix(ans, "S "):
			if appliedNowhere(all) {
				return fmt.Errorf("lbd: unavailable: slot %d epoch %d is stale at %s, the write applied nowhere", slot, epoch, nodes[j])
			}
			return &splitWrite{slot: slot, epoch: epoch, backups: backups, answers: all,
				err: fmt.Errorf("lbd: slot %d epoch %d is stale at %s", slot, epoch, nodes[j])}
		}
		if err := rp.shrink(nodes[j], slot, epoch); err != nil {
			return fmt.Errorf("lbd: backup %s did not apply a write (%s) and could not leave the in-sync set: %v",
				nodes[j], strings.TrimSpace(ans), err)
		}
	}
	return nil
}

// appliedNowhere waits for every backup's answer to a record and reports
// whether none applied it: each refused it (stale epoch, or an error
// storing it) or never got it (its stream was down). An answer lost with
// its connection may hide an applied record.
func appliedNowhere(all []*future) bool {
	for _, f := range all {
		f.wait()
		if !refused(f.data) {
			return false
		}
	}
	return true
}

// refused reports whether a backup's answer to a record says it did not
// apply it: it refused it (stale epoch, or an error storing it) or never
// got it (its stream was down).
func refused(ans []byte) bool {
	return bytes.HasPrefix(ans, []byte("S ")) || bytes.HasPrefix(ans, []byte("E ")) || ranNowhere(ans)
}

// shrink takes backup out of the in-sync set of every slot this node is
// the primary of, by compare-and-set on the slot map; it fails if slot is
// no longer this node's at epoch.
//
// The backup may have been the slots' primary under an older map (a primary
// moved to its in-sync backup, as a rebalance does, while the old one was
// cut off): it serves reads under that map until its lease runs out, and
// until the move it had every write this node acknowledged, as the in-sync
// backup. So, from the shrink on, this node acknowledges no write before
// the backup's lease, renewed at the latest when it stopped answering, has
// run out (see holding): no read there misses an acknowledged write.
func (rp *replicator) shrink(backup string, slot int, epoch uint64) error {
	rp.shrinks.Add(1)
	rp.hold()
	defer rp.hold()
	rp.shrinkMu.Lock()
	defer rp.shrinkMu.Unlock()
	self := rp.r.n.opts.Node
	ctx, cancel := context.WithTimeout(rp.r.n.ctx, rp.r.n.opts.RequestTimeout)
	defer cancel()
	shrunk := false
	_, err := updateMap(ctx, rp.r.n.opts.Store, rp.r.tenant, func(cur *slots.Map) (*slots.Map, error) {
		shrunk = false
		s := cur.Slots[slot]
		if s.Primary != self || s.Epoch != epoch {
			return nil, fmt.Errorf("%w: slot %d", slots.ErrNotPrimary, slot)
		}
		epochs := map[int]uint64{}
		for i, s := range cur.Slots {
			if s.Primary == self && slices.Contains(s.InSync, backup) {
				epochs[i] = s.Epoch
			}
		}
		if len(epochs) == 0 {
			return nil, nil // already out
		}
		shrunk = true
		return cur.ShrinkInSync(self, backup, epochs)
	})
	if err == nil {
		if shrunk {
			rp.r.n.log.Warn("kvs: backup left the in-sync set", "tenant", rp.r.tenant, "backup", backup)
		}
		rp.r.refresh()
	}
	return err
}

// hold makes writes wait for a lease from now (see shrink).
func (rp *replicator) hold() {
	raiseLease(&rp.holdUntil, time.Now().Add(rp.r.n.opts.leaseFor()).UnixNano())
}

// holding reports whether writes wait (see shrink).
func (rp *replicator) holding() bool {
	return time.Now().UnixNano() < rp.holdUntil.Load()
}

// waitHold waits until writes may be acknowledged (see shrink).
func (rp *replicator) waitHold() {
	for {
		d := time.Duration(rp.holdUntil.Load() - time.Now().UnixNano())
		if d <= 0 {
			return
		}
		select {
		case <-rp.r.n.ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// stream returns the replication stream to a backup, dialing it if it is
// not connected; a stream that cannot connect fails its records at once.
func (rp *replicator) stream(node string) *peerConn {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if pc := rp.streams[node]; pc != nil && !pc.isDead() {
		return pc
	}
	if pc := rp.streams[node]; pc != nil && time.Since(pc.sentAt) < 100*time.Millisecond {
		return pc // dead, retried shortly
	}
	c, err := rp.r.n.dial(node, "lbd-repl "+rp.r.tenant+" "+rp.r.n.opts.Node+" "+strconv.FormatUint(rp.nextStreamSeq(), 10)+"\r\n")
	if err != nil || rp.closed {
		pc := &peerConn{node: node, dead: true, sentAt: time.Now()}
		rp.streams[node] = pc
		if c != nil {
			c.Close()
		}
		return pc
	}
	pc := newPeerConn(c, node, rp.r.n.opts.RequestTimeout, "", readLineReply, true)
	rp.streams[node] = pc
	return pc
}

// readLineReply reads a one-line answer, of up to maxKeyList bytes (a
// resync's key list, see cluster_resync.go). A line cut short is returned
// with the error, so that the stream fails rather than lose its step.
func readLineReply(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil {
		return slices.Clone(line), nil
	}
	out := slices.Clone(line)
	for errors.Is(err, bufio.ErrBufferFull) {
		if len(out) > maxKeyList {
			return out, fmt.Errorf("%w: answer over %d bytes", errBadRecord, maxKeyList)
		}
		line, err = br.ReadSlice('\n')
		out = append(out, line...)
	}
	return out, err
}

// Flush implements Store.
func (rp *replicator) Flush() error { return rp.inner.Flush() }

// SetLimit implements Store.
func (rp *replicator) SetLimit(limit int64) { rp.inner.SetLimit(limit) }

// Stats implements Store.
func (rp *replicator) Stats() StoreStats { return rp.inner.Stats() }

// ClassStats implements Store.
func (rp *replicator) ClassStats() []ClassStats { return rp.inner.ClassStats() }

// ResetStats implements Store.
func (rp *replicator) ResetStats() { rp.inner.ResetStats() }

// Close implements Store.
func (rp *replicator) Close() error {
	rp.close()
	return rp.inner.Close()
}

// close stops the streams.
func (rp *replicator) close() {
	rp.mu.Lock()
	rp.closed = true
	streams := rp.streams
	rp.streams = map[string]*peerConn{}
	rp.mu.Unlock()
	for _, pc := range streams {
		if pc.c != nil {
			pc.fail("closing")
		}
	}
}

// encodeRecord builds a replication record.
func encodeRecord(epoch uint64, slot int, op Op, key []byte, it Item) []byte {
	o := byte('S')
	if op == OpDelete {
		o = 'D'
		it = Item{}
	}
	return encodeRecordOp(epoch, slot, o, key, it)
}

// encodeRecordOp builds a replication record of OP o.
func encodeRecordOp(epoch uint64, slot int, o byte, key []byte, it Item) []byte {
	b := make([]byte, 0, 64+len(key)+len(it.Value))
	b = append(b, "R "...)
	b = strconv.AppendUint(b, epoch, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(slot), 10)
	b = append(b, ' ', o, ' ')
	b = strconv.AppendUint(b, uint64(it.Flags), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, it.Exptime, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, it.CAS, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(it.Meta), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(key)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(it.Value)), 10)
	b = append(b, '\r', '\n')
	b = append(b, key...)
	b = append(b, it.Value...)
	return append(b, '\r', '\n')
}

// record is a decoded replication record.
type record struct {
	epoch uint64
	slot  int
	del   bool
	purge bool // drop whole slots (before a rebuild)
	// op is the record's OP: S, D, X, B, L, F (see resync), or Q (see
	// settle).
	op   byte
	key  []byte
	item Item
}

// errBadRecord: the stream is not in step; the connection ends.
var errBadRecord = errors.New("kvs: bad replication record")

// readRecord reads one record.
func readRecord(br *bufio.Reader) (record, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return record{}, err
	}
	f := strings.Fields(string(line))
	if len(f) != 10 || f[0] != "R" || len(f[3]) != 1 || !strings.Contains("SDXBLFQ", f[3]) {
		return record{}, fmt.Errorf("%w: %q", errBadRecord, line)
	}
	var n [9]uint64
	for i, s := range f[1:] {
		if i == 2 {
			continue
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return record{}, fmt.Errorf("%w: %q", errBadRecord, line)
		}
		n[i] = v
	}
	klen, vlen := n[7], n[8]
	if n[1] >= slots.Count || (klen == 0) != strings.Contains("XBLQ", f[3]) || klen > KeyMaxLength || vlen > maxForwardData || n[3] > 1<<32-1 || n[6] > 255 {
		return record{}, fmt.Errorf("%w: %q", errBadRecord, line)
	}
	buf := make([]byte, klen+vlen+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		return record{}, err
	}
	if buf[len(buf)-2] != '\r' || buf[len(buf)-1] != '\n' {
		return record{}, fmt.Errorf("%w: no terminator", errBadRecord)
	}
	rec := record{epoch: n[0], slot: int(n[1]), del: f[3] == "D", purge: f[3] == "X", op: f[3][0], key: buf[:klen:klen]}
	switch f[3] {
	case "B", "L", "X":
		rec.item.Value = buf[klen : klen+vlen : klen+vlen] // the slots
	case "S", "F":
		rec.item = Item{Flags: uint32(n[3]), Exptime: int64(n[4]), CAS: n[5], Meta: uint8(n[6]), Value: buf[klen : klen+vlen : klen+vlen]}
	}
	return rec, nil
}

// nextStreamSeq returns the sequence of a new stream to a backup: above
// every earlier one of this replicator, and from the clock so that a
// restarted node's streams supersede those of its previous run (a clock
// stepped back by more than the restart took makes its backups refuse its
// streams until the clock is past the old ones again: they stay out of
// sync meanwhile, nothing is lost).
func (rp *replicator) nextStreamSeq() uint64 {
	for {
		last := rp.streamSeq.Load()
		next := max(uint64(time.Now().UnixNano()), last+1)
		if rp.streamSeq.CompareAndSwap(last, next) {
			return next
		}
	}
}

// errStreamSuperseded ends a replication stream that a newer one of the
// same primary replaced.
var errStreamSuperseded = errors.New("kvs: replication stream superseded by a newer one")

// errAnswerLost ends a replication stream whose answer a test loses.
var errAnswerLost = errors.New("kvs: replication answer lost (test)")

// source registers a stream of sequence seq from primary from and returns
// its source, or nil if a newer stream of from is known already. seq 0 (a
// hello without one) is never superseded and supersedes nothing.
func (rp *replicator) source(from string, seq uint64) *streamSource {
	if seq == 0 {
		return nil
	}
	rp.srcMu.Lock()
	defer rp.srcMu.Unlock()
	if rp.sources == nil {
		rp.sources = map[string]*streamSource{}
	}
	src := rp.sources[from]
	if src == nil {
		src = &streamSource{}
		rp.sources[from] = src
	}
	src.mu.Lock() // after every record of an older stream being applied
	defer src.mu.Unlock()
	if seq < src.seq {
		return nil
	}
	src.seq = seq
	return src
}

// serveBackup applies the records a primary streams to this node on a
// stream of sequence seq (see streamSource), until a newer stream of the
// same primary supersedes it.
func (rp *replicator) serveBackup(from string, seq uint64, br *bufio.Reader, c net.Conn) error {
	bw := bufio.NewWriterSize(c, 4<<10)
	src := rp.source(from, seq)
	if seq != 0 && src == nil {
		return errStreamSuperseded
	}
	// Answers go out once no record is buffered behind, or every
	// reqsPerFlush records (see session.serve): the primary fails a
	// stream that answers nothing for its request timeout, and a
	// rebuild's records can fill the buffer faster than a slow disk
	// applies them.
	unflushed := 0
	for {
		rec, err := readRecord(br)
		if err != nil {
			bw.Flush()
			return err
		}
		ans, ok := rp.applyFrom(src, seq, rec)
		if !ok {
			bw.Flush()
			return errStreamSuperseded
		}
		if after := rp.afterApply.Load(); after != nil && (*after)(rec) {
			bw.Flush()
			return errAnswerLost
		}
		bw.WriteString(ans)
		if unflushed++; br.Buffered() == 0 || unflushed >= reqsPerFlush {
			c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := bw.Flush(); err != nil {
				return err
			}
			unflushed = 0
		}
	}
}

// applyFrom applies a record of a stream of sequence seq from src (nil: no
// sequence) unless a newer stream of the same primary was opened since;
// ok false if one was (nothing applied).
func (rp *replicator) applyFrom(src *streamSource, seq uint64, rec record) (ans string, ok bool) {
	if src == nil {
		return rp.apply(rec), true
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.seq != seq {
		return "", false
	}
	return rp.apply(rec), true
}

// apply applies a record to the local store and returns the answer.
func (rp *replicator) apply(rec record) string {
	if rec.op == 'Q' {
		return rp.settled(rec) // of an older epoch by design
	}
	if m := rp.r.m.Load(); m != nil && rec.epoch < m.Slots[rec.slot].Epoch {
		return "S " + strconv.FormatUint(m.Slots[rec.slot].Epoch, 10) + "\r\n"
	}
	switch rec.op {
	case 'B':
		return rp.resyncBegin(rec)
	case 'L':
		return rp.resyncList(rec)
	}
	if rec.purge {
		return rp.purge(rec)
	}
	now := rp.r.svc.now()
	_, err := rp.inner.Mutate(rec.key, now, func(cur Item, found bool) (Item, Op) {
		if rec.del {
			return cur, OpDelete
		}
		if found && cur.CAS > rec.item.CAS && rec.op != 'F' {
			return cur, OpKeep // newer already here (a resync's item replaces it)
		}
		it := rec.item
		it.Atime = now
		return it, OpTouch
	})
	if err != nil {
		return "E " + strings.ReplaceAll(err.Error(), "\r\n", " ") + "\r\n"
	}
	return "A\r\n"
}

// raiseAtomic raises v to at least floor.
func raiseAtomic(v *atomic.Uint64, floor uint64) {
	for {
		c := v.Load()
		if c >= floor || v.CompareAndSwap(c, floor) {
			return
		}
	}
}

// raiseCAS raises a store's cas counter to at least floor.
func raiseCAS(st Store, floor uint64) {
	switch s := st.(type) {
	case *MemoryStore:
		raiseAtomic(&s.cas, floor)
	case *DurableStore:
		raiseAtomic(&s.cas, floor)
	}
}
