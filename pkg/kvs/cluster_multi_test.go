package kvs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/slots"
)

// Moves without client errors for every command, not only single-key
// ones: the tests freeze one node's view of the cluster state (its map
// stays behind while the others see a slot move), send requests through it
// and thaw it a little later, as a node that learns a new map late does.

// thawLater ends node i's frozen view after d (see thaw).
func (tc *testCluster) thawLater(i int, d time.Duration) {
	go func() {
		time.Sleep(d)
		tc.thaw(i)
	}()
}

// place sets slot's placement to s at a new epoch (see updateSlot).
func (tc *testCluster) place(t testing.TB, slot int, s slots.Slot) {
	t.Helper()
	tc.updateSlot(t, slot, func(slots.Slot) slots.Slot { return s })
}

// updateSlot sets slot's placement to next(its current one) at a new
// epoch, and waits until every node whose view is not frozen has the map.
func (tc *testCluster) updateSlot(t testing.TB, slot int, next func(slots.Slot) slots.Slot) {
	t.Helper()
	if _, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		c := cur.Clone()
		c.Slots[slot] = next(cur.Slots[slot])
		c.Slots[slot].Epoch = cur.MaxEpoch() + 1
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	tc.waitSeen(t)
}

// thaw ends node i's frozen view and wakes its watch.
func (tc *testCluster) thaw(i int) {
	tc.stores[i].cut(false)
	// Any write wakes the node's watch, which reads the map again.
	tc.store.Propose(context.Background(), cluster.Op{Key: "wake", Value: fmt.Appendf(nil, "%d", time.Now().UnixNano())})
}

// keysWhere returns n keys named prefix+number whose slot satisfies ok.
func keysWhere(m *slots.Map, prefix string, n int, ok func(slots.Slot) bool) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if k := fmt.Sprintf("%s%d", prefix, i); ok(m.Slots[slots.Of([]byte(k))]) {
			keys = append(keys, k)
		}
	}
	return keys
}

// moveSlot makes to the primary of key's slot, with the old primary as its
// in-sync backup, at a new epoch.
func (tc *testCluster) moveSlot(t testing.TB, key, to string) {
	t.Helper()
	tc.updateSlot(t, slots.Of([]byte(key)), func(cur slots.Slot) slots.Slot {
		return slots.Slot{Primary: to, Backups: []string{cur.Primary}, InSync: []string{cur.Primary}}
	})
}

