package kvs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterTakeoverResync: as in TestClusterMoveIncrOnce, two slots of
// st1 have two in-sync backups (st2, st3) and move to st3 while st1, st3
// and the client's node st4 miss the move: an incr of a key of one and a
// delete of a key of the other, through st4, are applied by st3 and
// refused by st2, undone at st1, and answer SERVER_ERROR (st1 cannot
// learn the move meanwhile, see settle). Once st3 serves
// the slots, st2 (its in-sync backup) holds exactly what st3 holds: the
// incremented counter, and not the deleted key.
func TestClusterTakeoverResync(t *testing.T) {
	tc := startCluster(t, 4, 1, slots.Sync)
	m := tc.slotMap()
	var ks []string
	for i := 0; len(ks) < 2; i++ {
		k := fmt.Sprintf("agree:%d", i)
		if s := m.Slots[slots.Of([]byte(k))]; s.Primary == "st1" && (len(ks) == 0 || slots.Of([]byte(ks[0])) != slots.Of([]byte(k))) {
			ks = append(ks, k)
		}
	}
	incr, del := ks[0], ks[1]
	if _, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		c := cur.Clone()
		e := cur.MaxEpoch() + 1
		for _, k := range ks {
			c.Slots[slots.Of([]byte(k))] = slots.Slot{Primary: "st1", Backups: []string{"st2", "st3"}, InSync: []string{"st2", "st3"}, Epoch: e}
		}
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	tc.waitSeen(t)
	for _, k := range ks {
		if !setVia(t, tc.addrs[3], k, "10") {
			t.Fatal("set failed")
		}
	}
	for _, i := range []int{0, 2, 3} {
		tc.stores[i].cut(true)
	}
	if _, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		c := cur.Clone()
		e := cur.MaxEpoch() + 1
		for _, k := range ks {
			c.Slots[slots.Of([]byte(k))] = slots.Slot{Primary: "st3", Backups: []string{"st2"}, InSync: []string{"st2"}, Epoch: e}
		}
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	tc.waitSeen(t)
	c := dialText(t, tc.addrs[3])
	defer c.close()
	for _, req := range []string{"incr " + incr + " 1\r\n", "delete " + del + "\r\n"} {
		got, err := c.do(req)
		if err != nil || !strings.HasPrefix(got, "SERVER_ERROR ") || ranNowhere([]byte(got)) {
			t.Fatalf("%q through st4 during the move: %q %v, want a SERVER_ERROR that is not \"unavailable\"", strings.TrimSpace(req), got, err)
		}
	}
	for _, i := range []int{0, 2, 3} {
		tc.thaw(i)
	}
	tc.waitSeen(t)
	// Through the new primary (it serves once its backup is resynced).
	if v, found, ok := getEventually(t, tc.addrs[2], incr); !ok || !found || v != "11" {
		r := tc.router(2)
		sl := slots.Of([]byte(incr))
		s := r.m.Load().Slots[sl]
		t.Fatalf("%s at st3: %q found %v ok %v, want 11 (st3: lease %v, slot %d %+v, waits for its resync %v, fenced %v)",
			incr, v, found, ok, r.serving(), sl, s, r.repl.resyncWaits(sl, s.Epoch), r.repl.isFenced(sl, s.Epoch))
	}
	if _, found, ok := getEventually(t, tc.addrs[2], del); !ok || found {
		t.Fatalf("%s at st3: found %v ok %v, want deleted", del, found, ok)
	}
	now := time.Now().Unix()
	for _, k := range ks {
		p, pok := tc.innerStore(2).Get([]byte(k), now)
		b, bok := tc.innerStore(1).Get([]byte(k), now)
		if pok != bok || string(p.Value) != string(b.Value) || p.CAS != b.CAS {
			t.Fatalf("%s: the new primary st3 has %q cas %d (%v), its in-sync backup st2 %q cas %d (%v)", k, p.Value, p.CAS, pok, b.Value, b.CAS, bok)
		}
	}
}

// TestClusterHandOverLostAnswer: with replicas 1, st1 hands a slot over
// to its sole in-sync backup st2 while a set run by st1 is in flight: st2
// applies it under the old epoch, and its answer is lost with the
// connection once the hand-over is committed, so st1 can no longer take
// st2 out of the in-sync set (it is not the primary anymore): it undoes
// the set and answers SERVER_ERROR. st2, the new primary, has the set and
// serves it, so it serves the slot only once its in-sync backup st1 has
// it too (the takeover resync): killed, st2 fails over to st1, which
// serves what st2 served. On a memory and on a durable tenant.
func TestClusterHandOverLostAnswer(t *testing.T) {
	onMemoryAndDurable(t, 1, testHandOverLostAnswer)
}

