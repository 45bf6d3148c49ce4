package kvs

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/lbd-project/lbd/pkg/slots"
)

// Rebuild. A backup that is not in sync (new, or back after a failure) is
// rebuilt by the slot's primary: on the replication stream, which already
// carries the live writes, the primary sends a purge of each slot (the
// backup drops what it held of it: a node back from the dead may hold keys
// deleted meanwhile), then every item of the slots, each read and queued
// under its slot's lock, so that a live write to the same key is queued
// either before the item was read or after it was queued: neither
// overwrites the newer. The items go out at most RebuildBytesPerSec. Once
// the backup has applied them all, the primary adds it to the slots'
// in-sync sets by compare-and-set (if it is still their primary at the
// same epoch). From a slot's purge on, its sync writes wait for the
// backup too, and one it did not apply stops the join (cluster_join.go).

// DefaultRebuildBytesPerSec is the rebuild bandwidth limit by default.
const DefaultRebuildBytesPerSec = 32 << 20

// rebuildState is the progress of one backup's rebuild.
type rebuildState struct {
	Backup    string `json:"backup"`
	Slots     int    `json:"slots"`
	ItemsSent int64  `json:"items_sent"`
	ItemsAll  int64  `json:"items_total"`
	Done      bool   `json:"done"`
	Err       string `json:"error,omitempty"`
	// again: a map came while the rebuild ran and found the backup not
	// in sync (it may have left an in-sync set the rebuild had it join):
	// looked at again once the rebuild ends (see rebuilt).
	again bool
}

// rebuilds tracks the running rebuilds of a replicator.
type rebuilds struct {
	mu      sync.Mutex
	running map[string]*rebuildState // backup → state
}

// mapChanged starts a rebuild for every backup of this node's primary
// slots that is not in sync.
func (rp *replicator) mapChanged(m *slots.Map) {
	rp.joinsSeen(m)
	self := rp.r.n.opts.Node
	need := map[string][]int{}
	for i, s := range m.Slots {
		if s.Primary != self {
			continue
		}
		for _, b := range s.Backups {
			if !slices.Contains(s.InSync, b) {
				need[b] = append(need[b], i)
			}
		}
	}
	rp.rb.mu.Lock()
	defer rp.rb.mu.Unlock()
	if rp.rb.running == nil {
		rp.rb.running = map[string]*rebuildState{}
	}
	for b, ss := range need {
		if st := rp.rb.running[b]; st != nil && !st.Done {
			st.again = true
			continue
		}
		st := &rebuildState{Backup: b, Slots: len(ss)}
		rp.rb.running[b] = st
		go rp.rebuild(b, ss, m, st)
	}
}

// progress returns the rebuilds' states.
func (rp *replicator) progress() []rebuildState {
	rp.rb.mu.Lock()
	defer rp.rb.mu.Unlock()
	var out []rebuildState
	for _, st := range rp.rb.running {
		out = append(out, *st)
	}
	return out
}

// rebuild streams slots ss to backup, then marks them in sync.
func (rp *replicator) rebuild(backup string, ss []int, m *slots.Map, st *rebuildState) {
	err := rp.rebuildOnce(backup, ss, m, st)
	rp.rebuilt(st, err)
}

// rebuilt ends rebuild st, which err stopped if not nil: a
// stopped one is retried with the next map, or in a while; one that a map
// found running looks at the latest map now (the map's rebuild was not
// started then, and no other map may come).
func (rp *replicator) rebuilt(st *rebuildState, err error) {
	rp.rb.mu.Lock()
	st.Done = true
	if err != nil {
		st.Err = err.Error()
	}
	again := st.again
	rp.rb.mu.Unlock()
	wait := time.Duration(0)
	if err != nil {
		rp.r.n.log.Info("kvs: rebuild stopped", "tenant", rp.r.tenant, "backup", st.Backup, "err", err)
		again, wait = true, time.Second
	} else {
		rp.r.n.log.Info("kvs: backup rebuilt", "tenant", rp.r.tenant, "backup", st.Backup, "slots", st.Slots, "items", st.ItemsSent)
	}
	if !again {
		return
	}
	go func() {
		select {
		case <-rp.r.n.ctx.Done():
		case <-time.After(wait):
			if m := rp.r.m.Load(); m != nil {
				rp.mapChanged(m)
			}
		}
	}()
}