// waitSeen waits until every running node whose view is not frozen has
// the current map (the nodes learn it at slightly different times).
func (tc *testCluster) waitSeen(t testing.TB) {
	t.Helper()
	e, _ := tc.store.Get(slots.Key("t"))
	deadline := time.Now().Add(10 * time.Second)
	for i, tier := range tc.tiers {
		tier.mu.Lock()
		closed := tier.closed
		tier.mu.Unlock()
		if closed || tc.stores[i].frozenView() {
			continue
		}
		for r := tc.router(i); r.ver.Load() < e.Version; {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not see map version %d", tc.names[i], e.Version)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func (s *cutStore) frozenView() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frozen != nil
}

// TestClusterMoveMultiGet: a multi-get (get, gets, gat) through a node
// whose map is behind, with keys on every node and one key's slot moved
// meanwhile, is split by slot, its part for the moved slot sent again to
// the new primary once the node's map is the new one, and the parts merged
// in the order of the keys: the client sees the whole answer, no error.
func TestClusterMoveMultiGet(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	for _, cmd := range []string{"get", "gets", "gat 0"} {
		t.Run(strings.Fields(cmd)[0], func(t *testing.T) {
			m := tc.slotMap()
			p := strings.Fields(cmd)[0] + ":"
			// The moving key: primary st1, in-sync backup st2.
			mv := keysWhere(m, p+"mv", 1, func(s slots.Slot) bool {
				return s.Primary == "st1" && slices.Equal(s.InSync, []string{"st2"})
			})[0]
			keys := []string{mv}
			for _, node := range tc.names {
				keys = append(keys, keysWhere(m, p+node+"-", 2, func(s slots.Slot) bool { return s.Primary == node })...)
			}
			keys = append(keys, p+"miss", mv)
			c := dialText(t, tc.addrs[0])
			for _, k := range keys[:len(keys)-2] {
				if got, err := c.do(fmt.Sprintf("set %s 5 0 %d\r\n%s\r\n", k, len(k), k)); err != nil || got != "STORED\r\n" {
					t.Fatalf("set %s: %q %v", k, got, err)
				}
			}
			c.close()
			req := cmd + " " + strings.Join(keys, " ") + "\r\n"
			want := readAll(t, tc.addrs[1], strings.Replace(req, "gat 0", "get", 1))

			tc.stores[2].cut(true)
			tc.moveSlot(t, mv, "st2")
			tc.thawLater(2, 300*time.Millisecond)
			start := time.Now()
			got := readAll(t, tc.addrs[2], req)
			if got != want {
				t.Fatalf("%s through st3 during the move (%v):\n%q\nwant\n%q", cmd, time.Since(start), got, want)
			}
			t.Logf("%s of %d keys through st3 during the move: whole, after %v", cmd, len(keys), time.Since(start).Round(time.Millisecond))
		})
	}
}

// readAll sends req on a new connection to addr and reads its retrieval
// reply up to END (or an error line).
func readAll(t *testing.T, addr, req string) string {
	t.Helper()
	c := dialText(t, addr)
	defer c.close()
	got, err := c.do(req)
	if err != nil {
		t.Fatalf("%q: %q %v", req, got, err)
	}
	return got
}

// TestClusterMoveFanOut: flush_all and stats through a node whose map is
// behind, after a node was drained out of the map and stopped: stats
// leaves the gone node out, with no error; flush_all, which it cannot
// reach, is answered OK once the node's map is the new one (the gone node
// is no longer the tenant's), and every node is flushed.
func TestClusterMoveFanOut(t *testing.T) {
	tc := startCluster(t, 4, 0, slots.Sync)
	m := tc.slotMap()
	var keys []string
	for _, node := range tc.names {
		keys = append(keys, keysWhere(m, "fo:"+node+"-", 3, func(s slots.Slot) bool { return s.Primary == node })...)
	}
	for i, k := range keys {
		if !setVia(t, tc.addrs[i%4], k, "v") {
			t.Fatalf("set %s failed", k)
		}
	}
	tc.stores[2].cut(true)
	if err := SetStorageNodes(context.Background(), tc.store, tc.names[:3]); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(tc.slotMap().Nodes, "st4") {
		t.Fatal("st4 still in the map")
	}
	tc.kill(3)

	c := dialText(t, tc.addrs[2])
	defer c.close()
	items := func(c *textConn) int {
		t.Helper()
		io.WriteString(c.c, "stats\r\n")
		n := -1
		for {
			c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := c.br.ReadString('\n')
			if err != nil || strings.HasPrefix(line, "SERVER_ERROR") {
				t.Fatalf("stats: %q %v", line, err)
			}
			if line == "END\r\n" {
				return n
			}
			fmt.Sscanf(line, "STAT curr_items %d", &n)
		}
	}
	// The drained node's keys went with it (no replicas): the others'.
	if n := items(c); n != 9 {
		t.Fatalf("stats through st3, its map behind: curr_items %d, want 9", n)
	}
	tc.thawLater(2, 300*time.Millisecond)
	start := time.Now()
	if got, err := c.do("flush_all\r\n"); err != nil || got != "OK\r\n" {
		t.Fatalf("flush_all through st3, its map behind: %q %v after %v", got, err, time.Since(start))
	}
	t.Logf("flush_all through st3 during the drain: OK after %v", time.Since(start).Round(time.Millisecond))
	for _, k := range keys[:9] {
		if _, found, ok := getEventually(t, tc.addrs[0], k); !ok || found {
			t.Fatalf("%s after flush_all: found %v ok %v", k, found, ok)
		}
	}
	if n := items(dialText(t, tc.addrs[0])); n != 0 {
		t.Fatalf("curr_items %d after flush_all", n)
	}
}

// TestClusterMovePipelined: on one connection, a write then reads of its
// key, pipelined, through a node whose map is behind while the key's slot
// moves: the write is sent again to the new primary, and the reads, sent
// behind it, never overtake it (each reads the write) and their replies
// come in order. The new primary is another node, or the node the client
// talks to; and reads that arrive once that node has the new map, while the
// write is still being sent again (the new primary has not learned the map
// yet), wait for the write's final reply before they are sent.
func TestClusterMovePipelined(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	for _, tt := range []struct {
		name, to string
		late     bool
	}{{"to-another", "st2", false}, {"to-self", "st3", false}, {"reads-after-the-map", "st2", true}} {
		t.Run(tt.name, func(t *testing.T) {
			m := tc.slotMap()
			ks := keysWhere(m, "pl:"+tt.name+":", 2, func(s slots.Slot) bool {
				return s.Primary == "st1" && slices.Equal(s.InSync, []string{tt.to})
			})
			k, other := ks[0], ks[1]
			if !setVia(t, tc.addrs[0], k, "old") || !setVia(t, tc.addrs[0], other, "o") {
				t.Fatal("set before the move failed")
			}
			c := dialText(t, tc.addrs[2])
			defer c.close()
			tc.stores[2].cut(true)
			if tt.late {
				tc.stores[1].cut(true) // the new primary misses the move
			}
			tc.moveSlot(t, k, tt.to)
			io.WriteString(c.c, fmt.Sprintf("set %s 0 0 3\r\n100\r\nget %s\r\nincr %s 1\r\n", k, k, k))
			reads := fmt.Sprintf("get %s\r\ngets %s %s\r\nappend %s 0 0 1\r\n!\r\nget %s\r\n", k, other, k, k, k)
			if tt.late {
				tc.thaw(2)
				r := tc.router(2)
				for deadline := time.Now().Add(10 * time.Second); r.m.Load().Slots[slots.Of([]byte(k))].Primary != tt.to; {
					if time.Now().After(deadline) {
						t.Fatal("st3 did not see the move")
					}
					time.Sleep(time.Millisecond)
				}
				io.WriteString(c.c, reads)
				tc.thawLater(1, 300*time.Millisecond)
			} else {
				io.WriteString(c.c, reads)
				tc.thawLater(2, 300*time.Millisecond)
			}
			var replies []string
			c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for range 7 {
				r, err := readReply(c)
				if err != nil {
					t.Fatalf("after %q: %v", replies, err)
				}
				replies = append(replies, r)
			}
			for i, w := range []string{
				"STORED\r\n",
				fmt.Sprintf("VALUE %s 0 3\r\n100\r\nEND\r\n", k),
				"101\r\n",
				fmt.Sprintf("VALUE %s 0 3\r\n101\r\nEND\r\n", k),
				"VALUE " + other + " 0 1 ", // gets: cas uniques
				"STORED\r\n",
				fmt.Sprintf("VALUE %s 0 4\r\n101!\r\nEND\r\n", k),
			} {
				if !strings.HasPrefix(replies[i], w) {
					t.Fatalf("pipelined through st3 during the move: reply %d %q, want %q; all: %q", i, replies[i], w, replies)
				}
			}
			if !strings.Contains(replies[4], "\r\nVALUE "+k+" 0 3 ") || !strings.Contains(replies[4], "\r\n101\r\nEND\r\n") {
				t.Fatalf("gets %s %s: %q", other, k, replies[4])
			}
		})
	}
}

// readReply reads one reply: a line, or VALUE blocks up to END.
func readReply(c *textConn) (string, error) {
	var out strings.Builder
	for {
		line, err := c.br.ReadString('\n')
		out.WriteString(line)
		if err != nil || !strings.HasPrefix(line, "VALUE ") {
			return out.String(), err
		}
		if line, err = c.br.ReadString('\n'); err != nil { // its data
			return out.String(), err
		}
		out.WriteString(line)
	}
}

// TestStaleWriteAppliedNowhere: a write refused by a backup under a newer
// epoch says "unavailable" (it may be sent again to the new primary) only
// when no backup applied it: with two backups, the other one may have, and
// an incr sent again would count twice.
func TestStaleWriteAppliedNowhere(t *testing.T) {
	ans := func(s string) *future {
		f := newFuture()
		f.complete([]byte(s))
		return f
	}
	const (
		stale   = "S 9\r\n"
		applied = "A\r\n"
		lost    = "SERVER_ERROR lbd: node st3: connection lost\r\n"
		unsent  = "SERVER_ERROR lbd: unavailable: node st3: connection lost\r\n"
		failed  = "E out of memory\r\n"
	)
	for _, tt := range []struct {
		name        string
		waits, rest []string // answers of the in-sync backups, of the others
		nowhere     bool
	}{
		{"one backup refused", []string{stale}, nil, true},
		{"both refused", []string{stale, stale}, nil, true},
		{"the second applied", []string{stale, applied}, nil, false},
		{"the first applied", []string{applied, stale}, nil, false},
		{"a backup out of sync applied", []string{stale}, []string{applied}, false},
		{"the other's answer lost", []string{stale}, []string{lost}, false},
		{"the other never got it", []string{stale}, []string{unsent}, true},
		{"the other failed to store it", []string{stale}, []string{failed}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var waits, all []*future
			var nodes []string
			for i, a := range tt.waits {
				f := ans(a)
				waits, all, nodes = append(waits, f), append(all, f), append(nodes, fmt.Sprintf("st%d", i+2))
			}
			for _, a := range tt.rest {
				all = append(all, ans(a))
			}
			backups := slices.Clone(nodes)
			for i := range tt.rest {
				backups = append(backups, fmt.Sprintf("st%d", len(nodes)+i+2))
			}
			err := (&replicator{}).await(7, 3, waits, nodes, all, backups)
			if err == nil {
				t.Fatal("no error")
			}
			if got := ranNowhere([]byte("SERVER_ERROR " + err.Error() + "\r\n")); got != tt.nowhere {
				t.Fatalf("%v: ran nowhere %v, want %v", err, got, tt.nowhere)
			}
			// Not certain: the slot's new primary decides (see settle).
			var sw *splitWrite
			if errors.As(err, &sw) == tt.nowhere || (sw != nil && (sw.slot != 7 || sw.epoch != 3 || !slices.Equal(sw.backups, backups))) {
				t.Fatalf("%v: split write %+v, want one of slot 7 epoch 3 over %v: %v", err, sw, backups, !tt.nowhere)
			}
		})
	}
}

// TestClusterMoveIncrOnce: during a drain a slot has two in-sync backups
// (the draining node's copy is kept until the new one is in sync). A node
// whose map is behind forwards an incr to the slot's old primary st1, which
// also missed the move: one backup refuses it under the new epoch, the
// other applies it (it missed the move too). The slot's new primary st3
// decides (see settle): if it applied the incr, the client gets its
// result; if it refused it, the incr ran nowhere and is sent to st3. Only
// while st1 cannot learn the move is the answer an error, one that does
// not say "unavailable" (the incr may have run: it is not sent again).
// The counter moves once, and st3's in-sync backup ends equal to it.
func TestClusterMoveIncrOnce(t *testing.T) {
	for _, tt := range []struct {
		name string
		sees int // the backup (st2 or st3) that learns the move at once
		// thawAfter: the others learn it after; 0, only once the client
		// has its answer.
		thawAfter time.Duration
		want      string // the answer's start
	}{
		{"the new primary applied it", 1, 300 * time.Millisecond, "11\r\n"},
		{"the new primary refused it", 2, 300 * time.Millisecond, "11\r\n"},
		{"the old primary cut off", 1, 0, "SERVER_ERROR "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := startCluster(t, 4, 1, slots.Sync)
			k := keysWhere(tc.slotMap(), "once:", 1, func(s slots.Slot) bool { return s.Primary == "st1" })[0]
			sl := slots.Of([]byte(k))
			tc.place(t, sl, slots.Slot{Primary: "st1", Backups: []string{"st2", "st3"}, InSync: []string{"st2", "st3"}})
			if !setVia(t, tc.addrs[3], k, "10") {
				t.Fatal("set failed")
			}
			// st1 (the old primary), st4 (the client's) and one of the
			// backups miss the move.
			cut := []int{0, 3, 3 - tt.sees}
			for _, i := range cut {
				tc.stores[i].cut(true)
			}
			tc.place(t, sl, slots.Slot{Primary: "st3", Backups: []string{"st2"}, InSync: []string{"st2"}})
			if tt.thawAfter > 0 {
				for _, i := range cut {
					tc.thawLater(i, tt.thawAfter)
				}
			}
			c := dialText(t, tc.addrs[3])
			defer c.close()
			got, err := c.do("incr " + k + " 1\r\n")
			for _, i := range cut {
				tc.thaw(i)
			}
			if err != nil || !strings.HasPrefix(got, tt.want) || ranNowhere([]byte(got)) {
				t.Fatalf("incr through st4 during the move: %q %v, want %q... that does not say \"unavailable\"", got, err, tt.want)
			}
			// Through the new primary, once every node has the map.
			tc.waitSeen(t)
			if v, found, ok := getEventually(t, tc.addrs[2], k); !ok || !found || v != "11" {
				t.Fatalf("%s after the incr: %q found %v ok %v, want 11 (applied once)", k, v, found, ok)
			}
			p, _ := tc.innerStore(2).Get([]byte(k), time.Now().Unix())
			b, _ := tc.innerStore(1).Get([]byte(k), time.Now().Unix())
			if string(b.Value) != "11" || b.CAS != p.CAS {
				t.Fatalf("%s at st3's in-sync backup st2: %q cas %d, st3 %q cas %d", k, b.Value, b.CAS, p.Value, p.CAS)
			}
			t.Logf("incr through st4 during the move: %q; the counter moved once", strings.TrimSpace(got))
		})
	}
}