// onMemoryAndDurable runs test on three nodes whose tenant has replicas
// sync copies, in memory, then on a durable store.
func onMemoryAndDurable(t *testing.T, replicas int, test func(*testing.T, *testCluster)) {
	t.Run("memory", func(t *testing.T) { test(t, startCluster(t, 3, replicas, slots.Sync)) })
	t.Run("durable", func(t *testing.T) {
		test(t, startClusterOpts(t, 3, replicas, slots.Sync, false, nil, func(c *TenantConfig) {
			c.Store, c.Dir, c.Sync, c.SyncInterval = StoreDurable, t.TempDir(), SyncGroup, 10*time.Millisecond
		}))
	})
}

func testHandOverLostAnswer(t *testing.T, tc *testCluster) {
	k := keyWhere(tc.slotMap(), "lost:", func(s slots.Slot) bool {
		return s.Primary == "st1" && slices.Equal(s.InSync, []string{"st2"})
	})
	applied, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	lose := func(rec record) bool {
		if rec.op != 'S' || string(rec.key) != k {
			return false
		}
		hit := false
		once.Do(func() {
			hit = true
			close(applied)
			<-release
		})
		return hit
	}
	tc.router(1).repl.afterApply.Store(&lose)
	reply := setAsync(t, tc.addrs[0], k) // "hi"
	select {
	case <-applied:
	case <-time.After(20 * time.Second):
		t.Fatal("st2 did not get the set's record in 20s")
	}
	tc.moveSlot(t, k, "st2") // st1 is now st2's in-sync backup
	unblock()                // and st2's answer is lost
	if got := <-reply; !strings.HasPrefix(got, "SERVER_ERROR ") {
		t.Fatalf("set through st1 during the hand-over: %q, want SERVER_ERROR (was the hand-over committed within the request timeout?)", got)
	}
	if v, found, ok := getEventually(t, tc.addrs[1], k); !ok || !found || v != "hi" {
		t.Fatalf("%s at the new primary st2: %q found %v ok %v, want hi", k, v, found, ok)
	}
	// Served by st2: st1's copy is st2's.
	now := time.Now().Unix()
	p, pok, err1 := peek(tc.innerStore(1), []byte(k), now)
	b, bok, err2 := peek(tc.innerStore(0), []byte(k), now)
	if err1 != nil || err2 != nil || pok != bok || string(p.Value) != string(b.Value) || p.CAS != b.CAS {
		t.Fatalf("%s: the new primary st2 has %q cas %d (%v), its in-sync backup st1 %q cas %d (%v)", k, p.Value, p.CAS, pok, b.Value, b.CAS, bok)
	}
	if rs := tc.router(1).repl.resyncCounts(); rs.KeysSent == 0 {
		t.Fatalf("st2 resynced no key (%+v), want the set sent to st1", rs)
	}
	tc.kill(1)
	if v, found, ok := getEventually(t, tc.addrs[0], k); !ok || !found || v != "hi" {
		t.Fatalf("%s at st1 after st2 was killed: %q found %v ok %v, want hi (what st2 served)", k, v, found, ok)
	}
}

