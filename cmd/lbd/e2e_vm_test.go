//go:build vm

// End-to-end tests of the lbd daemon against real kernel IPVS. They need
// root and a kernel with IPVS, so they run inside the VM (make vmtest), in
// network namespaces they create: a client and an outsider, a director and
// two storage nodes on a bridge.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
)

var statPID = regexp.MustCompile(`STAT pid (\d+)`)

const labConfig = `
nodes:
  - {name: lb, role: director, address: 10.99.0.2, interface: eth0, priority: 150}
  - {name: st1, role: storage, address: 10.99.0.11, interface: eth0}
  - {name: st2, role: storage, address: 10.99.0.12, interface: eth0}
vrrp: {virtual_router_id: 42, advert_interval: 100ms, vips: [10.99.0.100]}
defaults:
  scheduler: rr
  drain_period: 2s
  health: {type: memcached, connect_timeout: 1s, retry: 0, delay_before_retry: 1s,
           delay_loop: 1s, warmup: 0, inhibit_on_failure: true}
tenants:
  - name: user1
    service: {vip: 10.99.0.100, port: 13101}
    allow: [10.99.0.10]
    reals: [{address: 10.99.0.11, weight: 1}, {address: 10.99.0.12, weight: %d}]
`

// TestVMDaemonDR runs the whole story of issue 2 on a real kernel.
func TestVMDaemonDR(t *testing.T) {
	l := newLab(t)
	l.host("cl", "10.99.0.10")
	l.host("out", "10.99.0.20")
	l.host("lb", "10.99.0.2")
	l.host("st1", "10.99.0.11")
	l.host("st2", "10.99.0.12")
	cfg := l.config(fmt.Sprintf(labConfig, 1))

	// An operator's own service, made by hand before lbd starts.
	l.sh("lb", "ipvsadm -A -t 10.99.0.200:80 -s wlc && ipvsadm -a -t 10.99.0.200:80 -r 10.99.0.11:80 -g")

	st1 := l.start("st1", cfg)
	l.start("st2", cfg)
	lb := l.start("lb", cfg)

	// The storage nodes put the VIP on lo and serve the tenant.
	for _, n := range []string{"st1", "st2"} {
		eventually(t, 60*time.Second, n+" VIP on lo", func() bool {
			return strings.Contains(l.sh(n, "ip -o addr show dev lo"), "10.99.0.100/32")
		})
		if v := strings.TrimSpace(l.sh(n, "sysctl -n net.ipv4.conf.all.arp_ignore")); v != "1" {
			t.Errorf("%s arp_ignore = %s", n, v)
		}
	}
	// The director becomes VRRP master alone, owns the VIP and programs IPVS.
	eventually(t, 60*time.Second, "director owns the VIP", func() bool {
		return strings.Contains(l.sh("lb", "ip -o addr show dev eth0"), "10.99.0.100")
	})
	eventually(t, 60*time.Second, "IPVS service with both reals", func() bool {
		out := l.sh("lb", "ipvsadm -Ln -t 10.99.0.100:13101")
		return strings.Contains(out, "10.99.0.11:13101") && strings.Contains(out, "10.99.0.12:13101") && strings.Contains(out, "Route")
	})

	// Real connections from the allowed client reach both real servers (rr).
	pids := map[string]int{}
	for i := 0; i < 6; i++ {
		out, err := l.nc("cl", "10.99.0.100:13101", "stats")
		m := statPID.FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("stats via VIP: %v %q", err, out)
		}
		pids[m[1]]++
	}
	if len(pids) != 2 {
		t.Fatalf("connections reached %d real servers, want 2 (rr): %v", len(pids), pids)
	}
	// DR: the director never sees the replies: incoming packets are
	// counted, outgoing ones never (the kernel sums the counters every 2s).
	var stats string
	eventually(t, 60*time.Second, "IPVS counters", func() bool {
		stats = l.sh("lb", "ipvsadm -Ln --stats -t 10.99.0.100:13101")
		return dsrStats(stats) != ""
	})
	if dsrStats(stats) != "dr" {
		t.Errorf("director saw replies; not DR:\n%s", stats)
	}
	// The outsider gets nothing: its port is fenced before IPVS.
	if out, err := l.nc("out", "10.99.0.100:13101", "version"); err == nil {
		t.Errorf("outsider reached the tenant: %q", out)
	}

	// A storage node dies: it leaves the rotation (weight 0, inhibit) and
	// every new connection goes to the other one; it comes back after.
	st1.stop(syscall.SIGKILL)
	eventually(t, 60*time.Second, "st1 weight 0", func() bool { return realWeight(l, "10.99.0.11:13101") == "0" })
	for i := 0; i < 4; i++ {
		out, err := l.nc("cl", "10.99.0.100:13101", "version")
		if err != nil || !strings.HasPrefix(out, "VERSION") {
			t.Fatalf("with st1 down: %v %q", err, out)
		}
	}
	st1 = l.start("st1", cfg)
	eventually(t, 60*time.Second, "st1 back to weight 1", func() bool { return realWeight(l, "10.99.0.11:13101") == "1" })

	// SIGHUP with an unchanged file: zero netlink writes.
	before := lb.status(t)
	lb.cmd.Process.Signal(syscall.SIGHUP)
	after := waitReconciled(t, lb, before.Reconcile.Generation)
	if after.Reconcile.IPVSWrites != before.Reconcile.IPVSWrites {
		t.Errorf("unchanged reload wrote %d times", after.Reconcile.IPVSWrites-before.Reconcile.IPVSWrites)
	}
	// One changed weight: exactly one write.
	l.config(fmt.Sprintf(labConfig, 3))
	lb.cmd.Process.Signal(syscall.SIGHUP)
	after2 := waitReconciled(t, lb, after.Reconcile.Generation)
	if n := after2.Reconcile.IPVSWrites - after.Reconcile.IPVSWrites; n != 1 {
		t.Errorf("one weight change wrote %d times, want 1", n)
	}
	if w := realWeight(l, "10.99.0.12:13101"); w != "3" {
		t.Errorf("st2 weight = %s, want 3", w)
	}

	// A file with errors is refused with file:line; the running state stays.
	os.WriteFile(cfg+".bad", []byte("tenants:\n  - name: x\n    service: {vip: 10.99.0.100, port: 99999}\n"), 0o600)
	if out, err := exec.Command(l.bin, "-t", "-f", cfg+".bad").CombinedOutput(); err == nil || !strings.Contains(string(out), ".bad:3:") {
		t.Errorf("lbd -t accepted a bad file or gave no file:line: %v %s", err, out)
	}
	good, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte("tenants: [{name: x, service: {vip: 10.99.0.100, port: 0}}]\n"), 0o600)
	lb.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(2 * time.Second) // give a wrong reload the chance to do harm
	os.WriteFile(cfg, good, 0o600)
	if w := realWeight(l, "10.99.0.12:13101"); w != "3" {
		t.Errorf("after a refused reload st2 weight = %s, want 3", w)
	}

	// Restart of the director: an established connection survives and lbd
	// adopts its services without a single write.
	conn := l.openConn("cl", "10.99.0.100:13101")
	defer conn.close()
	if r := conn.roundTrip(t, "version"); !strings.HasPrefix(r, "VERSION") {
		t.Fatalf("held connection: %q", r)
	}
	lb.stop(syscall.SIGTERM)
	if !strings.Contains(l.sh("lb", "ipvsadm -Ln"), "10.99.0.100:13101") {
		t.Fatal("SIGTERM removed the IPVS service")
	}
	lb = l.start("lb", cfg)
	st := lb.status(t)
	eventually(t, 60*time.Second, "first reconcile after restart", func() bool { st = lb.status(t); return st.Reconcile.Count > 0 })
	if st.Reconcile.IPVSWrites != 0 {
		t.Errorf("restart wrote %d times to IPVS, want 0 (adopt, not rebuild)", st.Reconcile.IPVSWrites)
	}
	if r := conn.roundTrip(t, "version"); !strings.HasPrefix(r, "VERSION") {
		t.Errorf("established connection lost across restart: %q", r)
	}

	// The operator's hand-made service survived start, reloads and stop.
	if !strings.Contains(l.sh("lb", "ipvsadm -Ln"), "10.99.0.200:80") {
		t.Error("hand-made ipvsadm service was removed")
	}
}

// waitReconciled waits for a reconcile of a newer desired state than gen.
func waitReconciled(t *testing.T, d *lbd, gen uint64) api.Status {
	t.Helper()
	var st api.Status
	eventually(t, 60*time.Second, "reconcile after reload", func() bool {
		st = d.status(t)
		return st.Reconcile.Generation > gen
	})
	return st
}

// realWeight reads a real server's weight from the director's kernel.
func realWeight(l *lab, real string) string {
	for _, line := range strings.Split(l.sh("lb", "ipvsadm -Ln -t 10.99.0.100:13101"), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "->" && f[1] == real {
			return f[3]
		}
	}
	return ""
}

// dsrStats reads the service's line in `ipvsadm -Ln --stats`: "" while no
// packet is counted yet, "dr" when packets came in and none went out
// through the director, "replies" otherwise.
func dsrStats(out string) string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 7 && f[0] == "TCP" {
			switch {
			case f[3] == "0":
				return ""
			case f[4] == "0":
				return "dr"
			}
			return "replies"
		}
	}
	return ""
}
