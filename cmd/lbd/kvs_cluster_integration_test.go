//go:build integration

package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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

// Three real lbd storage nodes with a cluster section are one store: 200
// keys, each set on a new connection to a random node, read back on a new
// connection to another one; after a kill -9 of one node every key is
// still readable through the others (replicas: 1, the leader fails the
// dead node's slots over).
func TestClusterKVSReadYourWrites(t *testing.T) {
	testKVSCluster(t, clusterYAML(kvsStorage, kvsTenant, "catchup_timeout: 3s"), kvsStorage, nil)
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

// kvsClient runs the test binary in ns as a memcached client (see
// kvsClientMain) and returns what it printed.
func (l *clusterLab) kvsClient(ns, mode, prefix string, n int, addrs []string) (string, error) {
	out, err := l.nc(ns, strings.Join(addrs, ","), "KVS "+mode+" "+prefix+" "+strconv.Itoa(n))
	if err == nil && !strings.HasPrefix(out, "ok") {
		err = fmt.Errorf("%s", strings.TrimSpace(out))
	}
	return out, err
}

// kvsClientMain is the client of kvsClient, run by probe when its command
// is "KVS MODE PREFIX N" and its address a list: mode rw sets N keys, each
// on a new connection to a random node, and reads each back at once on a
// new connection to another; mode get reads them back. It prints "ok" or
// the first failure.
func kvsClientMain(addrList, cmd string) int {
	if cmd == "KVS lin" {
		return linClientMain(addrList)
	}
	f := strings.Fields(cmd)
	n, _ := strconv.Atoi(f[3])
	mode, prefix, addrs := f[1], f[2], strings.Split(addrList, ",")
	pick := func(not int) int {
		for {
			i := rand.IntN(len(addrs))
			if i != not || len(addrs) == 1 {
				return i
			}
		}
	}
	for k := range n {
		key, val := fmt.Sprintf("%s%d", prefix, k), fmt.Sprintf("v%d-%s", k, prefix)
		from := -1
		if mode == "rw" {
			from = pick(-1)
			if got, err := kvsRoundTrip(addrs[from], fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(val), val), "\r\n"); err != nil || got != "STORED\r\n" {
				fmt.Printf("set %s via %s: %q %v\n", key, addrs[from], got, err)
				return 0
			}
		}
		to := pick(from)
		want := fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\nEND\r\n", key, len(val), val)
		if got, err := kvsRoundTrip(addrs[to], "get "+key+"\r\n", "END\r\n"); err != nil || got != want {
			fmt.Printf("get %s via %s (set via %d): %q %v\n", key, addrs[to], from, got, err)
			return 0
		}
	}
	fmt.Println("ok")
	return 0
}

// kvsRoundTrip sends req on a new connection and reads until a line ends
// with end (or an error line).
func kvsRoundTrip(addr, req, end string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if strings.HasSuffix(b.String(), end) || strings.Contains(line, "ERROR") {
			return b.String(), nil
		}
	}
}

func init() { kvsClient = kvsClientMain }
