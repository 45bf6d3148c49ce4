//go:build integration

// End-to-end tests of the lbd daemon on this host's kernel (no IPVS needed):
// VRRP failover between two real lbd directors, and the storage nodes'
// second-line allow-lists. They need root; namespaces are the test's own.
package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

const vrrpLab = `
nodes:
  - {name: lb1, role: director, address: 10.99.0.2, interface: eth0, priority: 150}
  - {name: lb2, role: director, address: 10.99.0.3, interface: eth0, priority: 100}
vrrp: {virtual_router_id: 77, advert_interval: 100ms, vips: [10.99.0.100]}
`

// ownsVIP reports whether the namespace has the VIP on eth0.
func (l *lab) ownsVIP(ns string) bool {
	return strings.Contains(l.sh(ns, "ip -o addr show dev eth0"), " 10.99.0.100/")
}

// clientSeesMAC reports whether the client's ARP entry for the VIP points
// at ns's eth0, after a connection attempt made it resolve.
func (l *lab) clientSeesMAC(ns string) bool {
	l.nc("cl", "10.99.0.100:9", "version") // refused or not: it resolves the VIP
	mac := strings.TrimSpace(l.sh(ns, "cat /sys/class/net/eth0/address"))
	return strings.Contains(l.sh("cl", "ip neigh show 10.99.0.100"), mac)
}

func TestDirectorFailover(t *testing.T) {
	l := newLab(t)
	l.host("cl", "10.99.0.10")
	l.host("lb1", "10.99.0.2")
	l.host("lb2", "10.99.0.3")
	cfg := l.config(vrrpLab)
	lb1 := l.start("lb1", cfg)
	lb2 := l.start("lb2", cfg)
	eventually(t, 30*time.Second, "lb1 elected (higher priority)", func() bool { return l.ownsVIP("lb1") && !l.ownsVIP("lb2") })
	if st := lb2.status(t); len(st.VRRP) != 1 || st.VRRP[0].State != "backup" {
		t.Errorf("lb2 VRRP status = %+v, want backup", st.VRRP)
	}
	eventually(t, 30*time.Second, "client's ARP entry at lb1", func() bool { return l.clientSeesMAC("lb1") })

	// kill -9: no goodbye; the backup takes over after the master-down interval.
	lb1.stop(syscall.SIGKILL)
	eventually(t, 30*time.Second, "lb2 takes the VIP", func() bool { return l.ownsVIP("lb2") })
	eventually(t, 30*time.Second, "client's ARP entry follows to lb2", func() bool { return l.clientSeesMAC("lb2") })

	// lb1 comes back and preempts.
	lb1 = l.start("lb1", cfg)
	eventually(t, 30*time.Second, "lb1 preempts", func() bool { return l.ownsVIP("lb1") && !l.ownsVIP("lb2") })

	// A clean stop hands over through priority 0 and removes the VIP.
	lb1.stop(syscall.SIGTERM)
	if l.ownsVIP("lb1") {
		t.Error("lb1 kept the VIP after a clean stop")
	}
	eventually(t, 30*time.Second, "lb2 takes the VIP after the clean stop", func() bool { return l.ownsVIP("lb2") })
	if st := lb2.status(t); st.VRRP[0].State != "master" {
		t.Errorf("lb2 state = %s, want master", st.VRRP[0].State)
	}
}

const storageACLLab = `
nodes:
  - {name: lb1, role: director, address: 10.99.0.2, interface: eth0}
  - {name: st1, role: storage, address: 10.99.0.11, interface: eth0}
defaults: {storage_acl: true}
tenants:
  - name: user1
    service: {vip: 10.99.0.100, port: 13101}
    allow: [10.99.0.10]
`

// With storage_acl, a storage node fences the tenant's port itself: the
// tenant's sources and the directors (health checks) get in, nobody else.
func TestStorageACL(t *testing.T) {
	l := newLab(t)
	l.host("cl", "10.99.0.10")
	l.host("out", "10.99.0.20")
	l.host("lb1", "10.99.0.2")
	l.host("st1", "10.99.0.11")
	cfg := l.config(storageACLLab)
	l.start("st1", cfg)
	eventually(t, 30*time.Second, "the director reaches the tenant's store", func() bool {
		out, err := l.nc("lb1", "10.99.0.11:13101", "version")
		return err == nil && strings.HasPrefix(out, "VERSION")
	})
	if out, err := l.nc("cl", "10.99.0.11:13101", "version"); err != nil || !strings.HasPrefix(out, "VERSION") {
		t.Errorf("the tenant's own source was refused: %v %q", err, out)
	}
	if out, err := l.nc("out", "10.99.0.11:13101", "version"); err == nil {
		t.Errorf("an outsider reached the store: %q", out)
	}
	if rules := l.sh("st1", "iptables -S LBD-ACL-RS"); !strings.Contains(rules, "--dport 13101") {
		t.Errorf("no storage-side rule for the tenant:\n%s", rules)
	}
}

