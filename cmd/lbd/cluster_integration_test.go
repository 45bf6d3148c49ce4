//go:build integration

// End-to-end tests of the replicated cluster state on this kernel (no IPVS
// needed); the lab is in cluster_lab_test.go.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/cluster/certs"
	"github.com/lbd-project/lbd/pkg/config"
)

var failoverCluster = clusterYAML([][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}}, `
vrrp: {virtual_router_id: 78, advert_interval: 100ms, vips: [10.99.0.100]}
defaults: {health: {type: none}, acl_action: reject}
tenants:
  - name: shop
    service: {vip: 10.99.0.100, port: 13101}
    allow: [10.99.0.10, 10.99.0.20]
    kvs: {memory: 8MiB}
`, "catchup_timeout: 5s")

// A source removed from an allow-list through any node, once applied on
// every node, never gets through either director's fence again: not after
// the master is killed, not when it comes back (it catches up before it
// preempts), not when a change was made while it was down, not when both
// directors restart. Real TCP connections through the VIP.
func TestClusterAllowListFailover(t *testing.T) {
	l := newClusterLab(t, failoverCluster, [][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}})
	l.host("cl", "10.99.0.10")
	l.host("out", "10.99.0.20")
	all := []string{"lb1", "lb2", "st1"}
	for _, n := range all {
		l.startNode(n)
	}
	l.listen("lb1", ":13101")
	l.listen("lb2", ":13101")
	leader := l.leader(all...)
	eventually(t, 30*time.Second, "lb1 master", func() bool { return l.ownsVIP("lb1") && !l.ownsVIP("lb2") })
	eventually(t, 30*time.Second, "both sources reach the service", func() bool { return l.reaches("cl", vip) && l.reaches("out", vip) })

	// The change goes through a node that is not the leader.
	via := "st1"
	if leader == "st1" {
		via = "lb2"
	}
	l.change(via, all, allowOp("shop", api.AllowDel, "10.99.0.20"))
	for _, n := range all {
		if l.kernelAllows(n, "shop", "10.99.0.20") {
			t.Errorf("%s's kernel still allows 10.99.0.20 after the change was reported applied everywhere", n)
		}
		if !l.kernelAllows(n, "shop", "10.99.0.10") {
			t.Errorf("%s's kernel lost 10.99.0.10", n)
		}
	}
	refused := func(when string) {
		t.Helper()
		if l.reaches("out", vip) {
			t.Fatalf("%s: the removed source got through", when)
		}
	}
	refused("after the change")

	// kill -9 of the master (and maybe the raft leader): lb2 takes over
	// with the same fence; writes go on.
	l.kill("lb1")
	eventually(t, 30*time.Second, "lb2 master", func() bool { return l.ownsVIP("lb2") })
	eventually(t, 30*time.Second, "cl served by lb2", func() bool { return l.reaches("cl", vip) })
	refused("lb2 master after lb1 was killed")

	// While lb1 is down, cl is removed too. lb1 comes back with its last
	// applied state (cl allowed) and must not take the VIP before it has
	// caught up.
	l.leader("lb2", "st1")
	l.change("lb2", []string{"lb2", "st1"}, allowOp("shop", api.AllowDel, "10.99.0.10"))
	if l.reaches("cl", vip) {
		t.Fatal("cl got through lb2 after its removal was applied")
	}
	// Its raft traffic is cut for a while first: it must stay backup.
	cut := "iptables -I INPUT -p tcp --dport 7380 -j DROP && iptables -I OUTPUT -p tcp --dport 7380 -j DROP"
	heal := "iptables -D INPUT -p tcp --dport 7380 -j DROP && iptables -D OUTPUT -p tcp --dport 7380 -j DROP"
	l.sh("lb1", cut)
	l.startNode("lb1")
	// Its API answers after the first reconcile, which removed the VIP the
	// killed run left on eth0. From then on it must not hold the VIP.
	l.nodes["lb1"].d.status(t)
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		if l.ownsVIP("lb1") {
			t.Fatal("lb1 took the VIP before it caught up with the cluster")
		}
		if l.reaches("cl", vip) {
			t.Fatal("cl got through while lb1 could not catch up")
		}
	}
	l.sh("lb1", heal)
	for deadline := time.Now().Add(60 * time.Second); !l.ownsVIP("lb1"); {
		if l.reaches("cl", vip) || l.reaches("out", vip) {
			t.Fatal("a removed source got through while lb1 came back")
		}
		if time.Now().After(deadline) {
			t.Fatal("lb1 did not preempt after its restart")
		}
	}
	for range 5 {
		if l.reaches("cl", vip) || l.reaches("out", vip) {
			t.Fatal("a removed source got through lb1 after it preempted")
		}
	}
	if l.kernelAllows("lb1", "shop", "10.99.0.10") {
		t.Error("lb1's kernel allows cl after catching up")
	}

	// cl is allowed again through the restarted node.
	l.change("lb1", all, allowOp("shop", api.AllowAdd, "10.99.0.10"))
	eventually(t, 30*time.Second, "cl served again", func() bool { return l.reaches("cl", vip) })
	refused("after cl was allowed again")

	// Both directors die; lb2 comes back first, then lb1: st1 and one
	// director are a quorum; out never gets in.
	l.kill("lb2")
	l.kill("lb1")
	l.startNode("lb2")
	eventually(t, 60*time.Second, "lb2 master alone", func() bool { return l.ownsVIP("lb2") })
	refused("lb2 back alone")
	l.startNode("lb1")
	eventually(t, 60*time.Second, "lb1 preempts again", func() bool { return l.ownsVIP("lb1") && !l.ownsVIP("lb2") })
	eventually(t, 30*time.Second, "cl served by lb1", func() bool { return l.reaches("cl", vip) })
	refused("lb1 back after both restarted")

	// The storage node fences the tenant's port too.
	if out, err := l.nc("out", "10.99.0.11:13101", "version"); err == nil {
		t.Errorf("the removed source reached the storage node directly: %q", out)
	}
	// Every node wrote the cluster's file as its own.
	for _, n := range all {
		b, _ := os.ReadFile(l.nodes[n].cfg)
		if string(b) != string(mustRead(t, l.nodes["lb1"].cfg)) {
			t.Errorf("%s's file differs from lb1's", n)
		}
	}
}

