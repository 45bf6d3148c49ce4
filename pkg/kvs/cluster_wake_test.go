package kvs

import (
	"bufio"
	"context"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/slots"
)

// A request that ran nowhere waits for what lets it run, and no longer:
// these tests hold such a request until it is parked, then bring what it
// waits for, with nothing else changing, and want it answered by that, not
// by moveWait's SERVER_ERROR.

// router returns node i's router of the tenant.
func (tc *testCluster) router(i int) *router {
	tc.mu.Lock()
	tier := tc.tiers[i]
	tc.mu.Unlock()
	tier.mu.Lock()
	defer tier.mu.Unlock()
	return tier.cluster.routers["t"]
}

// waitParked waits until a request waits to be sent again at node i.
func (tc *testCluster) waitParked(i int) {
	tc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for tc.router(i).waiting.Load() == 0 {
		if time.Now().After(deadline) {
			tc.t.Fatalf("no request waits at %s after 20s", tc.names[i])
		}
		time.Sleep(time.Millisecond)
	}
}

// setAsync sets key through addr on a new connection and sends the reply
// line (or the error) on the channel it returns.
func setAsync(t *testing.T, addr, key string) <-chan string {
	return doAsync(t, addr, "set "+key+" 0 0 2\r\nhi\r\n")
}

// doAsync sends req to addr on a new connection and sends the reply line
// (or the error) on the channel it returns.
func doAsync(t *testing.T, addr, req string) <-chan string {
	out := make(chan string, 1)
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, req)
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			line = err.Error()
		}
		out <- line
	}()
	return out
}

// TestClusterRetryLaggingPrimary: a slot moves from st1 to st2; st3 sees
// the move but st2's cluster state lags, so st2 refuses the write st3
// forwards to it. st3's own map does not change again: the write must
// still run at st2 once st2 caught up (st3 sends it again), not fail after
// moveWait.
func TestClusterRetryLaggingPrimary(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	m := tc.slotMap()
	key := keyWhere(m, "lag", func(s slots.Slot) bool { return s.Primary == "st1" && slices.Equal(s.InSync, []string{"st2"}) })
	sl := slots.Of([]byte(key))
	tc.stores[1].cut(true) // st2's view stays the old one
	if _, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		c := cur.Clone()
		c.Slots[sl] = slots.Slot{Primary: "st2", Backups: []string{"st1"}, InSync: []string{"st1"}, Epoch: cur.MaxEpoch() + 1}
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for tc.router(2).m.Load().Slots[sl].Primary != "st2" {
		if time.Now().After(deadline) {
			t.Fatal("st3 did not see the move in 20s")
		}
		time.Sleep(time.Millisecond)
	}
	reply := setAsync(t, tc.addrs[2], key)
	tc.waitParked(2) // refused by st2, waiting at st3
	tc.stores[1].cut(false)
	// Any write wakes st2's watch, which reads the map again; st3's map
	// stays the same.
	if _, err := tc.store.Propose(context.Background(), cluster.Op{Key: "wake", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if got := <-reply; got != "STORED\r\n" {
		t.Fatalf("set %s through st3 once st2 caught up: %q", key, got)
	}
	if v, found, ok := getVia(t, tc.addrs[1], key); !ok || !found || v != "hi" {
		t.Fatalf("get %s at st2: %q found %v ok %v", key, v, found, ok)
	}
}

// TestClusterLeaseRegainWakes: no leader probes the storage nodes for a
// while (raft elects a new one), so their leases lapse, and a write to a
// slot of st2 through st2 waits. The new leader's probe grants st2 its
// lease again, with no map changing: the write must run then, not fail
// after moveWait.
func TestClusterLeaseRegainWakes(t *testing.T) {
	tc := startClusterWith(t, 3, 1, slots.Sync, true)
	key, _ := keyOf(t, tc, 1)
	tc.notLeading.Store(true)
	deadline := time.Now().Add(20 * time.Second)
	for tc.router(1).serving() {
		if time.Now().After(deadline) {
			t.Fatal("st2's lease did not lapse in 20s")
		}
		time.Sleep(time.Millisecond)
	}
	reply := setAsync(t, tc.addrs[1], key)
	tc.waitParked(1)
	ver := tc.router(1).ver.Load()
	tc.notLeading.Store(false)
	if got := <-reply; got != "STORED\r\n" {
		t.Fatalf("set %s through st2 once its lease was granted again: %q", key, got)
	}
	if v := tc.router(1).ver.Load(); v != ver {
		t.Logf("(the map changed meanwhile: %d to %d)", ver, v)
	}
}

// TestClusterQueuedWriteSeesShrink: a write waits for its backup, which
// died, to leave the in-sync set (the cluster state has no leader for a
// while), and a second write of the same key waits behind it. Once the
// first's shrink is committed, the second goes by the map it left: it
// neither waits for the dead backup nor shrinks again (which would hold
// every write of the node one more lease).
func TestClusterQueuedWriteSeesShrink(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	m := tc.slotMap()
	key := keyWhere(m, "q", func(s slots.Slot) bool { return s.Primary == "st2" && slices.Equal(s.InSync, []string{"st3"}) })
	gate := make(chan struct{})
	tc.stores[1].mu.Lock()
	tc.stores[1].gate = gate
	tc.stores[1].mu.Unlock()
	tc.kill(2)
	rp := tc.router(1).repl
	first := setAsync(t, tc.addrs[1], key)
	deadline := time.Now().Add(20 * time.Second)
	for rp.shrinks.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no shrink after 20s")
		}
		time.Sleep(time.Millisecond)
	}
	second := setAsync(t, tc.addrs[1], key)
	// Slack for the second write to reach the key's lock (if it does not
	// in time, the test proves nothing but does not fail).
	time.Sleep(200 * time.Millisecond)
	tc.stores[1].mu.Lock()
	tc.stores[1].gate = nil
	tc.stores[1].mu.Unlock()
	close(gate)
	for i, ch := range []<-chan string{first, second} {
		if got := <-ch; got != "STORED\r\n" {
			t.Fatalf("write %d: %q", i+1, got)
		}
	}
	if n := rp.shrinks.Load(); n != 1 {
		t.Fatalf("%d shrinks, want 1", n)
	}
}
