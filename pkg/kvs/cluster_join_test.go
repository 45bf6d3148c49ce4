package kvs

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterJoinWaitsForRebuiltBackup: st3, rebuilt for a slot of st2,
// is about to join its in-sync set (st2's commit is held, as while the
// cluster state is slow). A write to the slot leaves st2 then, and its
// stream to st3 dies before st3 applied it. The write must not be
// acknowledged with st3 joining without it: once STORED and st3 in sync,
// st3 has it (st2 waited for st3, and took it out of the in-sync set
// again, and rebuilt it).
func TestClusterJoinWaitsForRebuiltBackup(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	key := keyWhere(tc.slotMap(), "join", func(s slots.Slot) bool {
		return s.Primary == "st2" && slices.Equal(s.InSync, []string{"st3"})
	})
	sl := slots.Of([]byte(key))
	gate := make(chan struct{})
	st2 := tc.stores[1]
	st2.mu.Lock()
	st2.gate = gate
	st2.mu.Unlock()
	opened := false
	open := func() {
		if !opened {
			opened = true
			st2.mu.Lock()
			st2.gate = nil
			st2.mu.Unlock()
			close(gate)
		}
	}
	defer open()
	// st3 leaves the slot's in-sync set: st2 rebuilds it, and its
	// commit waits at the gate.
	if _, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		c := cur.Clone()
		c.Slots[sl].InSync = nil
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "st2's rebuild of st3 to ask to join", func() bool { return st2.gated.Load() > 0 })
	// st3 applies nothing more of st2's stream for now.
	rp3 := tc.router(2).repl
	rp3.srcMu.Lock()
	src := rp3.sources["st2"]
	rp3.srcMu.Unlock()
	if src == nil {
		t.Fatal("st3 has no stream from st2")
	}
	src.mu.Lock()
	reply := setAsync(t, tc.addrs[1], key)
	rp2 := tc.router(1).repl
	var got string
	waitFor(t, "the write to leave st2", func() bool {
		select {
		case got = <-reply: // acknowledged without st3
			return true
		default:
		}
		l := &rp2.locks[sl]
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.pending[key] > 0 // waiting for st3
	})
	// The stream dies with the write unapplied at st3: st2 fails it, and
	// st3 drops what it still had of it.
	rp2.mu.Lock()
	pc := rp2.streams["st3"]
	rp2.mu.Unlock()
	pc.fail("cut by the test")
	src.seq++
	src.mu.Unlock()
	open()
	if got == "" {
		got = <-reply
	}
	if got != "STORED\r\n" {
		t.Fatalf("set %s: %q", key, got)
	}
	waitFor(t, "st3 in sync again", func() bool { return slices.Contains(tc.slotMap().Slots[sl].InSync, "st3") })
	if it, ok := tc.innerStore(2).Get([]byte(key), time.Now().Unix()); !ok || string(it.Value) != "hi" {
		t.Fatalf("st3 is in sync for slot %d without the acknowledged write of %s: %q found %v", sl, key, it.Value, ok)
	}
}

// TestRebuildLooksAgainAfterIt: a map that finds a backup out of sync
// while its rebuild runs starts none (one at a time); the rebuild, once
// done, looks at the latest map again. Else a backup that left an in-sync
// set just as its rebuild's join was applied (as in
// TestClusterJoinWaitsForRebuiltBackup) stayed out until the next map.
func TestRebuildLooksAgainAfterIt(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	key := keyWhere(tc.slotMap(), "again", func(s slots.Slot) bool {
		return s.Primary == "st2" && slices.Equal(s.InSync, []string{"st3"})
	})
	sl := slots.Of([]byte(key))
	rp := tc.router(1).repl
	running := &rebuildState{Backup: "st3"} // a rebuild of st3 that is about to end
	rp.rb.mu.Lock()
	if rp.rb.running == nil {
		rp.rb.running = map[string]*rebuildState{}
	}
	rp.rb.running["st3"] = running
	rp.rb.mu.Unlock()
	locked := func(f func() bool) bool {
		rp.rb.mu.Lock()
		defer rp.rb.mu.Unlock()
		return f()
	}
	tc.updateSlot(t, sl, func(s slots.Slot) slots.Slot { s.InSync = nil; return s })
	waitFor(t, "st2 to find st3's rebuild running", func() bool { return locked(func() bool { return running.again }) })
	if !locked(func() bool { return rp.rb.running["st3"] == running }) {
		t.Fatal("the map started a second rebuild of st3 beside the running one")
	}
	rp.rebuilt(running, nil)
	waitFor(t, "st3 rebuilt and in sync again", func() bool { return slices.Contains(tc.slotMap().Slots[sl].InSync, "st3") })
}

// waitFor polls cond until it holds, for 20 s at most.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSettleJoins: a joining backup's answer to a write. Applied: nothing
// to do. Not applied before the join's commit was asked for: the join
// stops (the rebuild does not ask for it, the write does not wait). Not
// applied after: the answer is an in-sync backup's (await takes the
// backup out again, or fails the write).
func TestSettleJoins(t *testing.T) {
	for _, tt := range []struct {
		name      string
		answer    string
		committed bool
		inSync    bool // handed to await as an in-sync backup's answer
		stops     bool // the join stops: its commit is refused
	}{
		{"applied", "A\r\n", false, false, false},
		{"applied after the commit", "A\r\n", true, false, false},
		{"lost before the commit", "SERVER_ERROR lbd: node st3: connection lost\r\n", false, false, true},
		{"refused before the commit", "E out of memory\r\n", false, false, true},
		{"lost after the commit", "SERVER_ERROR lbd: node st3: connection lost\r\n", true, true, false},
		{"stale after the commit", "S 9\r\n", true, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rp := &replicator{r: &router{tenant: "t", n: &clusterNode{log: slog.New(slog.DiscardHandler)}}}
			j := rp.startJoin("st3", map[int]uint64{7: 3})
			j.committed.Store(tt.committed)
			f := newFuture()
			f.complete([]byte(tt.answer))
			waits, nodes, ended := rp.settleJoins([]*future{f}, []*join{j}, nil, nil)
			if got := len(waits) == 1 && nodes[0] == "st3" && len(ended) == 1; got != tt.inSync {
				t.Fatalf("handed to await as in sync: %v, want %v", got, tt.inSync)
			}
			asked := false
			err := rp.commitJoin(j, func() error { asked = true; return nil })
			if stopped := err != nil && !asked; stopped != tt.stops {
				t.Fatalf("join stopped: %v (%v), want %v", stopped, err, tt.stops)
			}
			if registered := rp.joinsOf(7) != nil || rp.js.many.Load() > 0; tt.stops && registered {
				t.Fatal("a stopped join is still registered")
			}
		})
	}
}
