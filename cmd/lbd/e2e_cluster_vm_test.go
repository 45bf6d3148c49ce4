//go:build vm

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
)

var vmCluster = clusterYAML([][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}}, `
vrrp: {virtual_router_id: 79, advert_interval: 100ms, vips: [10.99.0.100]}
defaults: {health: {type: none}}
tenants:
  - name: shop
    service: {vip: 10.99.0.100, port: 13101}
    allow: [10.99.0.10]
    kvs: {memory: 8MiB}
`)

// TestVMClusterTenantAdd: one tenant add, on a storage node, gives the
// tenant an IPVS service on both directors, its fence, and its store; a
// client of its allow-list is served through the VIP, an outsider is not.
func TestVMClusterTenantAdd(t *testing.T) {
	l := newClusterLab(t, vmCluster, [][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}})
	l.host("cl", "10.99.0.10")
	l.host("out", "10.99.0.20")
	all := []string{"lb1", "lb2", "st1"}
	for _, n := range all {
		l.startNode(n)
	}
	l.leader(all...)
	l.change("st1", all, func(ctx context.Context, c *api.Client) error {
		return c.AddTenant(ctx, config.Tenant{Name: "cafe", Service: config.Service{VIP: "10.99.0.100", Port: 13102},
			Allow: []string{"10.99.0.10"}, KVS: config.KVS{Memory: 8 << 20}})
	})
	for _, d := range []string{"lb1", "lb2"} {
		eventually(t, 60*time.Second, "IPVS service of the new tenant on "+d, func() bool {
			return strings.Contains(l.sh(d, "ipvsadm -Ln -t 10.99.0.100:13102 2>/dev/null || true"), "10.99.0.11:13102")
		})
		if rules := l.sh(d, "iptables -S LBD-ACL"); !strings.Contains(rules, "--dport 13102") {
			t.Errorf("no fence for the new tenant on %s:\n%s", d, rules)
		}
	}
	eventually(t, 60*time.Second, "lb1 master", func() bool {
		return strings.Contains(l.sh("lb1", "ip -o addr show dev eth0"), " 10.99.0.100/")
	})
	eventually(t, 60*time.Second, "the client served by the new tenant through the VIP", func() bool {
		out, err := l.nc("cl", "10.99.0.100:13102", "version")
		return err == nil && strings.HasPrefix(out, "VERSION")
	})
	if out, err := l.nc("out", "10.99.0.100:13102", "version"); err == nil {
		t.Errorf("an outsider reached the new tenant: %q", out)
	}
}

// seedCluster is the seed's shape as one store: two directors (VRRP, IPVS
// rr in DR mode, a memcached health check), four storage nodes clustered
// (replicas: 1 sync). One raft voter, lb1: with more, the emulated VM (six
// lbd processes on two emulated CPUs) misses raft's 500ms leader lease and
// the leader steps down every few seconds; raft's own faults are the
// integration tests'. The timers are set for a machine some fifty times
// slower than this one, as the emulated VM is on a loaded host: adverts
// every second; the directors check every 2s with keepalived's 3s connect
// timeout (the seed's) and one retry, so a late answer does not take a
// node out of rotation (with every node out, IPVS hands the connection to
// the director's own stack, which refuses it); the leader probes the
// storage nodes every 2s (a probe is a TLS handshake); raft tells idle
// followers the commit index every 100-200ms, not 10-20ms (at 10ms the
// leader's empty messages to five followers took a quarter of its CPU),
// and its heartbeat timeout is 1s, not 500ms (a heartbeat to each
// follower a tenth of it apart; a follower that misses it for that long
// forgets the leader, and a storage node's writes then wait).
var seedCluster = clusterYAML([][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"},
	{"st1", "10.99.0.11"}, {"st2", "10.99.0.12"}, {"st3", "10.99.0.13"}, {"st4", "10.99.0.14"}}, `
vrrp: {virtual_router_id: 80, advert_interval: 1s, vips: [10.99.0.100]}
defaults:
  scheduler: rr
  health: {type: memcached, connect_timeout: 3s, retry: 1, delay_before_retry: 1s,
           delay_loop: 2s, warmup: 0, inhibit_on_failure: true}
tenants:
  - name: shop
    service: {vip: 10.99.0.100, port: 13111}
    allow: [10.99.0.10]
    kvs: {memory: 8MiB, replicas: 1}
`, "catchup_timeout: 5s", "voters: [lb1]", "kvs_monitor_interval: 2s", "raft_commit_timeout: 100ms",
	"raft_heartbeat_timeout: 1s", "raft_election_timeout: 1s")

