//go:build integration

package vrrp_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/vrrp"
	"golang.org/x/net/ipv6"
)

// director6 runs vrrpd with the IPv6 VIP: VRRPv3 over IPv6 to ff02::12
// from eth0's link-local address.
func (l *lab) director6(host string, prio int, extra ...string) *director {
	l.t.Helper()
	return l.director(host, prio, append([]string{"-vip", vip6}, extra...)...)
}

// waitRoles6 is waitRoles for the IPv6 VIP.
func (l *lab) waitRoles6(master *director, backups ...*director) {
	l.t.Helper()
	eventually(l.t, master.host+" MASTER with the IPv6 VIP, others BACKUP without", func() bool {
		if master.stateOf() != "MASTER" || !l.hasVIP(master.host, vip6) {
			return false
		}
		for _, b := range backups {
			if b.stateOf() != "BACKUP" || l.hasVIP(b.host, vip6) {
				return false
			}
		}
		return true
	})
}

// noDrops checks that a director dropped no IPv6 advert of its peer: none
// with a bad checksum (pseudo-header) or a hop limit other than 255.
func noDrops(t *testing.T, ds ...*director) {
	t.Helper()
	for _, d := range ds {
		if log := d.logText(); strings.Contains(log, "invalid advert") || strings.Contains(log, "TTL != 255") {
			t.Errorf("%s dropped adverts:\n%s", d.host, log)
		}
	}
}

// Two instances elect a Master over IPv6; when it is killed the Backup takes
// the VIP and its unsolicited neighbour advertisement moves the client's
// neighbour entry for the VIP before the client sends anything.
func TestIPv6ElectionFailoverNA(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "d2", "c")
	d1 := l.director6("d1", 150)
	d2 := l.director6("d2", 100)
	l.waitRoles6(d1, d2)
	// Adverts come from the link-local address (RFC 5798 5.1.2.1).
	if log := d1.logText(); !strings.Contains(log, "source=fe80::") {
		t.Fatalf("d1 does not send from its link-local address:\n%s", log)
	}
	mac1, mac2 := l.mac("d1"), l.mac("d2")
	eventually(t, "c reaches d1 at the IPv6 VIP", func() bool {
		return l.dialAddr("c", vip6) == "d1" && l.neigh("c", vip6) == mac1
	})

	d1.kill9()
	l.waitRoles6(d2)
	// c has sent nothing since: only d2's unsolicited NA (Override set)
	// can have moved its entry from d1's MAC to d2's.
	eventually(t, "c's neighbour entry for the VIP points at d2", func() bool { return l.neigh("c", vip6) == mac2 })
	eventually(t, "c reaches d2 at the IPv6 VIP", func() bool { return l.dialAddr("c", vip6) == "d2" })

	// d1 returns and preempts; a clean stop hands back at once.
	d1 = l.director6("d1", 150)
	l.waitRoles6(d1, d2)
	eventually(t, "c's entry back at d1", func() bool { return l.neigh("c", vip6) == mac1 })
	d1.stop()
	if l.hasVIP("d1", vip6) {
		t.Fatal("d1 kept the IPv6 VIP after a clean stop")
	}
	l.waitRoles6(d2)
	noDrops(t, d1, d2)
}

// Unicast peers over IPv6, from global addresses (unicast_src_ip).
func TestIPv6Unicast(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "d2", "rogue")
	d1 := l.director6("d1", 150, "-src", l.addr6("d1"), "-peers", l.addr6("d2"))
	d2 := l.director6("d2", 100, "-src", l.addr6("d2"), "-peers", l.addr6("d1"))
	l.waitRoles6(d1, d2)
	rogue := l.director6("rogue", 254, "-src", l.addr6("rogue"), "-peers", l.addr6("d1"))
	eventually(t, "d1 dropped an advert from the rogue", func() bool {
		return strings.Contains(d1.logText(), "unexpected source")
	})
	holds(t, "d1 stays MASTER", time.Second, func() bool { return d1.stateOf() == "MASTER" })
	rogue.kill9()
	d1.kill9()
	l.waitRoles6(d2)
	noDrops(t, d2)
}

