//go:build integration

package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/kvs"
	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterKVSRebalance: three real lbd storage nodes (replicas: 1
// sync); a storage node that is not the raft leader is killed -9, its
// slots fail over, and it is brought back empty under a read-your-writes
// load through the two others. The leader rebuilds its copies and moves
// its share of primaries and backups back, make-before-break: polled all
// along (`lbctl kvs status`'s JSON), no slot that had its two in-sync
// copies ever has fewer (the slots below two, the failed node's, only
// shrink), the spread ends within one of 1,024/3 for primaries and for
// backups with nothing left moving, and the load sees no client error.
func TestClusterKVSRebalance(t *testing.T) {
	l, all, _ := startKVSCluster(t, kvsCluster)
	leader := l.leader(all...)
	victim := all[0]
	if victim == leader {
		victim = all[1]
	}
	var via, others []string
	for _, n := range all {
		if n != victim {
			others, via = append(others, n), append(via, l.nodes[n].addr+":13111")
		}
	}
	if out, err := l.kvsClient("cl", "rw", "pre", 200, via); err != nil {
		t.Fatalf("keys written before the kill: %v\n%s", err, out)
	}

	l.kill(victim)
	eventually(t, 30*time.Second, victim+"'s slots failed over", func() bool {
		st, err := l.kvsStatus(others[0])
		return err == nil && len(st.Tenants) == 1 && st.Tenants[0].Unavailable == 0 &&
			nodeSlots(st.Tenants[0], victim).Primaries == 0
	})

	// The load, through the two others, from before the victim is back
	// until every move is done.
	stopLoad := l.startLoad("rb", via)

	// The poller: one survivor's view of the map, in raft order.
	polled := l.pollSlots(others[0])
	l.startNode(victim)
	l.kvsSettled(all, victim+" back, its slots rebuilt and rebalanced")
	polls := polled()
	if out := stopLoad(); !strings.HasPrefix(out, "ok") {
		t.Errorf("the load during the rebuild and rebalance: %s", out)
	} else {
		t.Logf("the load during the rebuild and rebalance: %s", out)
	}
	checkMoves(t, polls)

	// The end: even, nothing moving, every key still there.
	st, err := l.kvsStatus(victim)
	if err != nil || len(st.Tenants) != 1 {
		t.Fatalf("status: %+v %v", st, err)
	}
	ts := st.Tenants[0]
	if ts.Moving != 0 || ts.Degraded != 0 || ts.MinInSync != 2 {
		t.Errorf("after settling: %+v", ts)
	}
	for _, n := range all {
		ns := nodeSlots(ts, n)
		if ns.Primaries < slots.Count/3 || ns.Primaries > slots.Count/3+1 || ns.Backups < slots.Count/3 || ns.Backups > slots.Count/3+1 {
			t.Errorf("%s holds %d primaries and %d backups, want %d or %d of each: %+v", n, ns.Primaries, ns.Backups, slots.Count/3, slots.Count/3+1, ts.Nodes)
		}
	}
	addrs := append([]string{l.nodes[victim].addr + ":13111"}, via...)
	if out, err := l.kvsClient("cl", "get", "pre", 200, addrs); err != nil {
		t.Errorf("keys written before the kill, after the rebalance: %v\n%s", err, out)
	}
	var b strings.Builder
	kvs.WriteClusterStatus(&b, st, false)
	t.Logf("lbctl kvs status on %s:\n%s", victim, b.String())
}

// pollSlots polls node's view of the tenant's slots (`lbctl kvs status`'s
// JSON) every 100ms until the returned function is called, which returns
// the polls, in the order of the node's maps.
func (l *clusterLab) pollSlots(node string) func() []kvs.TenantClusterStatus {
	var (
		mu    sync.Mutex
		polls []kvs.TenantClusterStatus
		done  = make(chan struct{})
		stop  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			st, err := l.kvsStatus(node)
			if err != nil || len(st.Tenants) != 1 {
				continue
			}
			mu.Lock()
			polls = append(polls, st.Tenants[0])
			mu.Unlock()
		}
	}()
	return func() []kvs.TenantClusterStatus {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return polls
	}
}

// checkMoves checks polls of a tenant taken while its slots moved: the
// slots with fewer than replicas+1 in-sync copies (a failed node's, not
// rebuilt yet) only shrink, never grow (no move takes an in-sync copy
// away), once none is every poll shows every slot with replicas+1 (or as
// many as there are nodes, if fewer), the last poll too, and some poll
// saw slots moving.
func checkMoves(t *testing.T, polls []kvs.TenantClusterStatus) {
	t.Helper()
	moving, degraded, whole := 0, slots.Count+1, false
	for i, p := range polls {
		if p.Moving > 0 {
			moving++
		}
		if p.Degraded > degraded {
			t.Errorf("poll %d: %d slots with fewer than %d in-sync copies, %d before: a move took a copy away (%+v)", i, p.Degraded, p.Replicas+1, degraded, p)
		}
		degraded = p.Degraded
		if want := min(p.Replicas+1, len(p.Nodes)); p.MinInSync >= want {
			whole = true
		} else if whole {
			t.Errorf("poll %d: a slot with %d in-sync copies after every slot had %d (%+v)", i, p.MinInSync, want, p)
		}
	}
	if moving == 0 {
		t.Errorf("no poll of %d saw a slot moving", len(polls))
	}
	if len(polls) > 0 && !whole {
		t.Errorf("no poll of %d saw every slot with its replicas+1 in-sync copies, the last: %+v", len(polls), polls[len(polls)-1])
	}
	t.Logf("%d polls, %d with slots moving", len(polls), moving)
}

// nodeSlots is what node holds of a tenant (zero if nothing).
func nodeSlots(ts kvs.TenantClusterStatus, node string) kvs.NodeSlots {
	for _, n := range ts.Nodes {
		if n.Node == node {
			return n
		}
	}
	return kvs.NodeSlots{Node: node}
}
