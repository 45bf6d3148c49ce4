//go:build vm

package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/testutil/netnstest"
)

// failoverConfig is two directors (lb1 preferred), two storage nodes and a
// tenant in DR, rr; %s is the vrrp's lvs_sync_daemon line, or nothing.
// Adverts every second: at 100ms the emulated VM, on a loaded host, misses
// enough of them for the backup to take over now and then, which no test
// here is about.
const failoverConfig = `
nodes:
  - {name: lb1, role: director, address: 10.98.0.2, interface: eth0, priority: 150}
  - {name: lb2, role: director, address: 10.98.0.3, interface: eth0, priority: 100}
  - {name: st1, role: storage, address: 10.98.0.11, interface: eth0}
  - {name: st2, role: storage, address: 10.98.0.12, interface: eth0}
vrrp:
  virtual_router_id: 61
  advert_interval: 1s
  vips: [10.98.0.100]
%s
defaults:
  scheduler: rr
  health: {type: memcached, connect_timeout: 1s, retry: 0, delay_before_retry: 1s,
           delay_loop: 1s, warmup: 0, inhibit_on_failure: true}
tenants:
  - name: user1
    service: {vip: 10.98.0.100, port: 13101}
    allow: [10.98.0.10]
`

const failoverVIP = "10.98.0.100:13101"

// TestVMFailoverKeepsConnections is issue 16's story: a client holds 50
// memcached connections through the VIP; kill -9 of the master director's
// lbd hands the VIP to the backup, and every connection still gets its
// answer there, and again after the failback, with the kernel's connection
// sync that lbd runs. Then a reload switches the sync off (lbd stops its
// daemons), and the same failover loses the connections: the test can
// fail. One lab serves both parts, to keep the VM's time down.
func TestVMFailoverKeepsConnections(t *testing.T) {
	syncOn := fmt.Sprintf(failoverConfig, "  lvs_sync_daemon: {}")
	l, lb1, lb2 := failoverLab(t, "  lvs_sync_daemon: {}")
	for _, n := range []string{"lb1", "lb2"} {
		out := l.sh(n, "ipvsadm -Ln --daemon")
		me, peer := "61", "62"
		if n == "lb2" {
			me, peer = peer, me
		}
		if !strings.Contains(out, "master sync daemon (mcast=eth0, syncid="+me+",") ||
			!strings.Contains(out, "backup sync daemon (mcast=eth0, syncid="+peer+",") {
			t.Fatalf("%s runs the wrong sync daemons:\n%s", n, out)
		}
	}
	conns := dialMany(t, l, 50)
	if n := roundAll(t, conns); n != len(conns) {
		t.Logf("lb1:\n%s\nlb2:\n%s", l.sh("lb1", "ipvsadm -Lnc; ipvsadm -Ln --stats"), l.sh("lb2", "ipvsadm -Lnc"))
		t.Fatalf("before the failover only %d of %d connections answer", n, len(conns))
	}
	waitSynced(t, l, "lb2", conns)

	lb1.stop(syscall.SIGKILL)
	waitVIP(t, l, "lb2")
	if n := roundAll(t, conns); n != len(conns) {
		t.Fatalf("after the failover %d of %d connections answer", n, len(conns))
	}
	// Connections made through lb2 reach lb1 only through the sync
	// (its kernel's backup daemon runs on after lbd's kill -9).
	more := dialMany(t, l, 10)
	if n := roundAll(t, more); n != len(more) {
		t.Fatalf("through lb2, %d of %d new connections answer", n, len(more))
	}
	waitSynced(t, l, "lb1", more)

	// lb1 comes back, adopts its sync daemons, and takes the VIP back.
	lb1 = l.start("lb1", l.config(syncOn))
	waitVIP(t, l, "lb1")
	eventually(t, 60*time.Second, "lb2 gives the VIP up", func() bool {
		return !strings.Contains(l.sh("lb2", "ip -o addr show dev eth0"), "10.98.0.100/32")
	})
	all := append(conns, more...)
	if n := roundAll(t, all); n != len(all) {
		t.Fatalf("after the failback %d of %d connections answer", n, len(all))
	}
	var st api.Status
	eventually(t, 60*time.Second, "lb1's first reconcile", func() bool { st = lb1.status(t); return st.Reconcile.Count > 0 })
	if len(st.IPVSSync) != 2 {
		t.Errorf("lb1's status shows the sync daemons %q, want its two", st.IPVSSync)
	}
	b, _ := os.ReadFile(lb1.log)
	if n := strings.Count(string(b), "ipvs sync daemon started"); n != 2 {
		t.Errorf("lb1 started a sync daemon %d times over two runs, want 2 (the restart adopts them)", n)
	}
	closeAll(all)

	// The sync switched off by a reload: lbd stops the daemons it started,
	// and the next failover loses the connections made since.
	l.config(fmt.Sprintf(failoverConfig, ""))
	for _, d := range []*lbd{lb1, lb2} {
		d.cmd.Process.Signal(syscall.SIGHUP)
	}
	for _, n := range []string{"lb1", "lb2"} {
		eventually(t, 60*time.Second, n+" stops its sync daemons", func() bool {
			return !strings.Contains(l.sh(n, "ipvsadm -Ln --daemon"), "sync daemon")
		})
	}
	lost := dialMany(t, l, 50)
	if n := roundAll(t, lost); n != len(lost) {
		t.Fatalf("without sync, before the failover only %d of %d connections answer", n, len(lost))
	}
	lb1.stop(syscall.SIGKILL)
	waitVIP(t, l, "lb2")
	if n := roundAll(t, lost); n == len(lost) {
		t.Fatalf("without sync all %d connections survived the failover: the test cannot tell sync from no sync", n)
	} else {
		t.Logf("without sync, %d of %d connections survived the failover", n, len(lost))
	}
}