// TestClusterMoveTargetBehind: the node a client talks to has the new map,
// the slot's new primary has not learned it yet and refuses the request
// (it ran nowhere): it is sent again until the new primary serves it, and
// the client sees STORED.
func TestClusterMoveTargetBehind(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	m := tc.slotMap()
	k := keysWhere(m, "tb:", 1, func(s slots.Slot) bool {
		return s.Primary == "st1" && slices.Equal(s.InSync, []string{"st2"})
	})[0]
	tc.stores[1].cut(true)
	tc.moveSlot(t, k, "st2")
	tc.thawLater(1, 300*time.Millisecond)
	start := time.Now()
	c := dialText(t, tc.addrs[2])
	defer c.close()
	if got, err := c.do(fmt.Sprintf("set %s 0 0 2\r\nhi\r\n", k)); err != nil || got != "STORED\r\n" {
		t.Fatalf("set %s through st3 while st2 has not learned it is the primary: %q %v after %v", k, got, err, time.Since(start))
	}
	tc.waitSeen(t)
	if v, found, ok := getVia(t, tc.addrs[1], k); !ok || !found || v != "hi" {
		t.Fatalf("get %s at the new primary: %q found %v ok %v", k, v, found, ok)
	}
	t.Logf("set through st3, st2 behind: STORED after %v", time.Since(start).Round(time.Millisecond))
}

