//go:build integration

package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// kvsStorage are the storage nodes of the clustered store tests.
var kvsStorage = [][2]string{{"st1", "10.99.0.11"}, {"st2", "10.99.0.12"}, {"st3", "10.99.0.13"}}

// kvsTenant is the tenant of the clustered store tests.
const kvsTenant = `
defaults: {health: {type: none}}
tenants:
  - name: shop
    service: {vip: 10.99.0.100, port: 13111}
    allow: [10.99.0.10]
    kvs: {memory: 8MiB, replicas: 1}
`

// kvsCluster is the clustered store tests' file: kvsStorage and kvsTenant.
var kvsCluster = clusterYAML(kvsStorage, kvsTenant, "catchup_timeout: 3s")

// Three real lbd storage nodes with a cluster section are one store: 200
// keys, each set on a new connection to a random node, read back on a new
// connection to another one; after a kill -9 of one node every key is
// still readable through the others (replicas: 1, the leader fails the
// dead node's slots over).
func TestClusterKVSReadYourWrites(t *testing.T) {
	testKVSCluster(t, kvsCluster, kvsStorage, nil)
}

// The same with a director as the only voter: the raft leader is not a
// storage node, and its kvs.RunMonitor renews the storage nodes' leases
// and fails the dead node's slots over.
func TestClusterKVSDirectorLeader(t *testing.T) {
	lb1 := [][2]string{{"lb1", "10.99.0.2"}}
	yaml := clusterYAML(append(slices.Clone(lb1), kvsStorage...), kvsTenant, "catchup_timeout: 3s", "voters: [lb1]")
	testKVSCluster(t, yaml, kvsStorage, lb1)
}

// testKVSCluster runs the storage nodes (and the other nodes) of yaml and
// checks read-your-writes through them, lbctl kvs status, and that every
// key survives a kill -9 of a storage node that is not the raft leader.
func testKVSCluster(t *testing.T, yaml string, nodes, others [][2]string) {
	l := newClusterLab(t, yaml, append(slices.Clone(others), nodes...))
	l.host("cl", "10.99.0.10")
	var all, addrs []string
	for _, n := range nodes {
		all, addrs = append(all, n[0]), append(addrs, n[1]+":13111")
		l.startNode(n[0])
	}
	members := slices.Clone(all)
	for _, n := range others {
		members = append(members, n[0])
		l.startNode(n[0])
	}
	leader := l.leader(members...)
	// Until the leader placed the tenant and every node joined, a node
	// answers SERVER_ERROR or is not listening yet.
	warm := ""
	eventually(t, 60*time.Second, "the tenant served through every node", func() bool {
		var err error
		warm, err = l.kvsClient("cl", "rw", "warm", 12, addrs)
		return err == nil
	})
	t.Logf("warm-up: %s", strings.TrimSpace(warm))
	if out, err := l.kvsClient("cl", "rw", "k", 200, addrs); err != nil {
		t.Fatalf("read-your-writes through random nodes: %v\n%s", err, out)
	}

	// lbctl kvs status on any node: the tenant's slots over the three.
	lbctl, _ := filepath.Abs("../../bin/lbctl")
	out, err := exec.Command(lbctl, "--socket", l.nodes["st3"].d.sock, "kvs", "status").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "tenant shop: 1024 slots, replicas 1") {
		t.Errorf("lbctl kvs status: %v\n%s", err, out)
	}
	for _, n := range all {
		if !strings.Contains(string(out), "  "+n+" ") {
			t.Errorf("lbctl kvs status does not list %s:\n%s", n, out)
		}
	}

	// kill -9 of a node that is not the raft leader first, so that the
	// failover is the storage tier's, not raft's (then the leader: both).
	victim := "st1"
	if leader == victim {
		victim = "st2"
	}
	l.kill(victim)
	var alive []string
	for i, n := range all {
		if n != victim {
			alive = append(alive, addrs[i])
		}
	}
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last read: %s", last)
		}
	}()
	eventually(t, 30*time.Second, "every key readable after "+victim+" was killed", func() bool {
		out, err := l.kvsClient("cl", "get", "k", 200, alive)
		last = out
		return err == nil
	})
}

// TestClusterKVSMemccapable runs libmemcached's conformance checker from a
// client's namespace through each of three real lbd storage nodes of one
// store (replicas: 1 sync): most of its keys are forwarded to another
// node's primary and replicated to a third, and its flush_all goes to the
// whole cluster.
func TestClusterKVSMemccapable(t *testing.T) {
	path, err := exec.LookPath("memccapable")
	if err != nil {
		t.Fatalf("memccapable not installed (Debian package libmemcached-tools, make deps): %v", err)
	}
	l, _, _ := startKVSCluster(t, kvsCluster)
	for _, n := range kvsStorage {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.full("cl"), path, "-a", "-h", n[1], "-p", "13111").CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "All tests passed") {
			t.Errorf("memccapable through %s: %v\n%s", n[0], err, out)
		}
	}
}