// keepalived 2.2 speaks VRRPv3 over IPv6 when its VIPs are IPv6: both ways.
func TestKeepalivedInteropIPv6(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath(keepalivedBin); err != nil {
		t.Skip("needs keepalived")
	}
	l := newLab(t, "ka", "d2")
	ka := l.keepalivedVIP("ka", 150, "", vip6+"/128")
	d2 := l.director6("d2", 100)
	eventually(t, "keepalived MASTER, lbd BACKUP", func() bool {
		return ka.lastState() == "MASTER" && l.hasVIP("ka", vip6) && d2.stateOf() == "BACKUP" && !l.hasVIP("d2", vip6)
	})
	holds(t, "lbd stays BACKUP under keepalived", time.Second, func() bool { return d2.stateOf() == "BACKUP" })
	ka.kill9()
	eventually(t, "lbd MASTER with the VIP", func() bool { return d2.stateOf() == "MASTER" && l.hasVIP("d2", vip6) })

	// keepalived returns with a lower priority and stays BACKUP under lbd.
	ka = l.keepalivedVIP("ka", 50, "", vip6+"/128")
	eventually(t, "keepalived BACKUP under lbd", func() bool { return ka.lastState() == "BACKUP" && !l.hasVIP("ka", vip6) })
	holds(t, "keepalived stays BACKUP", time.Second, func() bool { return ka.lastState() == "BACKUP" && d2.stateOf() == "MASTER" })
	// lbd stops cleanly: keepalived takes over on priority 0.
	d2.stop()
	eventually(t, "keepalived MASTER after lbd's priority 0", func() bool { return ka.lastState() == "MASTER" && l.hasVIP("ka", vip6) })
	noDrops(t, d2)
}

// injectEnv makes the test binary send forged adverts instead of running
// tests: "src,hoplimit,priority,count".
const injectEnv = "VRRP_TEST_INJECT6"

// inject sends count adverts for VRID 51 carrying vip6 to ff02::12 from
// host's eth0, with source src and the given hop limit and priority, by
// re-running the test binary inside host's namespace.
func (l *lab) inject(host, src string, hopLimit, prio, count int) {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.ns(host), os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%d,%d", injectEnv, src, hopLimit, prio, count))
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("inject from %s: %v\n%s", host, err, out)
	}
}

func injectAdverts(spec string) error {
	f := strings.Split(spec, ",")
	if len(f) != 4 {
		return fmt.Errorf("bad spec %q", spec)
	}
	src, err := netip.ParseAddr(f[0])
	if err != nil {
		return err
	}
	var hop, prio, count int
	for i, p := range []*int{&hop, &prio, &count} {
		if *p, err = strconv.Atoi(f[i+1]); err != nil {
			return err
		}
	}
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return err
	}
	c, err := net.ListenPacket("ip6:112", "::")
	if err != nil {
		return err
	}
	defer c.Close()
	pc := ipv6.NewPacketConn(c)
	a := &vrrp.Advertisement{VRID: 51, Priority: uint8(prio), Interval: 100 * time.Millisecond,
		Addresses: []netip.Addr{netip.MustParseAddr(vip6)}}
	b, err := a.Marshal(src, vrrp.GroupIPv6)
	if err != nil {
		return err
	}
	cm := &ipv6.ControlMessage{HopLimit: hop, IfIndex: ifi.Index, Src: src.AsSlice()}
	to := &net.IPAddr{IP: vrrp.GroupIPv6.AsSlice(), Zone: "eth0"}
	for i := 0; i < count; i++ {
		if _, err := pc.WriteTo(b, cm, to); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// Adverts whose hop limit is not 255 come from off-link and are dropped
// (RFC 5798 section 7.1); the same adverts with 255 make the Master step
// down, so the injection itself is proven to reach it.
func TestIPv6HopLimitChecked(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "rogue")
	d1 := l.director6("d1", 150)
	l.waitRoles6(d1)
	l.inject("rogue", l.addr6("rogue"), 64, 254, 20)
	if !strings.Contains(d1.logText(), "TTL != 255") {
		t.Fatalf("d1 did not drop the hop limit 64 adverts:\n%s", d1.logText())
	}
	if s := d1.stateOf(); s != "MASTER" {
		t.Fatalf("d1 is %s after adverts with hop limit 64, want MASTER", s)
	}
	l.inject("rogue", l.addr6("rogue"), 255, 254, 5)
	eventually(t, "d1 BACKUP under hop limit 255 adverts of priority 254", func() bool { return d1.stateOf() == "BACKUP" })
}

// An IPv6 instance whose interface is down at start (no link-local address
// to send from) waits, holding nothing, and joins once the link is up and
// its link-local address has passed duplicate address detection.
func TestIPv6WaitsForLinkLocal(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "d2")
	d2 := l.director6("d2", 100)
	l.waitRoles6(d2)
	run(t, "ip", "-n", l.ns("d1"), "link", "set", "eth0", "down")
	d1 := l.director6("d1", 150)
	eventually(t, "d1 started", func() bool { return d1.stateOf() != "" })
	holds(t, "d1 waits without the VIP, d2 stays MASTER", time.Second, func() bool {
		return d1.stateOf() == "INIT" && !l.hasVIP("d1", vip6) && d2.stateOf() == "MASTER"
	})
	run(t, "ip", "-n", l.ns("d1"), "link", "set", "eth0", "up")
	l.waitRoles6(d1, d2)
}
