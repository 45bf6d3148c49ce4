//go:build vm

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quorumConfig: one director, two storage nodes as the real servers of
// two tenants and a third storage node as the first tenant's sorry server.
// Tenant a has keepalived's default quorum (one server up); tenant b needs
// weight 2 of 4 with hysteresis 1: it loses its quorum with nothing up and
// gains it back only with both up. %[1]s is the directory of the scripts'
// log. The checks retry: a store of the emulated VM that answers slowly
// once must not count as down, or its crossing would be a real one.
const quorumConfig = `
nodes:
  - {name: lb, role: director, address: 10.97.0.2, interface: eth0, priority: 150}
  - {name: st1, role: storage, address: 10.97.0.11, interface: eth0}
  - {name: st2, role: storage, address: 10.97.0.12, interface: eth0}
  - {name: st3, role: storage, address: 10.97.0.13, interface: eth0}
vrrp: {virtual_router_id: 43, advert_interval: 100ms, vips: [10.97.0.100]}
defaults:
  scheduler: rr
  drain_period: 1s
  health: {type: memcached, connect_timeout: 3s, retry: 2, delay_before_retry: 1s,
           delay_loop: 1s, warmup: 0, inhibit_on_failure: true}
tenants:
  - name: a
    service:
      vip: 10.97.0.100
      port: 13101
      sorry_server: {address: 10.97.0.13}
      quorum_up: echo a up >> %[1]s/log
      quorum_down: echo a down >> %[1]s/log
    allow: [10.97.0.10]
    reals: [{address: 10.97.0.11}, {address: 10.97.0.12}]
  - name: b
    service:
      vip: 10.97.0.100
      port: 13102
      quorum: 2
      hysteresis: 1
      quorum_up: echo b up >> %[1]s/log
      quorum_down: echo b down >> %[1]s/log
    allow: [10.97.0.10]
    reals: [{address: 10.97.0.11, weight: 2}, {address: 10.97.0.12, weight: 2}]
`

// TestVMSorryServerAndQuorum: with every real server of tenant a down, new
// connections go to its sorry server, and back to a real server when one
// returns; tenant b's quorum scripts run once per crossing of its
// hysteresis band, not on every server that comes and goes.
func TestVMSorryServerAndQuorum(t *testing.T) {
	l := newLab(t)
	l.host("cl", "10.97.0.10")
	l.host("lb", "10.97.0.2")
	for i := 1; i <= 3; i++ {
		l.host(fmt.Sprintf("st%d", i), fmt.Sprintf("10.97.0.1%d", i))
	}
	dir := t.TempDir()
	cfg := l.config(fmt.Sprintf(quorumConfig, dir))
	st := map[string]*lbd{}
	for _, n := range []string{"st1", "st2", "st3"} {
		st[n] = l.start(n, cfg)
	}
	l.start("lb", cfg)
	eventually(t, 60*time.Second, "the director owns the VIP", func() bool {
		return strings.Contains(l.sh("lb", "ip -o addr show dev eth0"), "10.97.0.100")
	})
	// The storage node that answered, by the pid its stats report.
	pidOf := func(addr string) string {
		var pid string
		eventually(t, 60*time.Second, "stats from "+addr, func() bool {
			out, err := l.nc("cl", addr, "stats")
			m := statPID.FindStringSubmatch(out)
			if err != nil || m == nil {
				return false
			}
			pid = m[1]
			return true
		})
		return pid
	}
	sorryPID := pidOf("10.97.0.13:13101")
	answered := func(want string) bool { // want: "sorry" or "real"
		out, err := l.nc("cl", "10.97.0.100:13101", "stats")
		m := statPID.FindStringSubmatch(out)
		if err != nil || m == nil {
			return false
		}
		return (m[1] == sorryPID) == (want == "sorry")
	}
	scripts := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		return string(b)
	}
	eventually(t, 60*time.Second, "both real servers up on the director", func() bool {
		out := strings.Join(strings.Fields(l.sh("lb", "ipvsadm -Ln")), " ")
		return strings.Contains(out, "10.97.0.11:13101 Route 1") && strings.Contains(out, "10.97.0.12:13101 Route 1") &&
			strings.Contains(out, "10.97.0.11:13102 Route 2") && strings.Contains(out, "10.97.0.12:13102 Route 2")
	})
	// The services may have started without their quorum (the director
	// checked before the stores listened): those crossings ran their
	// scripts already. Count from the moment both have it, scripts done.
	lastOf := func(log, svc string) string {
		last := ""
		for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
			if strings.HasPrefix(line, svc+" ") {
				last = line
			}
		}
		return last
	}
	var base string
	eventually(t, 60*time.Second, "both services' quorum scripts settled", func() bool {
		base = scripts()
		return lastOf(base, "a") != "a down" && lastOf(base, "b") != "b down"
	})
	after := func() string { return strings.TrimPrefix(scripts(), base) }
	for i := 0; i < 4; i++ {
		if !answered("real") {
			t.Fatal("with the real servers up, a connection did not reach one of them")
		}
	}

	// One down: a keeps its quorum, b (2 >= 2-1) too.
	st["st1"].stop(syscall.SIGKILL)
	eventually(t, 60*time.Second, "st1 at weight 0", func() bool {
		return strings.Contains(strings.Join(strings.Fields(l.sh("lb", "ipvsadm -Ln")), " "), "10.97.0.11:13102 Route 0")
	})
	// Both down: both lose it, once; a's new connections go to st3.
	st["st2"].stop(syscall.SIGKILL)
	eventually(t, 60*time.Second, "a's sorry server takes its connections", func() bool { return answered("sorry") })
	eventually(t, 60*time.Second, "both quorum_down scripts", func() bool {
		return strings.Contains(after(), "a down") && strings.Contains(after(), "b down")
	})
	// st2 returns: a has its quorum back (the sorry server goes), b does
	// not (2 < 2+1).
	st["st2"] = l.start("st2", cfg)
	eventually(t, 60*time.Second, "a's connections back on a real server", func() bool { return answered("real") })
	// st1 returns: b gains its quorum.
	st["st1"] = l.start("st1", cfg)
	eventually(t, 60*time.Second, "b's quorum_up", func() bool { return strings.Contains(after(), "b up") })
	want := "a down\nb down\na up\nb up\n"
	got := after()
	got = got[:strings.Index(got, "b up")+len("b up\n")]
	if got != want && got != "b down\na down\na up\nb up\n" {
		t.Errorf("quorum scripts ran:\n%s\nwant once per crossing:\n%s", got, want)
	}
	if out := l.sh("lb", "ipvsadm -Ln -t 10.97.0.100:13101"); strings.Contains(out, "10.97.0.13") {
		// Without sorry_server_inhibit it leaves (after its drain).
		eventually(t, 60*time.Second, "the sorry server leaves IPVS", func() bool {
			return !strings.Contains(l.sh("lb", "ipvsadm -Ln -t 10.97.0.100:13101"), "10.97.0.13")
		})
	}
}
