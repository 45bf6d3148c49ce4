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
	if err := l.VerifyLeader(vctx); err == nil {
		t.Fatal("a leader left alone had its leadership confirmed")
	}
}