func closeAll(conns []*mcConn) {
	for _, m := range conns {
		m.c.Close()
	}
}

// failoverLab starts the lab of failoverConfig with sync (a line of the
// vrrp block) and waits until lb1 holds the VIP and both storage nodes are
// in rotation on both directors.
func failoverLab(t *testing.T, sync string) (*lab, *lbd, *lbd) {
	t.Helper()
	l := newLab(t)
	l.host("cl", "10.98.0.10")
	l.host("lb1", "10.98.0.2")
	l.host("lb2", "10.98.0.3")
	l.host("st1", "10.98.0.11")
	l.host("st2", "10.98.0.12")
	cfg := l.config(fmt.Sprintf(failoverConfig, sync))
	l.start("st1", cfg)
	l.start("st2", cfg)
	lb1 := l.start("lb1", cfg)
	lb2 := l.start("lb2", cfg)
	eventually(t, 60*time.Second, "lb1 holds the VIP", func() bool {
		return strings.Contains(l.sh("lb1", "ip -o addr show dev eth0"), "10.98.0.100/32")
	})
	for _, n := range []string{"lb1", "lb2"} {
		eventually(t, 90*time.Second, n+": both storage nodes up", func() bool {
			out := strings.Join(strings.Fields(l.sh(n, "ipvsadm -Ln -t "+failoverVIP)), " ")
			return strings.Contains(out, "10.98.0.11:13101 Route 1") && strings.Contains(out, "10.98.0.12:13101 Route 1")
		})
	}
	l.nc("cl", failoverVIP, "version") // the client's neighbour entry for the VIP
	waitVIP(t, l, "lb1")
	return l, lb1, lb2
}

// waitVIP waits until director n holds the VIP and the client's neighbour
// entry for it points at n (its gratuitous ARP). A director whose lbd was
// killed keeps its kernel state (IPVS, the VIP): the client must no longer
// send there, or the failover would not be tested at all. The client
// addresses the VIP before the first call, so the entry exists.
func waitVIP(t *testing.T, l *lab, n string) {
	t.Helper()
	eventually(t, 60*time.Second, n+" holds the VIP", func() bool {
		return strings.Contains(l.sh(n, "ip -o addr show dev eth0"), "10.98.0.100/32")
	})
	mac := strings.TrimSpace(l.sh(n, "cat /sys/class/net/eth0/address"))
	eventually(t, 60*time.Second, "the client's neighbour entry for the VIP points at "+n, func() bool {
		return strings.Contains(l.sh("cl", "ip neigh show 10.98.0.100"), mac)
	})
}

// mcConn is one client connection held open from the client namespace.
type mcConn struct {
	c net.Conn
	r *bufio.Reader
}

// dialMany opens n connections from the client to the VIP.
func dialMany(t *testing.T, l *lab, n int) []*mcConn {
	t.Helper()
	var out []*mcConn
	for i := 0; i < n; i++ {
		var c net.Conn
		err := netnstest.Do(l.full("cl"), func() (err error) {
			c, err = net.DialTimeout("tcp", failoverVIP, 5*time.Second)
			return err
		})
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, &mcConn{c: c, r: bufio.NewReader(c)})
	}
	return out
}

// roundAll sends one request on every connection and returns how many got
// their answer (logging the first few that did not).
func roundAll(t *testing.T, conns []*mcConn) int {
	t.Helper()
	ok, logged := 0, 0
	for _, m := range conns {
		m.c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := fmt.Fprintf(m.c, "version\r\n")
		var line string
		if err == nil {
			line, err = m.r.ReadString('\n')
		}
		if err == nil && strings.HasPrefix(line, "VERSION") {
			ok++
			continue
		}
		if logged++; logged <= 3 {
			t.Logf("connection %s: %q %v", m.c.LocalAddr(), line, err)
		}
	}
	return ok
}

// waitSynced waits until director n's kernel has an established entry for
// every one of conns (learnt from the other director's sync daemon).
func waitSynced(t *testing.T, l *lab, n string, conns []*mcConn) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("%s learns the %d connections", n, len(conns)), func() bool {
		out := l.sh(n, "ipvsadm -Lnc")
		for _, m := range conns {
			if !strings.Contains(out, " "+m.c.LocalAddr().String()+" ") {
				return false
			}
		}
		return true
	})
}