func (rp *replicator) rebuildOnce(backup string, ss []int, m *slots.Map, st *rebuildState) error {
	pc := rp.stream(backup)
	if pc.isDead() {
		return fmt.Errorf("backup %s unreachable", backup)
	}
	want := make([]bool, slots.Count)
	epochs := map[int]uint64{}
	for _, i := range ss {
		want[i] = true
		epochs[i] = m.Slots[i].Epoch
	}
	j := rp.startJoin(backup, epochs)
	defer func() {
		if !j.committed.Load() {
			rp.endJoin(j)
		}
	}()
	// One purge per epoch of the slots: the backup drops them in one pass
	// over its store. A write sent before it is dropped too, and one sent
	// after applied after it; from a slot's join on, its writes wait for
	// the backup, and the copy below sends the slots' items as they are
	// then.
	var last []*future
	for _, g := range byEpoch(ss, epochs) {
		last = append(last, pc.send(purgeRecord(epochs[g[0]], g)))
		for _, i := range g {
			l := &rp.locks[i]
			l.mu.Lock()
			j.live[i] = true // the slot's writes from now on wait for the backup
			l.mu.Unlock()
		}
	}
	keys := storeKeys(rp.inner, func(k []byte) bool { return want[slots.Of(k)] })
	rp.rb.mu.Lock()
	st.ItemsAll = int64(len(keys))
	rp.rb.mu.Unlock()
	th := newThrottle(rp.r.n.opts.RebuildBytesPerSec)
	for _, k := range keys {
		i := slots.Of(k)
		l := &rp.locks[i]
		l.mu.Lock()
		if cur := rp.r.m.Load(); cur == nil || cur.Slots[i].Epoch != epochs[i] || cur.Slots[i].Primary != rp.r.n.opts.Node {
			l.mu.Unlock()
			return fmt.Errorf("slot %d changed during the rebuild", i)
		}
		it, err := rp.inner.Mutate(k, rp.r.svc.now(), func(cur Item, found bool) (Item, Op) { return cur, OpKeep })
		if err == nil && it.Value != nil {
			rec := encodeRecord(epochs[i], i, OpStore, k, it)
			f := pc.send(rec)
			th.sent += int64(len(rec))
			last = append(last[:0], f)
		}
		l.mu.Unlock()
		rp.rb.mu.Lock()
		st.ItemsSent++
		rp.rb.mu.Unlock()
		if pc.isDead() {
			return fmt.Errorf("backup %s: stream lost", backup)
		}
		if err := th.wait(rp.r.n.ctx); err != nil {
			return err
		}
	}
	// The stream is in order: when its last record is applied, all are.
	for _, f := range last {
		f.wait()
		if string(f.data) != "A\r\n" {
			return fmt.Errorf("backup %s: %q", backup, bytes.TrimSpace(f.data))
		}
	}
	ctx, cancel := context.WithTimeout(rp.r.n.ctx, rp.r.n.opts.RequestTimeout)
	defer cancel()
	self := rp.r.n.opts.Node
	err := rp.commitJoin(j, func() error {
		_, err := updateMap(ctx, rp.r.n.opts.Store, rp.r.tenant, func(cur *slots.Map) (*slots.Map, error) {
			add := map[int]uint64{}
			for _, i := range ss {
				if !slices.Contains(cur.Slots[i].InSync, backup) {
					add[i] = epochs[i]
				}
			}
			if len(add) == 0 {
				return nil, nil
			}
			return cur.AddInSyncAll(self, backup, add)
		})
		return err
	})
	if err == nil {
		// Its writes wait for the backup at once, not once the watch
		// brings the map: the leader may hand a slot over to it next.
		rp.r.refresh()
	}
	return err
}

// throttle paces a copy (a rebuild, a resync) to at most limit bytes a
// second on average.
type throttle struct {
	limit   int64
	started time.Time
	sent    int64 // bytes sent so far
}

// newThrottle starts a throttle of limit bytes a second.
func newThrottle(limit int64) *throttle {
	return &throttle{limit: max(limit, 1), started: time.Now()}
}

// wait waits, if what was sent is ahead of the limit, until it is not;
// an error if ctx ends first.
func (th *throttle) wait(ctx context.Context) error {
	ahead := time.Duration(float64(th.sent)/float64(th.limit)*float64(time.Second)) - time.Since(th.started)
	if ahead <= 10*time.Millisecond {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(ahead):
		return nil
	}
}

// purgeRecord tells a backup to drop what it holds of slots ss, all of
// the map's epoch.
func purgeRecord(epoch uint64, ss []int) []byte {
	return encodeRecordOp(epoch, ss[0], 'X', nil, Item{Value: slotList(ss)})
}

// byEpoch groups slots ss by their epochs, in ss's order.
func byEpoch(ss []int, epochs map[int]uint64) [][]int {
	var out [][]int
	at := map[uint64]int{}
	for _, i := range ss {
		j, ok := at[epochs[i]]
		if !ok {
			j = len(out)
			at[epochs[i]] = j
			out = append(out, nil)
		}
		out[j] = append(out[j], i)
	}
	return out
}

// storeKeys returns copies of the keys of st that want accepts.
func storeKeys(st Store, want func([]byte) bool) [][]byte {
	var out [][]byte
	switch s := st.(type) {
	case *MemoryStore:
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.Lock()
			for _, b := range sh.ring[sh.hand:] {
				if b != nil && want(b.keyBytes()) {
					out = append(out, bytes.Clone(b.keyBytes()))
				}
			}
			sh.mu.Unlock()
		}
	case *DurableStore:
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: itemsFrom, UpperBound: itemsTo})
		if err != nil {
			return nil
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			if k := it.Key()[1:]; want(k) {
				out = append(out, bytes.Clone(k))
			}
		}
	}
	return out
}

// purge applies a purge record (see purgeRecord): every key of its slots
// is dropped from the local store, in one pass over it; none if the map
// has a newer epoch for one of them (the record's answer).
func (rp *replicator) purge(rec record) string {
	ss := []int{rec.slot} // a record of one slot has no list
	if len(rec.item.Value) > 0 {
		var err error
		if ss, err = parseSlotList(rec.item.Value); err != nil {
			return "E " + err.Error() + "\r\n"
		}
	}
	want := make([]bool, slots.Count)
	m := rp.r.m.Load()
	for _, i := range ss {
		if m != nil && m.Slots[i].Epoch > rec.epoch {
			return "S " + strconv.FormatUint(m.Slots[i].Epoch, 10) + "\r\n"
		}
		want[i] = true
	}
	if err := rp.dropKeys(want); err != nil {
		return "E " + strings.ReplaceAll(err.Error(), "\r\n", " ") + "\r\n"
	}
	return "A\r\n"
}

// dropKeys drops every key of the slots wanted from the local store.
func (rp *replicator) dropKeys(want []bool) error {
	for _, k := range storeKeys(rp.inner, func(k []byte) bool { return want[slots.Of(k)] }) {
		if _, err := rp.inner.Mutate(k, rp.r.svc.now(), deleteFn); err != nil {
			return err
		}
	}
	return nil
}
