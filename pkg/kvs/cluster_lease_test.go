package kvs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// keyOf returns a key whose slot's primary is node (by tc's map).
func keyOf(t *testing.T, tc *testCluster, node int) (string, int) {
	t.Helper()
	m := tc.slotMap()
	for i := range 10000 {
		k := fmt.Sprintf("k%d", i)
		if sl := slots.Of([]byte(k)); m.Slots[sl].Primary == tc.names[node] && len(m.Slots[sl].InSync) == 1 {
			return k, sl
		}
	}
	t.Fatalf("no key with primary %s", tc.names[node])
	return "", 0
}

// nodeIndex returns the index of a node name.
func (tc *testCluster) nodeIndex(name string) int {
	for i, n := range tc.names {
		if n == name {
			return i
		}
	}
	tc.t.Fatalf("no node %s", name)
	return -1
}

// noStaleRead polls key at node addr until d has passed and fails if it
// ever reads old.
func noStaleRead(t *testing.T, addr, key, old string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		if v, found, ok := getVia(t, addr, key); ok && found && v == old {
			t.Fatalf("stale read: %s = %q", key, v)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestClusterLapsedLeaseWaitsForMap: a primary cut off from the other nodes
// and the cluster state loses its slot to its backup (failover) and the
// new primary takes a write; when the network is back but the node's
// cluster state still lags (its map is the old one), the leader's probes
// reach it again, and it must not serve the slot under its old map: it
// serves again only once its map is current.
func TestClusterLapsedLeaseWaitsForMap(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	p := 1 // node 0 is the leader
	key, sl := keyOf(t, tc, p)
	if !setVia(t, tc.addrs[p], key, "old") {
		t.Fatal("set failed")
	}
	tc.partition(p, true)
	deadline := time.Now().Add(20 * time.Second)
	for tc.slotMap().Slots[sl].Primary == tc.names[p] {
		if time.Now().After(deadline) {
			t.Fatal("no failover after 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	q := tc.nodeIndex(tc.slotMap().Slots[sl].Primary)
	// The slot's new backup is the third node, so that no rebuild brings
	// the new value to p (p's copy stays the old one).
	r := 3 - p - q
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := updateMap(ctx, tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		next := cur.Clone()
		next.Slots[sl].Backups, next.Slots[sl].InSync = []string{tc.names[r]}, nil
		return next, nil
	}); err != nil {
		t.Fatal(err)
	}
	for !setVia(t, tc.addrs[q], key, "new") {
		if time.Now().After(deadline) {
			t.Fatal("set at the new primary failed for 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The network heals; node p's view of the cluster state stays old.
	tc.mu.Lock()
	tier := tc.tiers[p]
	tc.mu.Unlock()
	tier.mu.Lock()
	n := tier.cluster
	tier.mu.Unlock()
	n.partition(false)
	noStaleRead(t, tc.addrs[p], key, "old", 3*time.Second)
	// Its state catches up: it answers again, with the new value.
	tc.stores[p].cut(false)
	if v, found, ok := getEventually(t, tc.addrs[p], key); !ok || !found || v != "new" {
		t.Fatalf("after the heal: %q found %v ok %v, want new", v, found, ok)
	}
}

// TestClusterShrinkOutlastsOldPrimary: a slot's primary moves to its
// in-sync backup (as a rebalance moves it) while the old primary is cut
// off but still holds its lease; the new primary's write cannot reach the
// old one and takes it out of the in-sync set. The old primary, serving
// under its old map until its lease runs out, must not read an old value
// once that write is acknowledged.
func TestClusterShrinkOutlastsOldPrimary(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	p := 1 // node 0 is the leader
	key, sl := keyOf(t, tc, p)
	if !setVia(t, tc.addrs[p], key, "old") {
		t.Fatal("set failed")
	}
	b := tc.nodeIndex(tc.slotMap().Slots[sl].InSync[0])
	tc.partition(p, true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := updateMap(ctx, tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		if cur.Slots[sl].Primary != tc.names[p] {
			return nil, fmt.Errorf("slot %d moved already", sl)
		}
		next := cur.Clone()
		next.Slots[sl] = slots.Slot{Primary: tc.names[b], Backups: []string{tc.names[p]}, InSync: []string{tc.names[p]}, Epoch: cur.MaxEpoch() + 1}
		return next, nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !setVia(t, tc.addrs[b], key, "new") {
		if time.Now().After(deadline) {
			t.Fatal("set at the new primary failed for 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	noStaleRead(t, tc.addrs[p], key, "old", time.Second)
}

// TestClusterWriteQueuedBehindMoveRunsNowhere: a write to a key queued at
// its primary behind another write of the key (which waits, here for the
// hold after a shrink) does not run once the slot moved meanwhile: under
// the old placement, where no backup was in sync, nothing would refuse it,
// it would be acknowledged, and the slot's new primary would never have
// it. It fails as having run nowhere (the forwarding node sends it to the
// new primary).
func TestClusterWriteQueuedBehindMoveRunsNowhere(t *testing.T) {
	tc := startCluster(t, 2, 1, slots.Sync)
	p := 1 // node 0 is the leader
	key, sl := keyOf(t, tc, p)
	b := tc.slotMap().Slots[sl].Backups[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tier := tc.tiers[p]
	tier.mu.Lock()
	r := tier.cluster.routers["t"]
	tier.mu.Unlock()
	waitVer := func(v uint64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); r.ver.Load() < v; {
			if time.Now().After(deadline) {
				t.Fatalf("%s has not seen map version %d", tc.names[p], v)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// The slot's only backup is a node that does not exist, out of sync:
	// the primary's writes wait for no backup.
	if _, err := updateMap(ctx, tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		next := cur.Clone()
		next.Slots[sl].Backups, next.Slots[sl].InSync = []string{"st9"}, nil
		return next, nil
	}); err != nil {
		t.Fatal(err)
	}
	e, _ := tc.store.Get(slots.Key("t"))
	waitVer(e.Version)

	set := func(v string) func(Item, bool) (Item, Op) {
		return func(cur Item, found bool) (Item, Op) { return Item{Value: []byte(v)}, OpTouch }
	}
	now := time.Now().Unix()
	r.repl.hold() // as after a shrink: writes are acknowledged a lease later
	first := make(chan error, 1)
	go func() { _, err := r.repl.Mutate([]byte(key), now, set("first")); first <- err }()
	l := &r.repl.locks[sl]
	for deadline := time.Now().Add(10 * time.Second); ; {
		l.mu.Lock()
		n := l.pending[key]
		l.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first write is not pending")
		}
		time.Sleep(time.Millisecond)
	}
	queued := make(chan error, 1)
	go func() { _, err := r.repl.Mutate([]byte(key), now, set("queued")); queued <- err }()

	// The slot moves to b while the queued write waits.
	if _, err := updateMap(ctx, tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		next := cur.Clone()
		s := &next.Slots[sl]
		s.Primary, s.Backups, s.InSync, s.Epoch = b, []string{tc.names[p]}, []string{tc.names[p]}, cur.MaxEpoch()+1
		return next, nil
	}); err != nil {
		t.Fatal(err)
	}
	e, _ = tc.store.Get(slots.Key("t"))
	waitVer(e.Version)
	if err := <-first; err != nil {
		t.Fatalf("the first write, run before the move: %v", err)
	}
	err := <-queued
	if err == nil || !ranNowhere([]byte("SERVER_ERROR "+err.Error())) {
		t.Fatalf("the write queued across the move: %v, want it to have run nowhere", err)
	}
	// "first" (or, once the new primary, which never had it, resynced the
	// old one, its in-sync backup now, nothing), never "queued".
	if it, ok := r.repl.inner.Get([]byte(key), time.Now().Unix()); ok && string(it.Value) != "first" {
		t.Fatalf("the old primary holds %q, want %q or nothing", it.Value, "first")
	}
}

// TestClusterDeposedLeaderGrantsNoLease: the leader's monitor still
// believes it leads (raft's IsLeader), but a quorum no longer confirms it
// (it is cut off, and another may be elected): its probes must stop
// renewing the storage nodes' leases, so st2 stops serving as a primary;
// once the leadership is confirmed again, st2 serves again.
func TestClusterDeposedLeaderGrantsNoLease(t *testing.T) {
	tc := startClusterWith(t, 3, 1, slots.Sync, true)
	tc.deposed.Store(true)
	deadline := time.Now().Add(20 * time.Second)
	for tc.router(1).serving() {
		if time.Now().After(deadline) {
			t.Fatal("st2 still holds a lease 20s after its leader's leadership was last confirmed")
		}
		time.Sleep(time.Millisecond)
	}
	tc.deposed.Store(false)
	for !tc.router(1).serving() {
		if time.Now().After(deadline) {
			t.Fatal("st2's lease not granted again once the leadership was confirmed")
		}
		time.Sleep(time.Millisecond)
	}
}
