package cluster

import (
	"testing"
	"time"
)

// TestVerifyLeader: the leader's leadership is confirmed by a quorum, a
// follower's is not, and a leader left alone (it may still believe it
// leads) gets no confirmation.
func TestVerifyLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	ctx := ctxT(t)
	l := c.leader()
	if err := l.VerifyLeader(ctx); err != nil {
		t.Fatalf("the leader's leadership not confirmed: %v", err)
	}
	if err := c.follower().VerifyLeader(ctx); err == nil {
		t.Fatal("a follower's leadership confirmed")
	}
	for _, m := range c.running() {
		if m != l {
			c.stop(c.index(m))
		}
	}
	vctx, cancel := contextWithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A heartbeat a follower answered just before it stopped may still
	// confirm a verify asked after (hashicorp/raft counts every answer
	// that arrives once the verify is registered): each follower's
	// heartbeat and replication have one such answer at most in flight.
	// After those, none.
	stale := 0
	for l.VerifyLeader(vctx) == nil {
		if stale++; stale > 4 {
			t.Fatal("a leader left alone has its leadership confirmed again and again")
		}
	}
	if err := l.VerifyLeader(vctx); err == nil {
		t.Fatal("a leader left alone had its leadership confirmed after a verify failed")
	}
	t.Logf("confirmed by answers in flight at the stop: %d", stale)
}
