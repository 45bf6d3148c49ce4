//go:build integration

// These tests need root; they work only in network namespaces they create
// (lbdifa-<pid>-<n>, deleted in t.Cleanup) and never touch the host's.
package ifaddr

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/lbd-project/lbd/internal/testutil/netnstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testHandle creates a namespace and returns its name and a netlink handle
// bound to it.
func testHandle(t *testing.T) (string, *netlink.Handle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	name := netnstest.New(t, "lbdifa")
	ns, err := netns.GetFromPath(netnstest.Path(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return name, h
}

// ipAddrs lists the addresses of dev as iproute2 shows them, one line
// each, keyed by prefix: a view independent of the code under test.
func ipAddrs(t *testing.T, ns, dev string) map[netip.Prefix]string {
	t.Helper()
	out := netnstest.Exec(t, "ip", "-n", ns, "-o", "addr", "show", "dev", dev)
	m := map[netip.Prefix]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					m[p] = line
				}
			}
		}
	}
	return m
}

func mustLink(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The real server's use: host VIPs on lo, IPv6 ones without DAD.
func TestIntegrationLoopback(t *testing.T) {
	ns, h := testHandle(t)
	m := Manager{Handle: h, NoDAD: true, Absent: []syscall.Errno{syscall.ENOENT}}
	lo := mustLink(t, h, "lo")
	v4 := netip.MustParsePrefix("203.0.113.10/32")
	v6 := netip.MustParsePrefix("2001:db8::10/128")

	for _, p := range []netip.Prefix{v4, v6, v4, v6} { // twice: EEXIST is fine
		if err := m.Add(lo, p); err != nil {
			t.Fatalf("add %s: %v", p, err)
		}
	}
	have := ipAddrs(t, ns, "lo")
	for _, p := range []netip.Prefix{v4, v6} {
		if _, ok := have[p]; !ok {
			t.Errorf("%s not on lo: %v", p, have)
		}
	}
	if line := have[v6]; !strings.Contains(line, "nodad") {
		t.Errorf("%s lacks nodad: %q", v6, line)
	}
	if line := have[v6]; strings.Contains(line, "tentative") {
		t.Errorf("%s is tentative: %q", v6, line)
	}

	got, err := m.List(lo, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"127.0.0.1/8", "::1/128", v4.String(), v6.String()} {
		if !slices.Contains(got, netip.MustParsePrefix(p)) {
			t.Errorf("List lacks %s: %v", p, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("List = %v, want 4 addresses", got)
	}
	if v4s, err := m.List(lo, netlink.FAMILY_V4); err != nil || len(v4s) != 2 || slices.Contains(v4s, v6) {
		t.Errorf("List(FAMILY_V4) = %v, %v; want the 2 IPv4 addresses", v4s, err)
	}

	for _, p := range []netip.Prefix{v4, v6} {
		if was, err := m.Del(lo, p); err != nil || !was {
			t.Fatalf("delete %s: was %v, err %v; want true, nil", p, was, err)
		}
		if was, err := m.Del(lo, p); err != nil || was {
			t.Fatalf("delete %s again: was %v, err %v; want false, nil", p, was, err)
		}
	}
	have = ipAddrs(t, ns, "lo")
	for _, p := range []netip.Prefix{v4, v6} {
		if _, ok := have[p]; ok {
			t.Errorf("%s still on lo", p)
		}
	}
	if _, ok := have[netip.MustParsePrefix("127.0.0.1/8")]; !ok {
		t.Errorf("127.0.0.1/8 went from lo: %v", have)
	}
}

// The VRRP side's use: a VIP with a subnet prefix on an ordinary link,
// IPv6 with DAD as usual, and a link that goes away.
func TestIntegrationLink(t *testing.T) {
	ns, h := testHandle(t)
	netnstest.Exec(t, "ip", "-n", ns, "link", "add", "ifa0", "type", "veth", "peer", "name", "ifa1")
	netnstest.Exec(t, "ip", "-n", ns, "link", "set", "ifa0", "up")
	m := Manager{Handle: h, Absent: []syscall.Errno{syscall.ENODEV}}
	link := mustLink(t, h, "ifa0")
	v4 := netip.MustParsePrefix("10.0.0.5/24")
	v6 := netip.MustParsePrefix("2001:db8::5/64")

	for _, p := range []netip.Prefix{v4, v6} {
		if err := m.Add(link, p); err != nil {
			t.Fatalf("add %s: %v", p, err)
		}
	}
	have := ipAddrs(t, ns, "ifa0")
	if line, ok := have[v4]; !ok || !strings.Contains(line, "brd 10.0.0.255") {
		t.Errorf("%s not on ifa0 with its broadcast address: %q (%v)", v4, line, have)
	}
	if line, ok := have[v6]; !ok || strings.Contains(line, "nodad") {
		t.Errorf("%s not on ifa0, or marked nodad without NoDAD: %q", v6, line)
	}
	got, err := m.List(link, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []netip.Prefix{v4}) {
		t.Errorf("List(FAMILY_V4) = %v, want [%s]", got, v4)
	}
	if was, err := m.Del(link, v4); err != nil || !was {
		t.Fatalf("delete %s: was %v, err %v; want true, nil", v4, was, err)
	}
	if _, ok := ipAddrs(t, ns, "ifa0")[v4]; ok {
		t.Errorf("%s still on ifa0", v4)
	}

	// The link goes: a delete through its stale handle fails with ENODEV,
	// which this Manager counts as "not there" and one without it does not.
	netnstest.Exec(t, "ip", "-n", ns, "link", "del", "ifa0")
	if was, err := m.Del(link, v6); err != nil || was {
		t.Errorf("delete from a gone link: was %v, err %v; want false, nil", was, err)
	}
	strict := Manager{Handle: h}
	if _, err := strict.Del(link, v4); !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), "ifa0") {
		t.Errorf("delete from a gone link without ENODEV in Absent: %v, want ENODEV naming ifa0", err)
	}
	if err := m.Add(link, v4); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("add to a gone link: %v, want ENODEV", err)
	}
}