// TestClusterHandOverResyncBatched: every slot's primary hands over to
// its sole in-sync backup in one map change (one epoch; the spread stays
// even, so the leader moves nothing back), as a drain's first step does
// for the drained node's slots. Each new primary resyncs its old
// primaries once for all the slots it takes from each (one B per pair of
// nodes: 6 on three nodes, not one per slot), finds them equal (no write
// in flight) and sends nothing; every key reads back through every node.
// BENCH_HANDOVER_ITEMS=N loads N items instead of 3,000 (a reading of how
// long the slots wait for their resync, logged).
func TestClusterHandOverResyncBatched(t *testing.T) {
	items, _ := strconv.Atoi(os.Getenv("BENCH_HANDOVER_ITEMS"))
	if items <= 0 {
		items = 3000
	}
	tc := startCluster(t, 3, 1, slots.Sync)
	loadItems(t, tc.addrs[0], items)
	counts := func() (rs resyncStats) {
		for i := range tc.tiers {
			c := tc.router(i).repl.resyncCounts()
			rs.Begins += c.Begins
			rs.SlotsEqual += c.SlotsEqual
			rs.SlotsCompared += c.SlotsCompared
			rs.KeysSent += c.KeysSent
		}
		return rs
	}
	before := counts()
	pairs := map[[2]string]bool{}
	start := time.Now()
	if _, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		c := cur.Clone()
		e := cur.MaxEpoch() + 1
		clear(pairs)
		for i, s := range cur.Slots {
			if len(s.InSync) != 1 || len(s.Next) > 0 {
				return nil, fmt.Errorf("slot %d: %+v, want one in-sync backup and no move", i, s)
			}
			to := s.InSync[0]
			c.Slots[i] = slots.Slot{Primary: to, Backups: []string{s.Primary}, InSync: []string{s.Primary}, Epoch: e}
			pairs[[2]string{to, s.Primary}] = true
		}
		if _, changed, err := slots.Rebalance(c); err != nil || changed {
			return nil, fmt.Errorf("the swapped map is not even (a rebalance would change it: %v)", err)
		}
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	tc.waitSeen(t)
	waitFor(t, "no slot waiting for its resync", func() bool {
		for i := range tc.tiers {
			if anyResyncWaits(tc.router(i)) {
				return false
			}
		}
		return true
	})
	took := time.Since(start)
	after := counts()
	d := resyncStats{after.Begins - before.Begins, after.SlotsEqual - before.SlotsEqual, after.SlotsCompared - before.SlotsCompared, after.KeysSent - before.KeysSent}
	t.Logf("%d items, every slot handed over: served again after %v; resync %+v", items, took, d)
	if d.Begins != int64(len(pairs)) || d.SlotsEqual != slots.Count || d.SlotsCompared != 0 || d.KeysSent != 0 {
		t.Fatalf("resync %+v, want %d begins (one per new and old primary) and all %d slots equal, nothing sent", d, len(pairs), slots.Count)
	}
	for j := range 30 {
		k := fmt.Sprintf("load:%d", j*(items/30))
		for i := range tc.tiers {
			if v, found, ok := getEventually(t, tc.addrs[i], k); !ok || !found || len(v) == 0 {
				t.Fatalf("%s via %s: %q found %v ok %v", k, tc.names[i], v, found, ok)
			}
		}
	}
}