// TestClusterMovePipelinedMeta: the meta protocol's write, arithmetic and
// reads of one key, pipelined through a node whose map is behind while
// the key's slot moves (as TestClusterMovePipelined): in order, each
// reading the one before, the arithmetic applied once.
func TestClusterMovePipelinedMeta(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	k := keysWhere(tc.slotMap(), "plm:", 1, func(s slots.Slot) bool {
		return s.Primary == "st1" && slices.Equal(s.InSync, []string{"st2"})
	})[0]
	if !setVia(t, tc.addrs[0], k, "old") {
		t.Fatal("set before the move failed")
	}
	c := dialText(t, tc.addrs[2])
	defer c.close()
	tc.stores[2].cut(true)
	tc.moveSlot(t, k, "st2")
	io.WriteString(c.c, fmt.Sprintf("ms %s 3\r\n100\r\nmg %s v\r\nma %s\r\nmg %s v\r\nma %s q D5 MD\r\nmg %s v\r\nmn\r\n", k, k, k, k, k, k))
	tc.thawLater(2, 300*time.Millisecond)
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got strings.Builder
	for !strings.HasSuffix(got.String(), "MN\r\n") {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got.String(), err)
		}
		got.WriteString(line)
	}
	// (A decrement keeps the value's length, as memcached's: "96 ".)
	if want := "HD\r\nVA 3\r\n100\r\nHD\r\nVA 3\r\n101\r\nVA 3\r\n96 \r\nMN\r\n"; got.String() != want {
		t.Fatalf("meta pipeline through st3 during the move:\n%q\nwant\n%q", got.String(), want)
	}
}
