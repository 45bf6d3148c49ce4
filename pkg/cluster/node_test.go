package cluster

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// A write proposed on any node is applied on all; with the leader shut
// down a new one is elected and writes go on, from any node.
func TestClusterReplicates(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			c := newTestCluster(t, size, nil)
			ctx := ctxT(t)
			old := c.leader()
			for i, n := range c.running() {
				key, val := fmt.Sprintf("k/%d", i), fmt.Sprintf("from %s", n.ID())
				idx, err := propose(ctx, n, Op{Key: key, Value: []byte(val)})
				if err != nil {
					t.Fatalf("propose on %s: %v", n.ID(), err)
				}
				// Applied on the node that took it when Propose returns.
				if e, ok := n.Get(key); !ok || string(e.Value) != val || e.Version != idx || n.AppliedIndex() < idx {
					t.Fatalf("%s after propose: %+v %v, applied %d, idx %d", n.ID(), e, ok, n.AppliedIndex(), idx)
				}
				c.waitAll(key, val)
			}

			oi := c.index(old)
			c.stop(oi)
			l := c.leader()
			if l == old {
				t.Fatal("the stopped leader is still the leader")
			}
			for _, n := range c.running() {
				if _, err := propose(ctx, n, Op{Key: "after/" + n.ID(), Value: []byte("x")}); err != nil {
					t.Fatalf("propose on %s after failover: %v", n.ID(), err)
				}
				c.waitAll("after/"+n.ID(), "x")
			}
			// The old leader comes back and catches up.
			c.start(oi)
			c.waitAll("after/"+l.ID(), "x")
		})
	}
}