const vip = "10.99.0.100:13101"

func mustRead(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var partitionCluster = clusterYAML([][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}, {"st8", "10.99.0.18"}, {"st9", "10.99.0.19"}}, `
defaults: {health: {type: none}}
tenants:
  - name: shop
    service: {vip: 10.99.0.100, port: 13101}
    allow: [10.99.0.10]
    kvs: {memory: 8MiB}
`, "voters: [lb1, lb2, st1]", "catchup_timeout: 3s")

// allowOf is a tenant's allow-list as a node's API reports it.
func (l *clusterLab) allowOf(node, tenant string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := l.client(node).Allow(ctx, tenant)
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprint(list)
}

// cutOff drops every packet between ns and the addresses (both ways).
func (l *clusterLab) cutOff(ns string, addrs ...string) {
	for _, a := range addrs {
		l.sh(ns, fmt.Sprintf("iptables -I INPUT -s %s -j DROP && iptables -I OUTPUT -d %s -j DROP", a, a))
	}
}

func (l *clusterLab) heal(ns string, addrs ...string) {
	for _, a := range addrs {
		l.sh(ns, fmt.Sprintf("iptables -D INPUT -s %s -j DROP && iptables -D OUTPUT -d %s -j DROP", a, a))
	}
}

// A partition of the leader: the majority elects a leader and commits;
// the cut-off leader refuses writes with a no-leader error naming what is
// missing and keeps enforcing what it had; healed, it converges on the
// majority's state. A node whose certificate is not of the cluster's CA
// never joins nor learns the state, and cannot write.
func TestClusterPartition(t *testing.T) {
	l := newClusterLab(t, partitionCluster, [][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}})
	all := []string{"lb1", "lb2", "st1"}
	for _, n := range all {
		l.startNode(n)
	}
	leader := l.leader(all...)
	l.change(leader, all, allowOp("shop", api.AllowAdd, "10.99.0.21"))

	var rest, restAddrs []string
	for _, n := range all {
		if n != leader {
			rest, restAddrs = append(rest, n), append(restAddrs, l.nodes[n].addr)
		}
	}
	l.cutOff(leader, restAddrs...)
	newLeader := l.leader(rest...)
	if newLeader == leader {
		t.Fatalf("the cut-off node %s is still the majority's leader", leader)
	}
	l.change(rest[0], rest, allowOp("shop", api.AllowAdd, "10.99.0.22"))

	// The minority refuses, fast and plainly, through lbctl (exit 5).
	lbctl, _ := filepath.Abs("../../bin/lbctl")
	start := time.Now()
	out, err := exec.Command(lbctl, "--socket", l.nodes[leader].d.sock, "tenant", "allow", "add", "shop", "10.99.0.23").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Errorf("write on the cut-off node: %v (want exit 5)\n%s", err, out)
	}
	if !strings.Contains(string(out), "leader") {
		t.Errorf("the refusal does not say what is missing: %s", out)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the refusal took %s", took)
	}
	if got := l.allowOf(leader, "shop"); strings.Contains(got, "10.99.0.23") || strings.Contains(got, "10.99.0.22") {
		t.Errorf("the cut-off node's state moved: %s", got)
	}
	if !l.kernelAllows(leader, "shop", "10.99.0.21") {
		t.Errorf("the cut-off node stopped enforcing its last state")
	}

	// Healed: one history.
	l.heal(leader, restAddrs...)
	l.leader(all...)
	idx := l.change(rest[1], all, allowOp("shop", api.AllowDel, "10.99.0.21"))
	want := l.allowOf(rest[0], "shop")
	for _, n := range all {
		if got := l.allowOf(n, "shop"); got != want {
			t.Errorf("%s's allow-list %s, %s's %s", n, got, rest[0], want)
		}
		if l.kernelAllows(n, "shop", "10.99.0.23") {
			t.Errorf("%s enforces the write the minority refused", n)
		}
	}
	if !strings.Contains(want, "10.99.0.22") || strings.Contains(want, "10.99.0.21") {
		t.Errorf("converged allow-list %s: want the majority's writes", want)
	}

	// A node with a certificate of another CA: no join, no state, no write.
	rogueCA := filepath.Join(l.dir, "rogue")
	if err := certs.InitDir(rogueCA, "rogue CA"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := certs.IssueDir(rogueCA, "st9", []string{"10.99.0.19"}); err != nil {
		t.Fatal(err)
	}
	l.host("st9", "10.99.0.19")
	// Its own CA, so that it starts (lbd refuses to start with a
	// certificate its CA did not sign).
	cfg := strings.ReplaceAll(partitionCluster, "CERTS", rogueCA)
	path := filepath.Join(l.dir, "st9.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	l.nodes["st9"] = &clusterNode{name: "st9", addr: "10.99.0.19", cfg: path}
	l.startNode("st9")
	l.nodes["st9"].d.status(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.client("st9").ChangeAllow(ctx, "shop", api.AllowAdd, []string{"10.99.0.24"}); !errors.Is(err, api.ErrNoLeader) {
		t.Errorf("a write on the node without a valid certificate: %v, want a no-leader refusal", err)
	}
	st, err := l.client("st9").ClusterStatus(ctx)
	if err != nil || st.AppliedIndex >= idx || st.Leader != "" {
		t.Errorf("the node without a valid certificate learned the cluster's state: %+v %v", st, err)
	}
	cs, err := l.client(rest[0]).ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cs.Members {
		if m.Name == "st9" {
			t.Errorf("the node without a valid certificate joined: %+v", m)
		}
	}
	if got := l.allowOf(rest[0], "shop"); strings.Contains(got, "10.99.0.24") {
		t.Errorf("the rogue write landed: %s", got)
	}

	// A node of the file that is not a voter, with a valid certificate,
	// joins by itself as a non-voter and enforces the cluster's state.
	l.host("st8", "10.99.0.18")
	if _, _, err := certs.IssueDir(l.certDir, "st8", []string{"10.99.0.18"}); err != nil {
		t.Fatal(err)
	}
	path8 := filepath.Join(l.dir, "st8.yaml")
	os.WriteFile(path8, []byte(strings.ReplaceAll(partitionCluster, "CERTS", l.certDir)), 0o600)
	l.nodes["st8"] = &clusterNode{name: "st8", addr: "10.99.0.18", cfg: path8}
	l.startNode("st8")
	l.waitApplied(rest[0], idx, append(slices.Clone(all), "st8"))
	eventually(t, 30*time.Second, "st8 a non-voter member", func() bool {
		cs, err := l.client(rest[0]).ClusterStatus(ctx)
		return err == nil && slices.ContainsFunc(cs.Members, func(m api.ClusterMember) bool { return m.Name == "st8" && !m.Voter })
	})
	if !l.kernelAllows("st8", "shop", "10.99.0.22") || l.kernelAllows("st8", "shop", "10.99.0.21") {
		t.Errorf("the joined node enforces %s, not the cluster's list", l.allowOf("st8", "shop"))
	}
}

var fiveNodes = clusterYAML([][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}, {"st2", "10.99.0.12"}, {"st3", "10.99.0.13"}}, `
defaults: {health: {type: none}}
tenants:
  - name: shop
    service: {vip: 10.99.0.100, port: 13101}
    allow: [10.99.0.10]
    kvs: {memory: 8MiB}
`, "catchup_timeout: 3s", "raft_snapshot_threshold: 64", "raft_snapshot_interval: 200ms", "raft_trailing_logs: 16")

// Five voters: a change made on any node is applied on all; one tenant
// add gives a fence on both directors and a store on every storage node;
// the leader killed, another is elected and writes go on; a follower that
// missed hundreds of writes (far more than the log keeps after a
// snapshot) catches up from a snapshot.
func TestClusterFiveNodes(t *testing.T) {
	nodes := [][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}, {"st2", "10.99.0.12"}, {"st3", "10.99.0.13"}}
	l := newClusterLab(t, fiveNodes, nodes)
	all := l.order
	for _, n := range all {
		l.startNode(n)
	}
	l.leader(all...)
	for i, n := range all {
		src := fmt.Sprintf("10.99.1.%d", i+1)
		l.change(n, all, allowOp("shop", api.AllowAdd, src))
		for _, m := range all {
			if !l.kernelAllows(m, "shop", src) {
				t.Errorf("%s's change (%s) is not in %s's kernel", n, src, m)
			}
		}
	}

	// One tenant add, on a storage node.
	l.change("st3", all, func(ctx context.Context, c *api.Client) error {
		return c.AddTenant(ctx, config.Tenant{Name: "cafe", Service: config.Service{VIP: "10.99.0.100", Port: 13102},
			Allow: []string{"10.99.0.2", "10.99.0.3"}, KVS: config.KVS{Memory: 8 << 20}})
	})
	for _, d := range []string{"lb1", "lb2"} {
		if rules := l.sh(d, "iptables -S LBD-ACL"); !strings.Contains(rules, "--dport 13102") {
			t.Errorf("no fence for the new tenant on %s:\n%s", d, rules)
		}
	}
	for _, s := range []string{"st1", "st2", "st3"} {
		addr := l.nodes[s].addr + ":13102"
		eventually(t, 30*time.Second, "the new tenant's store on "+s, func() bool {
			out, err := l.nc("lb1", addr, "version")
			return err == nil && strings.HasPrefix(out, "VERSION")
		})
	}

	// kill -9 of the leader: a new one, and writes go on.
	leader := l.leader(all...)
	l.kill(leader)
	var rest []string
	for _, n := range all {
		if n != leader {
			rest = append(rest, n)
		}
	}
	if nl := l.leader(rest...); nl == leader {
		t.Fatalf("the killed %s is still the leader", leader)
	}
	l.change(rest[len(rest)-1], rest, allowOp("shop", api.AllowDel, "10.99.1.1"))
	l.startNode(leader)

	// A follower misses 300 writes, then catches up by a snapshot.
	leader = l.leader(all...)
	var down, via string
	for _, n := range all {
		switch {
		case n == leader:
		case down == "":
			down = n
		case via == "":
			via = n
		}
	}
	l.kill(down)
	var live []string
	for _, n := range all {
		if n != down {
			live = append(live, n)
		}
	}
	c := l.client(via)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const writes = 300
	for i := range writes {
		op := api.AllowAdd
		if i%2 == 1 {
			op = api.AllowDel
		}
		if _, err := c.ChangeAllow(ctx, "shop", op, []string{"10.99.2.1"}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	last := c.LastMeta().Index
	l.change(via, live, allowOp("shop", api.AllowAdd, "10.99.2.2"))
	l.startNode(down)
	l.waitApplied(via, last+1, all)
	if !l.kernelAllows(down, "shop", "10.99.2.2") || l.kernelAllows(down, "shop", "10.99.2.1") {
		t.Errorf("%s caught up to a different allow-list: %s", down, l.allowOf(down, "shop"))
	}
	st, err := l.client(via).ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.Name == down && m.SnapshotsInstalled == 0 {
			t.Errorf("%s caught up without a snapshot: %+v", down, m)
		}
	}
}

const joinCluster = `
nodes:
  - {name: lb1, role: director, address: 10.99.0.2, interface: eth0, priority: 150}
  - {name: lb2, role: director, address: 10.99.0.3, interface: eth0, priority: 100}
  - {name: st1, role: storage, address: 10.99.0.11, interface: eth0}
  - {name: st4, role: storage, address: 10.99.0.14, interface: eth0}
defaults: {health: {type: none}}
tenants:
  - name: shop
    service: {vip: 10.99.0.100, port: 13101}
    allow: [10.99.0.10]
    kvs: {memory: 8MiB}
cluster:
  voters: [lb1, lb2, st1]
  tls:
    ca: CERTS/ca.pem
    cert: CERTS/{node}.pem
    key: CERTS/{node}-key.pem
  catchup_timeout: 3s
`

// lbctl runs bin/lbctl against node's socket and returns its output.
func (l *clusterLab) lbctl(node string, args ...string) (string, error) {
	bin, _ := filepath.Abs("../../bin/lbctl")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"--socket", l.nodes[node].d.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// A storage node that is not one of the bootstrap voters joins a running
// three-node cluster with one command (lbctl cluster join, sent to a
// follower), catches up with what was written before it started, serves
// its role (the tenant's fence with the cluster's list, the tenant's
// store), takes writes of its own (forwarded to the leader), and
// lbctl cluster members shows it; lbctl cluster remove takes it out and
// the others go on writing.
func TestClusterJoin(t *testing.T) {
	l := newClusterLab(t, joinCluster, [][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}, {"st4", "10.99.0.14"}})
	three := []string{"lb1", "lb2", "st1"}
	for _, n := range three {
		l.startNode(n)
	}
	leader := l.leader(three...)
	follower := "lb2"
	if leader == follower {
		follower = "lb1"
	}
	before := l.change(follower, three, allowOp("shop", api.AllowAdd, "10.99.0.21"))

	// The one command, through a follower (forwarded to the leader):
	// st4 is a member before its lbd even runs.
	if out, err := l.lbctl(follower, "cluster", "join", "st4", "10.99.0.14:7380"); err != nil || !strings.Contains(out, "st4 joined as a non-voter") {
		t.Fatalf("lbctl cluster join: %v\n%s", err, out)
	}
	l.startNode("st4")
	four := append(slices.Clone(three), "st4")
	l.waitApplied(leader, before, four)
	if !l.kernelAllows("st4", "shop", "10.99.0.21") || !l.kernelAllows("st4", "shop", "10.99.0.10") {
		t.Errorf("st4 fences shop with %s, not the cluster's list", l.allowOf("st4", "shop"))
	}
	eventually(t, 30*time.Second, "shop's store on st4", func() bool {
		out, err := l.nc("lb1", "10.99.0.14:13101", "version")
		return err == nil && strings.HasPrefix(out, "VERSION")
	})
	// A write through the new node reaches every node.
	l.change("st4", four, allowOp("shop", api.AllowAdd, "10.99.0.22"))
	for _, n := range four {
		if !l.kernelAllows(n, "shop", "10.99.0.22") {
			t.Errorf("st4's change is not in %s's kernel", n)
		}
	}
	// Refusals made on the leader come back through the node that took
	// the change, as the leader's API would have answered them; nothing
	// is written.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := l.client("st4").AddTenant(ctx, config.Tenant{Name: "shop", Service: config.Service{VIP: "10.99.0.100", Port: 13109}, KVS: config.KVS{Memory: 8 << 20}})
	if !errors.Is(err, api.ErrConflict) {
		t.Errorf("a second tenant shop through st4: %v, want a conflict", err)
	}
	err = l.client("st4").AddTenant(ctx, config.Tenant{Name: "cafe", Service: config.Service{VIP: "10.99.0.100", Port: 13101}, KVS: config.KVS{Memory: 8 << 20}})
	var ae *api.Error
	if !errors.As(err, &ae) || !errors.Is(err, api.ErrInvalid) || len(ae.Problems) == 0 {
		t.Errorf("a tenant on shop's port through st4: %v, want the configuration's problems", err)
	}
	if ts, err := l.client(leader).Tenants(ctx); err != nil || len(ts) != 1 {
		t.Errorf("tenants after the refusals: %+v %v", ts, err)
	}
	var members string
	eventually(t, 30*time.Second, "st4 in lbctl cluster members", func() bool {
		out, err := l.lbctl(leader, "cluster", "members")
		members = out
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if err == nil && len(f) >= 4 && f[0] == "st4" && f[1] == "10.99.0.14:7380" && f[2] == "no" && f[3] == "follower" {
				return true
			}
		}
		return false
	})

	// Out again: members no longer lists it, the three go on.
	if out, err := l.lbctl(follower, "cluster", "remove", "st4"); err != nil || !strings.Contains(out, "removed st4") {
		t.Fatalf("lbctl cluster remove: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, "st4 gone from lbctl cluster members", func() bool {
		out, err := l.lbctl(leader, "cluster", "members")
		members = out
		return err == nil && strings.Contains(out, "lb1") && !strings.Contains(out, "st4")
	})
	l.change(leader, three, allowOp("shop", api.AllowDel, "10.99.0.21"))
	if t.Failed() {
		t.Logf("members:\n%s", members)
	}
}