const storageTenants = `
nodes:
  - {name: lb1, role: director, address: 10.99.0.2, interface: eth0}
  - {name: st1, role: storage, address: 10.99.0.11, interface: eth0}
tenants:
%s`

// A reload adds and removes tenants on a storage node without disturbing
// the others: an open connection to an unchanged tenant keeps working and
// keeps its data.
func TestStorageReloadTenants(t *testing.T) {
	l := newLab(t)
	l.host("lb1", "10.99.0.2")
	l.host("st1", "10.99.0.11")
	write := func(tenants string) string { return l.config(fmt.Sprintf(storageTenants, tenants)) }
	const a = "  - {name: a, service: {vip: 10.99.0.100, port: 13101}, allow: []}\n"
	const b = "  - {name: b, service: {vip: 10.99.0.100, port: 13102}, allow: []}\n"
	const c = "  - {name: c, service: {vip: 10.99.0.100, port: 13103}, allow: []}\n"
	st := l.start("st1", write(a+b))
	eventually(t, 30*time.Second, "tenant a served", func() bool {
		out, err := l.nc("lb1", "10.99.0.11:13101", "version")
		return err == nil && strings.HasPrefix(out, "VERSION")
	})
	held := l.openConn("lb1", "10.99.0.11:13101")
	defer held.close()
	if r := held.roundTrip(t, "set k 0 0 1\r\nx"); r != "STORED" {
		t.Fatalf("set on tenant a: %q", r)
	}

	write(a + c) // b goes, c comes, a is unchanged
	st.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 30*time.Second, "tenant c served", func() bool {
		out, err := l.nc("lb1", "10.99.0.11:13103", "version")
		return err == nil && strings.HasPrefix(out, "VERSION")
	})
	eventually(t, 30*time.Second, "tenant b gone", func() bool {
		_, err := l.nc("lb1", "10.99.0.11:13102", "version")
		return err != nil
	})
	if r := held.roundTrip(t, "get k"); r != "VALUE k 0 1" {
		t.Errorf("tenant a's open connection after the reload: %q, want its value", r)
	}
}

// vrrpLab6 is vrrpLab over IPv6: IPv6 VIPs make the instance speak VRRPv3
// to ff02::12 from eth0's link-local address and move the VIP with
// unsolicited neighbour advertisements.
const vrrpLab6 = `
nodes:
  - {name: lb1, role: director, address: "fd99::2", interface: eth0, priority: 150}
  - {name: lb2, role: director, address: "fd99::3", interface: eth0, priority: 100}
vrrp: {virtual_router_id: 78, advert_interval: 100ms, vips: ["fd99::100"]}
`

func TestDirectorFailoverIPv6(t *testing.T) {
	l := newLab(t)
	for n, h := range []string{"cl", "lb1", "lb2"} {
		l.host(h, fmt.Sprintf("10.99.0.%d", 10+n))
		l.sh(h, fmt.Sprintf("ip addr add fd99::%d/64 dev eth0 nodad", []int{10, 2, 3}[n]))
	}
	owns := func(ns string) bool { return strings.Contains(l.sh(ns, "ip -o addr show dev eth0"), " fd99::100/128") }
	mac := func(ns string) string { return strings.TrimSpace(l.sh(ns, "cat /sys/class/net/eth0/address")) }
	clientEntry := func() string { return l.sh("cl", "ip -6 neigh show fd99::100") }
	cfg := l.config(vrrpLab6)
	lb1 := l.start("lb1", cfg)
	l.start("lb2", cfg)
	eventually(t, 30*time.Second, "lb1 elected over IPv6", func() bool { return owns("lb1") && !owns("lb2") })
	eventually(t, 30*time.Second, "client's neighbour entry at lb1", func() bool {
		l.nc("cl", "[fd99::100]:9", "version") // refused or not: it resolves the VIP
		return strings.Contains(clientEntry(), mac("lb1"))
	})
	lb1.stop(syscall.SIGKILL)
	eventually(t, 30*time.Second, "lb2 takes the IPv6 VIP", func() bool { return owns("lb2") })
	// The client sends nothing: lb2's unsolicited NA moves the entry.
	eventually(t, 30*time.Second, "client's neighbour entry follows to lb2", func() bool {
		return strings.Contains(clientEntry(), mac("lb2"))
	})
}