// A follower down while thousands of entries are written (and the log is
// compacted past them) catches up by InstallSnapshot and equals the others.
func TestSnapshotCatchUp(t *testing.T) {
	c := newTestCluster(t, 3, func(o *Options) {
		o.SnapshotThreshold = 200
		o.TrailingLogs = 100
		o.SnapshotInterval = 50 * time.Millisecond
	})
	ctx := ctxT(t)
	l := c.leader()
	f := c.follower()
	fi := c.index(f)
	if _, err := propose(ctx, l, Op{Key: "before", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	c.waitAll("before", "1")
	c.stop(fi)

	const writes, workers = 3000, 8
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < writes; i += workers {
				if _, err := propose(ctx, l, Op{Key: fmt.Sprintf("w/%05d", i), Value: []byte(fmt.Sprint(i))}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if err := l.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first := l.Status()
	if first.LastSnapshotIndex < writes {
		t.Fatalf("leader's last snapshot at %d, want past %d", first.LastSnapshotIndex, writes)
	}

	c.start(fi)
	f = c.nodes[fi]
	eventually(t, 30*time.Second, "the follower caught up", func() bool { return f.AppliedIndex() >= l.AppliedIndex() })
	if got := f.Status().SnapshotsInstalled; got < 1 {
		t.Fatalf("the follower caught up without installing a snapshot (%d installed)", got)
	}
	want, got := l.List(""), f.List("")
	if len(got) != writes+1 || len(want) != len(got) {
		t.Fatalf("follower has %d entries, leader %d, want %d", len(got), len(want), writes+1)
	}
	for i := range want {
		if want[i].Key != got[i].Key || string(want[i].Value) != string(got[i].Value) || want[i].Version != got[i].Version {
			t.Fatalf("entry %d: follower %+v, leader %+v", i, got[i], want[i])
		}
	}
}

// A non-voter joins through a peer, reads the state, writes through the
// leader, and Members lists everyone.
func TestNonVoterJoins(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	ctx := ctxT(t)
	if _, err := propose(ctx, c.nodes[1], Op{Key: "config", Value: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	o := c.opts[0]
	o.NodeID, o.Advertise, o.DataDir, o.TLS = "reader", freeAddr(t), t.TempDir(), c.ca.tls("reader")
	// It knows one peer, a follower, which passes its request on.
	o.Bootstrap, o.Join = nil, []string{c.follower().Address()}
	r := c.nodes[c.add(o)]
	eventually(t, 20*time.Second, "the reader has the config", func() bool {
		e, ok := r.Get("config")
		return ok && string(e.Value) == "v1"
	})
	if _, err := propose(ctx, r, Op{Key: "from-reader", Value: []byte("y")}); err != nil {
		t.Fatalf("propose on the non-voter: %v", err)
	}
	c.waitAll("from-reader", "y")
	if err := r.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if r.AppliedIndex() < c.leader().AppliedIndex() {
		t.Fatalf("caught up at %d, leader at %d", r.AppliedIndex(), c.leader().AppliedIndex())
	}

	ms, err := r.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaders := 0
	for _, m := range ms {
		if !m.Reachable || m.Status.ID != m.ID {
			t.Errorf("member %s: reachable %v, status %+v, err %s", m.ID, m.Reachable, m.Status, m.Error)
		}
		if m.Voter != (m.ID != "reader") {
			t.Errorf("member %s: voter %v", m.ID, m.Voter)
		}
		if m.Leader {
			leaders++
		}
	}
	if len(ms) != 4 || leaders != 1 {
		t.Fatalf("members %+v", ms)
	}

	// Removed, the reader is no member; a stopped node is listed unreachable.
	if _, err := c.nodes[0].Remove(ctx, "reader"); err != nil {
		t.Fatal(err)
	}
	c.stop(c.index(c.follower()))
	eventually(t, 10*time.Second, "the reader removed", func() bool {
		ms, err := c.leader().Members(ctx)
		if err != nil {
			return false
		}
		unreachable := 0
		for _, m := range ms {
			if m.ID == "reader" {
				return false
			}
			if !m.Reachable {
				unreachable++
			}
		}
		return len(ms) == 3 && unreachable == 1
	})
}

// Compare-and-set holds across nodes: of concurrent writers with the same
// expected version, exactly one wins.
func TestConflictAcrossNodes(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	ctx := ctxT(t)
	a, b := c.nodes[0], c.nodes[1]
	v1, err := a.Propose(ctx, Op{Key: "slots/t1", Value: []byte("a"), IfVersion: Version(0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Propose(ctx, Op{Key: "slots/t1", Value: []byte("b"), IfVersion: Version(0)}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale create on %s: %v, want ErrConflict", b.ID(), err)
	}
	for round := range 5 {
		e, _ := c.nodes[round%3].Get("slots/t1")
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for _, n := range c.running() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each node reads the version it validated against.
				if err := n.WaitCaughtUp(ctx); err != nil {
					t.Error(err)
					return
				}
				_, err := n.Propose(ctx, Op{Key: "slots/t1", Value: []byte(n.ID()), IfVersion: Version(e.Version)})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, ErrConflict):
					conflicts++
				default:
					t.Errorf("%s: %v", n.ID(), err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 || conflicts != 2 {
			t.Fatalf("round %d from version %d: %d wins, %d conflicts", round, e.Version, wins, conflicts)
		}
		if v := e.Version; v < v1 {
			t.Fatalf("version went back: %d < %d", v, v1)
		}
		// Everyone agrees on the winner before the next round.
		l := c.leader()
		w, _ := l.Get("slots/t1")
		c.waitAll("slots/t1", string(w.Value))
	}
}

// With no quorum, a write fails fast with ErrNoLeader naming what is
// missing, and WaitCaughtUp says there is no leader: on the old leader
// left alone and on a follower left alone.
func TestNoLeaderFailsFast(t *testing.T) {
	for _, keepLeader := range []bool{true, false} {
		t.Run(fmt.Sprintf("leader left=%v", keepLeader), func(t *testing.T) {
			c := newTestCluster(t, 3, nil)
			ctx := ctxT(t)
			n := c.follower()
			if keepLeader {
				n = c.leader()
			}
			for _, m := range c.running() {
				if m != n {
					c.stop(c.index(m))
				}
			}
			start := time.Now()
			_, err := n.Propose(ctx, Op{Key: "k", Value: []byte("v")})
			if !errors.Is(err, ErrNoLeader) {
				t.Fatalf("propose without quorum: %v, want ErrNoLeader", err)
			}
			if !strings.Contains(err.Error(), "2 of the voters") {
				t.Errorf("the error does not say what is missing: %v", err)
			}
			// Bounded by LeaderWait (2s) and a leader's lease; a generous bound.
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("propose took %s to fail", d)
			}
			wctx, cancel := contextWithTimeout(ctx, time.Second)
			defer cancel()
			if err := n.WaitCaughtUp(wctx); !errors.Is(err, ErrNoLeader) {
				t.Fatalf("WaitCaughtUp without quorum: %v, want ErrNoLeader", err)
			}
			if _, err := n.Propose(ctx); err == nil || errors.Is(err, ErrNoLeader) {
				t.Fatalf("an empty transaction: %v, want a validation error", err)
			}
		})
	}
}