// TestVMClusterStoreThroughVIP is the seed's story with the store made
// one: a client writes 40 keys through the VIP, each on a new connection
// (so the round robin spreads them over the four storage nodes), and reads
// every one back through the VIP on new connections; kill -9 of a storage
// node: once the directors' health check took it out of rotation and the
// store failed its slots over, every key reads back again through the
// VIP. A source outside the allow-list gets nothing through the VIP.
//
// 40 keys: each storage node is the primary of a quarter of the slots, so
// the killed node is the primary of some of them but with a chance of
// (3/4)^40, about 1 in 100,000. Six lbd processes in the emulated VM are
// slow (50-70 s, over 2 minutes at a host load of 12, most of it their
// start: see the phases it logs, with each lbd's CPU seconds), so the test
// keeps its traffic small.
func TestVMClusterStoreThroughVIP(t *testing.T) {
	nodes := [][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"},
		{"st1", "10.99.0.11"}, {"st2", "10.99.0.12"}, {"st3", "10.99.0.13"}, {"st4", "10.99.0.14"}}
	t0 := time.Now()
	var l *clusterLab
	phase := func(what string) { t.Logf("%6.1fs %s; %s", time.Since(t0).Seconds(), what, cpuUse(l)) }
	l = newClusterLab(t, seedCluster, nodes)
	l.host("cl", "10.99.0.10")
	l.host("out", "10.99.0.20")
	phase("lab made")
	all := l.order
	for _, n := range all {
		l.startNode(n)
	}
	// After the nodes' cleanups, so that it runs before them.
	t.Cleanup(func() {
		if t.Failed() { // six lbd processes in the VM: did its kernel kill one?
			out, _ := exec.Command("sh", "-c", "dmesg | grep -i -E 'oom|killed process' | tail -5; free -m").CombinedOutput()
			t.Logf("the VM's kernel:\n%s", out)
			for _, n := range l.order {
				if l.nodes[n].d == nil {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				st, err := l.client(n).ClusterStatus(ctx)
				cancel()
				t.Logf("%s: leader %q term %d applied %d reconciled %d caught up %v stale %q: %v",
					n, st.Leader, st.Term, st.AppliedIndex, st.ReconciledIndex, st.CaughtUp, st.Stale, err)
			}
		}
	})
	// lb1, the only voter, is the raft leader: every storage node can be
	// killed without a raft election. (The other nodes' view of the
	// leader lapses now and then in the emulated VM, so the lab's
	// l.leader(all...) is too strict here.)
	l.leader("lb1")
	phase("lb1 leads")
	const vip, keys = "10.99.0.100:13111", 40
	inRotation := func(d string) string { // the storage nodes with weight 1 on director d
		var up []string
		for _, line := range strings.Split(l.sh(d, "ipvsadm -Ln -t "+vip+" 2>/dev/null || true"), "\n") {
			if f := strings.Fields(line); len(f) >= 4 && f[0] == "->" && f[2] == "Route" && f[3] == "1" {
				up = append(up, f[1])
			}
		}
		return strings.Join(up, " ")
	}
	for _, d := range []string{"lb1", "lb2"} {
		eventually(t, 5*time.Minute, d+": the four storage nodes in rotation", func() bool {
			return inRotation(d) == "10.99.0.11:13111 10.99.0.12:13111 10.99.0.13:13111 10.99.0.14:13111"
		})
	}
	eventually(t, 60*time.Second, "lb1 holds the VIP", func() bool {
		return strings.Contains(l.sh("lb1", "ip -o addr show dev eth0"), " 10.99.0.100/")
	})
	phase("four in rotation on both directors, lb1 holds the VIP")
	// Until the leader placed the tenant and every node joined, a node
	// answers SERVER_ERROR.
	eventually(t, 5*time.Minute, "the tenant served through the VIP", func() bool {
		_, err := l.kvsClient("cl", "rw-retry", "warm", 8, []string{vip})
		return err == nil
	})
	phase("tenant served")
	out, err := l.kvsClient("cl", "rw-retry", "k", keys, []string{vip})
	if err != nil {
		t.Fatalf("read-your-writes through the VIP: %v\n%s", err, out)
	}
	phase(fmt.Sprintf("%d keys set and read back through the VIP: %s", keys, strings.TrimSpace(out)))
	if out, err := l.nc("out", vip, "version"); err == nil {
		t.Errorf("an outsider reached the tenant through the VIP: %q", out)
	}

	victim := "st2"
	l.kill(victim)
	gone := l.nodes[victim].addr + ":13111"
	for _, d := range []string{"lb1", "lb2"} {
		eventually(t, 2*time.Minute, d+": "+victim+" out of rotation", func() bool {
			up := inRotation(d)
			return !strings.Contains(up, gone) && strings.Count(up, ":13111") == 3
		})
	}
	phase(victim + " killed -9, out of rotation")
	var last string
	eventually(t, 2*time.Minute, "every key read back through the VIP after "+victim+" was killed", func() bool {
		out, err := l.kvsClient("cl", "get-retry", "k", keys, []string{vip})
		last = out
		return err == nil
	})
	phase("every key read back through the VIP: " + strings.TrimSpace(last))
	if out, err := l.nc("out", vip, "version"); err == nil {
		t.Errorf("an outsider reached the tenant through the VIP after the kill: %q", out)
	}
}

// cpuUse is the VM's load and each running lbd's CPU seconds so far (the
// test's diagnostics: the emulated VM is slow, and slower on a loaded host).
func cpuUse(l *clusterLab) string {
	b, _ := os.ReadFile("/proc/loadavg")
	out := "load"
	if f := strings.Fields(string(b)); len(f) >= 3 {
		out += " " + strings.Join(f[:3], " ")
	}
	out += ", CPU"
	for _, n := range l.order {
		d := l.nodes[n].d
		if d == nil || d.cmd.Process == nil || d.cmd.ProcessState != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
		i := bytes.LastIndexByte(b, ')')
		if err != nil || i < 0 || len(b) < i+2 {
			continue
		}
		if f := strings.Fields(string(b[i+2:])); len(f) > 12 {
			utime, _ := strconv.Atoi(f[11])
			stime, _ := strconv.Atoi(f[12])
			out += fmt.Sprintf(" %s %.0fs", n, float64(utime+stime)/100) // USER_HZ: 100
		}
	}
	return out
}
