package kvs

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// Deep pipelines against a slow backup. A node that forwards requests, and
// a primary that streams records, fail the other side when no answer comes
// for the request timeout (2 s); a side that ran what it had buffered
// before it answered any gave none for as long as the whole buffer took.

// slowApply makes node i take per over each replication record it
// applies as a backup (a slow disk), until the test ends.
func slowApply(t *testing.T, tc *testCluster, i int, per time.Duration) {
	rp := tc.router(i).repl
	slow := func(record) bool { time.Sleep(per); return false }
	rp.afterApply.Store(&slow)
	t.Cleanup(func() { rp.afterApply.Store(nil) })
}

// TestClusterDeepPipelineSlowBackup: 400 sets pipelined on one connection
// to a node that forwards them to their primary, whose backup applies a
// record every 10 ms: every one is stored (the primary writes its replies
// every reqsPerFlush requests; before, it wrote none until the last ran,
// 4 s later, and the forwarding node timed them all out).
func TestClusterDeepPipelineSlowBackup(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	keys := keysWhere(tc.slotMap(), "deep", 400, func(s slots.Slot) bool {
		return s.Primary == "st2" && slices.Equal(s.InSync, []string{"st3"})
	})
	slowApply(t, tc, 2, 10*time.Millisecond)
	c, err := net.Dial("tcp", tc.addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var req strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&req, "set %s 0 0 1\r\nx\r\n", k)
	}
	if _, err := c.Write([]byte(req.String())); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	for i, k := range keys {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("set %d of %d: %v", i+1, len(keys), err)
		}
		if line != "STORED\r\n" {
			t.Fatalf("set %d of %d (%s): %q", i+1, len(keys), k, line)
		}
	}
}

// TestClusterRebuildSlowBackup: st3, out of the in-sync set of st2's
// slots, is rebuilt with 400 items while it applies a record every 10 ms:
// it joins (it answers every reqsPerFlush records; before, it answered
// none until the buffer of records was applied, st2's stream timed out,
// and every retry of the rebuild failed the same way).
func TestClusterRebuildSlowBackup(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	m := tc.slotMap()
	ss := slices.DeleteFunc(slotsOf(m, "st2"), func(i int) bool { return !slices.Equal(m.Slots[i].InSync, []string{"st3"}) })
	keys := keysWhere(m, "rebuild", 400, func(s slots.Slot) bool {
		return s.Primary == "st2" && slices.Equal(s.InSync, []string{"st3"})
	})
	for _, k := range keys {
		if got := <-setAsync(t, tc.addrs[1], k); got != "STORED\r\n" {
			t.Fatalf("set %s: %q", k, got)
		}
	}
	slowApply(t, tc, 2, 10*time.Millisecond)
	if _, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		c := cur.Clone()
		for _, i := range ss {
			c.Slots[i].InSync = nil
		}
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "st3 rebuilt and in sync again", func() bool {
		m := tc.slotMap()
		for _, i := range ss {
			if !slices.Contains(m.Slots[i].InSync, "st3") {
				return false
			}
		}
		return true
	})
	for _, k := range keys {
		if _, ok := tc.innerStore(2).Get([]byte(k), time.Now().Unix()); !ok {
			t.Fatalf("st3 in sync without %s", k)
		}
	}
}
