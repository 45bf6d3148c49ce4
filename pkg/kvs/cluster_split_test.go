package kvs

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterMoveSplitIncrBehind: a slot of st1 with two in-sync backups
// (st2, st3) hands over to st3 while st1 and st3 miss the move. An incr A
// run by st1 is applied by st3 and refused by st2 (a split write, see
// settle); an incr B of the same key, run by st1 right behind A (it waited
// for A's write to be acknowledged), must not be computed from st1's copy
// with A undone: both are acknowledged once st3 has taken the slot over,
// so they must answer 11 and 12, and the counter end at 12 on every copy.
// (TestClusterR2IncrMoves found this: two incrs answered the same value,
// the counter one short of the acknowledged incrs.)
func TestClusterMoveSplitIncrBehind(t *testing.T) {
	tc := startCluster(t, 4, 1, slots.Sync)
	k := keysWhere(tc.slotMap(), "behind:", 1, func(s slots.Slot) bool { return s.Primary == "st1" })[0]
	sl := slots.Of([]byte(k))
	tc.place(t, sl, slots.Slot{Primary: "st1", Backups: []string{"st2", "st3"}, InSync: []string{"st2", "st3"}})
	if !setVia(t, tc.addrs[3], k, "10") {
		t.Fatal("set failed")
	}
	// st3 holds its answer to A's record until B waits behind A.
	aIn, bIn, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var n int
	var mu sync.Mutex
	var released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	hold := func(rec record) bool {
		if rec.op != 'S' || string(rec.key) != k {
			return false
		}
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		switch i {
		case 1:
			close(aIn)
			<-release
		case 2:
			close(bIn)
		}
		return false
	}
	tc.router(2).repl.afterApply.Store(&hold)
	// st1 (the old primary) and st3 (the new one) miss the move; st2 sees
	// it.
	for _, i := range []int{0, 2} {
		tc.stores[i].cut(true)
	}
	defer func() {
		for _, i := range []int{0, 2} {
			tc.thaw(i)
		}
	}()
	tc.place(t, sl, slots.Slot{Primary: "st3", Backups: []string{"st2", "st1"}, InSync: []string{"st2", "st1"}})
	a := doAsync(t, tc.addrs[0], "incr "+k+" 1\r\n")
	select {
	case <-aIn:
	case <-time.After(20 * time.Second):
		t.Fatal("st3 did not get A's record in 20s")
	}
	b := doAsync(t, tc.addrs[0], "incr "+k+" 1\r\n")
	// B reaches st1's store and waits for A's write (a scheduling
	// allowance: if it comes later, st1 has fenced the slot, and B is
	// sent again to st3, which the test accepts too).
	time.Sleep(200 * time.Millisecond)
	unblock()
	select {
	case <-bIn:
	case <-time.After(300 * time.Millisecond):
		t.Log("B's record did not reach st3 from st1 (B came after A's fence)")
	}
	for _, i := range []int{0, 2} {
		tc.thaw(i)
	}
	ga, gb := <-a, <-b
	tc.waitSeen(t)
	v, found, ok := getEventually(t, tc.addrs[2], k)
	t.Logf("A answered %q, B %q; the counter is %q", strings.TrimSpace(ga), strings.TrimSpace(gb), v)
	ans := []string{ga, gb}
	slices.Sort(ans)
	if ans[0] != "11\r\n" || ans[1] != "12\r\n" {
		t.Errorf("incrs A and B answered %q and %q, want 11 and 12", ga, gb)
	}
	if !ok || !found || v != "12" {
		t.Errorf("%s after A and B: %q found %v ok %v, want 12", k, v, found, ok)
	}
	now := time.Now().Unix()
	p, _ := tc.innerStore(2).Get([]byte(k), now)
	for _, i := range []int{0, 1} {
		if c, _ := tc.innerStore(i).Get([]byte(k), now); string(c.Value) != string(p.Value) || c.CAS != p.CAS {
			t.Errorf("%s at st3's in-sync backup %s: %q cas %d, st3 %q cas %d", k, tc.names[i], c.Value, c.CAS, p.Value, p.CAS)
		}
	}
}
