package kvs

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/cluster/certs"
	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterOnRaft runs three storage nodes on the raft-backed cluster
// state (three voters), with the cluster's mutual TLS between them: keys
// written through random nodes read back through others, and a node
// killed (its tier and its raft node) loses no acknowledged write.
func TestClusterOnRaft(t *testing.T) {
	ca, err := certs.NewCA("test cluster", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"st1", "st2", "st3"}
	var servers []cluster.Server
	raftAddrs := make([]string, 3)
	for i, n := range names {
		raftAddrs[i] = freeLoopback(t)
		servers = append(servers, cluster.Server{ID: n, Address: raftAddrs[i], Voter: true})
	}
	nodes := make([]*cluster.Node, 3)
	tiers := make([]*Tier, 3)
	addrs := make([]string, 3)
	ctx := context.Background()
	confs := make([]*tls.Config, 3)
	for i, n := range names {
		confs[i] = testTLS(t, ca, n)
		rn, err := cluster.Open(ctx, cluster.Options{NodeID: n, Advertise: raftAddrs[i], DataDir: t.TempDir(), TLS: confs[i].Clone(),
			Bootstrap: servers, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = rn
		t.Cleanup(func() { rn.Shutdown() })
	}
	for i, n := range names {
		c, rn := confs[i], nodes[i]
		tier := New(testLogger(t), Options{})
		t.Cleanup(func() { tier.Close() })
		if err := tier.JoinCluster(ctx, ClusterOptions{Node: n, PeerListen: "127.0.0.1:0", Store: rn,
			ServerTLS: c.Clone(), ClientTLS: c.Clone(), IsLeader: rn.IsLeader}); err != nil {
			t.Fatal(err)
		}
		if err := tier.Apply(ctx, []TenantConfig{{Name: "t", Listen: "127.0.0.1:0", Replicas: 1}}); err != nil {
			t.Fatal(err)
		}
		a, _ := tier.Addr("t")
		tiers[i], addrs[i] = tier, a.String()
	}
	if _, err := PlaceTenant(ctx, nodes[0], "t", names, 1, slots.Sync); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	acked := map[string]string{}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 200; {
		k, v := fmt.Sprintf("raft:%d", i), fmt.Sprintf("v%d", i)
		if setVia(t, addrs[rng.IntN(3)], k, v) {
			acked[k] = v
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatal("writes not accepted within 30s of the start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for k, v := range acked {
		if got, found, ok := getEventually(t, addrs[rng.IntN(3)], k); !ok || !found || got != v {
			t.Fatalf("%s = %q %v %v, want %q", k, got, found, ok, v)
		}
	}
	// Kill a node that is not the raft leader: the leader fails it over.
	victim := 0
	for nodes[victim].IsLeader() {
		victim++
	}
	tiers[victim].Close()
	nodes[victim].Shutdown()
	live := []int{}
	for i := range 3 {
		if i != victim {
			live = append(live, i)
		}
	}
	for k, v := range acked {
		if got, found, ok := getEventually(t, addrs[live[rng.IntN(2)]], k); !ok || !found || got != v {
			t.Fatalf("after the kill, %s = %q %v %v, want %q", k, got, found, ok, v)
		}
	}
	t.Logf("%d keys read back after %s was killed", len(acked), names[victim])
}

// freeLoopback returns a loopback address with a port free right now.
func freeLoopback(t testing.TB) string {
	t.Helper()
	tier := New(nil, Options{NoEventLoop: true})
	defer tier.Close()
	ln, err := listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