// TestResyncRecordRoundTrip: a resync's records decode as encoded; a
// B or L without slots, or with a key, is refused.
func TestResyncRecordRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		o   byte
		key string
		it  Item
	}{
		{'B', "", Item{Value: slotList([]int{3, 1023, 7})}},
		{'L', "", Item{Value: slotList([]int{0})}},
		{'F', "k", Item{Flags: 5, Exptime: 9, CAS: 77, Meta: 1, Value: []byte("v\r\nw")}},
	} {
		b := encodeRecordOp(4, 3, tt.o, []byte(tt.key), tt.it)
		rec, err := readRecord(bufio.NewReader(bytes.NewReader(b)))
		if err != nil || rec.op != tt.o || string(rec.key) != tt.key || string(rec.item.Value) != string(tt.it.Value) || rec.item.CAS != tt.it.CAS && tt.o == 'F' {
			t.Fatalf("%c: %+v %v", tt.o, rec, err)
		}
		if tt.o != 'F' {
			if _, err := parseSlotList(rec.item.Value); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, bad := range []string{
		"R 4 3 B 0 0 0 0 1 1\r\nk1\r\n",
		"R 4 3 L 0 0 0 0 1 1\r\nk1\r\n",
		"R 4 3 Z 0 0 0 0 0 1\r\n1\r\n",
		"R 4 3 F 0 0 0 0 0 1\r\n1\r\n",
		"R 4 3 Q 0 0 0 0 1 1\r\nk1\r\n",
	} {
		if _, err := readRecord(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	for _, bad := range []string{"", " ", "1024", "-1", "x"} {
		if _, err := parseSlotList([]byte(bad)); err == nil {
			t.Fatalf("slot list %q accepted", bad)
		}
	}
}

// TestClusterTakeoverResyncSendsDiff: three nodes with replicas 2, many
// items; the copies of a few keys of st3's slots differ on st1 or st2 as
// writes in flight at a failover leave them (a write applied by one
// backup, a delete by the other, a key added), and as expiry and eviction
// on one copy only do; a read there sets the fetched bit and access time
// on one copy, which is not a difference. st3 is killed: once the
// survivors serve its slots, the new primaries sent only the differing
// keys (the old code sent every item of the slots), the slots equal
// everywhere were served on their digests, and the two copies hold
// exactly the same items.
func TestClusterTakeoverResyncSendsDiff(t *testing.T) {
	onMemoryAndDurable(t, 2, testTakeoverResyncSendsDiff)
}

func testTakeoverResyncSendsDiff(t *testing.T, tc *testCluster) {
	const n = 1500
	conns := []*textConn{dialText(t, tc.addrs[0]), dialText(t, tc.addrs[1])}
	defer conns[0].close()
	defer conns[1].close()
	for i := range n {
		k := fmt.Sprintf("d:%d", i)
		if got, err := conns[i%2].do(fmt.Sprintf("set %s 3 0 %d\r\nv%d\r\n", k, len(strconv.Itoa(i))+1, i)); err != nil || got != "STORED\r\n" {
			t.Fatalf("set %s: %q %v", k, got, err)
		}
	}
	m := tc.slotMap()
	var victims []string // keys of st3's slots, on distinct slots
	seen := map[int]bool{}
	for i := 0; len(victims) < 6; i++ {
		k := fmt.Sprintf("d:%d", i)
		if sl := slots.Of([]byte(k)); m.Slots[sl].Primary == "st3" && !seen[sl] {
			seen[sl] = true
			victims = append(victims, k)
		}
	}
	now := time.Now().Unix()
	mutate := func(node int, k string, fn MutateFunc) {
		t.Helper()
		if _, err := tc.innerStore(node).Mutate([]byte(k), now, fn); err != nil {
			t.Fatal(err)
		}
	}
	// st1: a write in flight applied here only (a new value and cas).
	mutate(0, victims[0], func(cur Item, _ bool) (Item, Op) {
		cur.Value, cur.CAS = []byte("inflight"), cur.CAS+1000
		return cur, OpTouch
	})
	// st2: a delete in flight applied here only.
	mutate(1, victims[1], func(cur Item, _ bool) (Item, Op) { return cur, OpDelete })
	// st1: a key added by a write in flight.
	added := keyWhere(m, "added:", func(s slots.Slot) bool { return s.Primary == "st3" })
	mutate(0, added, func(Item, bool) (Item, Op) { return Item{Value: []byte("new"), CAS: 1 << 40}, OpTouch })
	// st2: expired here only (its expiry moved to the past, as a touch in
	// flight would).
	mutate(1, victims[3], func(cur Item, _ bool) (Item, Op) {
		cur.Exptime = now - 5
		return cur, OpTouch
	})
	// st1: evicted here only.
	mutate(0, victims[4], func(cur Item, _ bool) (Item, Op) { return cur, OpDelete })
	// st2: read here (fetched bit, access time): not a difference.
	mutate(1, victims[5], func(cur Item, _ bool) (Item, Op) {
		cur.Meta |= MetaFetched
		cur.Atime = now + 100
		return cur, OpTouch
	})
	const differing = 5
	tc.kill(2)
	// Every key of st3's slots is served again (through st1 and st2).
	for _, k := range victims {
		for _, i := range []int{0, 1} {
			if _, _, ok := getEventually(t, tc.addrs[i], k); !ok {
				t.Fatalf("%s via %s: not served after the failover", k, tc.names[i])
			}
		}
	}
	// And no slot waits for its resync on either (the counters are final).
	deadline := time.Now().Add(20 * time.Second)
	for _, i := range []int{0, 1} {
		r := tc.router(i)
		for anyResyncWaits(r) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: slots still wait for their resync after 20s", tc.names[i])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stats := func() (rs resyncStats) {
		for _, i := range []int{0, 1} {
			c := tc.router(i).repl.resyncCounts()
			rs.SlotsEqual += c.SlotsEqual
			rs.SlotsCompared += c.SlotsCompared
			rs.KeysSent += c.KeysSent
		}
		return rs
	}
	rs := stats()
	t.Logf("resync: %+v", rs)
	if rs.KeysSent != differing || rs.SlotsCompared > differing || rs.SlotsCompared == 0 {
		t.Fatalf("resync sent %d keys (%d slots compared, %d equal), want the %d differing keys", rs.KeysSent, rs.SlotsCompared, rs.SlotsEqual, differing)
	}
	if held := len(slotsOf(m, "st3")); rs.SlotsEqual < int64(held-differing) {
		t.Fatalf("%d slots served on equal digests, want at least %d of st3's %d", rs.SlotsEqual, held-differing, held)
	}
	// The two copies are equal, item by item.
	now = time.Now().Unix()
	a, b := tc.innerStore(0), tc.innerStore(1)
	keys := map[string]bool{}
	for _, st := range []Store{a, b} {
		for _, k := range storeKeys(st, func([]byte) bool { return true }) {
			keys[string(k)] = true
		}
	}
	if len(keys) < n-differing {
		t.Fatalf("%d keys on the survivors, want about %d", len(keys), n)
	}
	for k := range keys {
		x, xok, err1 := peek(a, []byte(k), now)
		y, yok, err2 := peek(b, []byte(k), now)
		if err1 != nil || err2 != nil || xok != yok || xok && (string(x.Value) != string(y.Value) || x.CAS != y.CAS || x.Flags != y.Flags || x.Exptime != y.Exptime) {
			t.Fatalf("%s: st1 %q cas %d exp %d (%v), st2 %q cas %d exp %d (%v)", k, x.Value, x.CAS, x.Exptime, xok, y.Value, y.CAS, y.Exptime, yok)
		}
	}
}

// anyResyncWaits reports whether a slot of r's map waits for its resync.
func anyResyncWaits(r *router) bool {
	m := r.m.Load()
	for i, s := range m.Slots {
		if r.repl.resyncWaits(i, s.Epoch) {
			return true
		}
	}
	return false
}

// slotsOf returns the slots node is the primary of in m.
func slotsOf(m *slots.Map, node string) []int {
	var out []int
	for i, s := range m.Slots {
		if s.Primary == node {
			out = append(out, i)
		}
	}
	return out
}

// TestItemHash: the hash covers what writes set, not what reads set.
func TestItemHash(t *testing.T) {
	base := Item{Value: []byte("v"), Flags: 1, Exptime: 9, CAS: 7, Meta: MetaStale}
	h := itemHash([]byte("k"), base)
	read := base
	read.Atime, read.Meta = 12345, base.Meta|MetaFetched
	if itemHash([]byte("k"), read) != h {
		t.Fatal("a read changed the hash")
	}
	for name, it := range map[string]Item{
		"value": {Value: []byte("w"), Flags: 1, Exptime: 9, CAS: 7, Meta: MetaStale},
		"flags": {Value: []byte("v"), Flags: 2, Exptime: 9, CAS: 7, Meta: MetaStale},
		"exp":   {Value: []byte("v"), Flags: 1, Exptime: 8, CAS: 7, Meta: MetaStale},
		"cas":   {Value: []byte("v"), Flags: 1, Exptime: 9, CAS: 8, Meta: MetaStale},
		"meta":  {Value: []byte("v"), Flags: 1, Exptime: 9, CAS: 7},
	} {
		if itemHash([]byte("k"), it) == h {
			t.Fatalf("%s: same hash", name)
		}
	}
	if itemHash([]byte("kv"), Item{}) == itemHash([]byte("k"), Item{Value: []byte("v")}) {
		t.Fatal("key and value boundary not hashed")
	}
}

// FuzzResyncAnswers: a backup's answers to B and L records decode as
// encoded, and any other input is an error, never a panic.
func FuzzResyncAnswers(f *testing.F) {
	f.Add([]byte("A 0 ff 1\r\n"), 3)
	f.Add([]byte("A 6b31:12 6b32:0\r\n"), 0)
	f.Add([]byte("E map behind epoch 3\r\n"), 1)
	f.Add([]byte("A :1 zz:2 6b\r\n"), 2)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > slots.Count {
			return
		}
		if ds, err := parseDigests(b, n); err == nil {
			again, err := parseDigests(appendDigests(nil, ds), n)
			if err != nil || !slices.Equal(again, ds) {
				t.Fatalf("digests %v: %v %v", ds, again, err)
			}
		}
		if kl, err := parseKeyList(b); err == nil {
			var keys [][]byte
			var hs []uint64
			for k, h := range kl {
				keys, hs = append(keys, []byte(k)), append(hs, h)
			}
			again, err := parseKeyList(appendKeyList(nil, keys, hs))
			if err != nil || !maps.Equal(again, kl) {
				t.Fatalf("key list %v: %v %v", kl, again, err)
			}
		}
	})
}

// TestThrottle: a copy within its limit goes on at once; one ahead of it
// waits (here until its context ends).
func TestThrottle(t *testing.T) {
	th := newThrottle(1 << 20)
	th.sent = 1 << 10
	if err := th.wait(context.Background()); err != nil {
		t.Fatalf("within the limit: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	th.sent = 1 << 40 // a million seconds ahead
	if err := th.wait(ctx); err == nil {
		t.Fatal("ahead of the limit: did not wait")
	}
}
