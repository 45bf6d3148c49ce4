//go:build integration

// These tests need root and change network namespaces; they run only in
// namespaces they create (lbdrs-<pid>-<n>, deleted in t.Cleanup) and never
// touch the host's own namespace.
package realserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/netnstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testNetns creates a network namespace with lo up and returns its name.
func testNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	return netnstest.New(t, "lbdrs")
}

func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nsSysctl reads a sysctl inside a namespace with ip netns exec, not with
// the code under test.
func nsSysctl(t *testing.T, ns, key string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/sys/"+key).CombinedOutput()
	if err != nil {
		t.Fatalf("read %s in %s: %v: %s", key, ns, err, out)
	}
	return strings.TrimSpace(string(out))
}

func nsSysctlSet(t *testing.T, ns, key, value string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "sh", "-c", "echo "+value+" > /proc/sys/"+key)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("set %s in %s: %v: %s", key, ns, err, out)
	}
}

// loAddrs lists lo's addresses in a namespace.
func loAddrs(t *testing.T, ns string) []netip.Prefix {
	t.Helper()
	out := ipCmd(t, "-n", ns, "-o", "addr", "show", "dev", "lo")
	var ps []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					ps = append(ps, p)
				}
			}
		}
	}
	return ps
}

func TestIntegrationApplyAdoptRemove(t *testing.T) {
	ctx := context.Background()
	ns := testNetns(t)
	ipCmd(t, "-n", ns, "link", "add", "rs0", "type", "veth", "peer", "name", "rs0p")
	// The operator's own address on lo, and a non-default previous value.
	ipCmd(t, "-n", ns, "addr", "add", "203.0.113.20/32", "dev", "lo")
	nsSysctlSet(t, ns, "net/ipv4/conf/all/arp_announce", "1")
	hostBefore, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/arp_ignore")
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	r, err := New(Options{StateDir: dir, Netns: netnstest.Path(ns)})
	if err != nil {
		t.Fatal(err)
	}
	vips := []netip.Addr{
		netip.MustParseAddr("203.0.113.10"),
		netip.MustParseAddr("203.0.113.20"),
		netip.MustParseAddr("2001:db8::10"),
	}
	if err := r.Apply(ctx, vips, []string{"rs0"}); err != nil {
		t.Fatal(err)
	}
	have := loAddrs(t, ns)
	for _, p := range []string{"203.0.113.10/32", "203.0.113.20/32", "2001:db8::10/128"} {
		if !slices.Contains(have, netip.MustParsePrefix(p)) {
			t.Errorf("%s not on lo: %v", p, have)
		}
	}
	for _, ifc := range []string{"all", "lo", "rs0"} {
		if v := nsSysctl(t, ns, "net/ipv4/conf/"+ifc+"/arp_ignore"); v != "1" {
			t.Errorf("%s arp_ignore = %s", ifc, v)
		}
		if v := nsSysctl(t, ns, "net/ipv4/conf/"+ifc+"/arp_announce"); v != "2" {
			t.Errorf("%s arp_announce = %s", ifc, v)
		}
	}
	if v := nsSysctl(t, ns, "net/ipv4/conf/rs0p/arp_ignore"); v != "0" {
		t.Errorf("unlisted rs0p changed: arp_ignore = %s", v)
	}
	hostAfter, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/arp_ignore")
	if err != nil {
		t.Fatal(err)
	}
	if string(hostAfter) != string(hostBefore) {
		t.Fatalf("host arp_ignore changed from %q to %q", hostBefore, hostAfter)
	}
	r.Close()

	// A new instance adopts what the first one did.
	r2, err := New(Options{StateDir: dir, Netns: netnstest.Path(ns)})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	addrs, keys := r2.Owned()
	if len(addrs) != 2 || len(keys) != 6 {
		t.Fatalf("adopted %v and %v; want the 2 addresses it added and 6 sysctls", addrs, keys)
	}
	if err := r2.Apply(ctx, vips, []string{"rs0"}); err != nil {
		t.Fatal(err)
	}
	if err := r2.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	have = loAddrs(t, ns)
	if !slices.Contains(have, netip.MustParsePrefix("203.0.113.20/32")) {
		t.Errorf("operator's address removed: %v", have)
	}
	for _, p := range []string{"203.0.113.10/32", "2001:db8::10/128"} {
		if slices.Contains(have, netip.MustParsePrefix(p)) {
			t.Errorf("%s still on lo", p)
		}
	}
	want := map[string]string{
		"all/arp_ignore": "0", "all/arp_announce": "1",
		"lo/arp_ignore": "0", "lo/arp_announce": "0",
		"rs0/arp_ignore": "0", "rs0/arp_announce": "0",
	}
	for k, v := range want {
		if got := nsSysctl(t, ns, "net/ipv4/conf/"+k); got != v {
			t.Errorf("after Remove %s = %s, want %s", k, got, v)
		}
	}
	if _, err := os.Stat(dir + "/" + stateFile); !os.IsNotExist(err) {
		t.Errorf("state file still there: %v", err)
	}
}

// TestIntegrationDR plays a DR packet path without IPVS: a client sends to
// the VIP through the real server's MAC, as a director would, and the real
// server answers from the VIP, while it never answers ARP (or, for IPv6,
// neighbour solicitations) for the VIP.
func TestIntegrationDR(t *testing.T) {
	tests := []struct {
		name           string
		client, server string // addresses on the link, with prefix length
		vip            string
		retransSysctl  string // the client's neighbour retransmit timer
		control        bool   // also show that without lbd the VIP is claimed
	}{
		{"ipv4", "192.0.2.1/24", "192.0.2.2/24", "192.0.2.100", "net/ipv4/neigh/c0/retrans_time_ms", true},
		// Linux answers neighbour solicitations only for addresses on the
		// receiving interface, so an IPv6 VIP on lo needs no sysctl.
		{"ipv6", "2001:db8:1::1/64", "2001:db8:1::2/64", "2001:db8:1::100", "net/ipv6/neigh/c0/retrans_time_ms", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testDR(t, tt.client, tt.server, tt.vip, tt.retransSysctl, tt.control)
		})
	}
}

func testDR(t *testing.T, clientAddr, serverAddr, vip, retransSysctl string, control bool) {
	ctx := context.Background()
	client, rs := testNetns(t), testNetns(t)
	ipCmd(t, "-n", client, "link", "add", "c0", "type", "veth", "peer", "name", "r0", "netns", rs)
	ipCmd(t, "-n", client, "addr", "add", clientAddr, "dev", "c0", "nodad")
	ipCmd(t, "-n", client, "link", "set", "c0", "up")
	ipCmd(t, "-n", rs, "addr", "add", serverAddr, "dev", "r0", "nodad")
	ipCmd(t, "-n", rs, "link", "set", "r0", "up")
	// Fail neighbour resolution quickly in the client.
	nsSysctlSet(t, client, retransSysctl, "100")

	vipAddr := netip.MustParseAddr(vip)
	vipPort := netip.AddrPortFrom(vipAddr, 7000).String()
	hostPrefix := netip.PrefixFrom(vipAddr, vipAddr.BitLen()).String()

	// The real server's service: tells each client the address it was
	// reached at.
	var ln net.Listener
	if err := netnstest.Do(rs, func() (err error) { ln, err = net.Listen("tcp", ":7000"); return err }); err != nil {
		t.Fatal(err)
	}
	testutil.Serve(t, ln, func(c net.Conn) {
		fmt.Fprintf(c, "%s\n", c.LocalAddr())
		c.Close()
	})
	dial := func() (string, error) {
		var conn net.Conn
		err := netnstest.Do(client, func() (err error) {
			conn, err = net.DialTimeout("tcp", vipPort, 10*time.Second)
			return err
		})
		if err != nil {
			return "", err
		}
		defer conn.Close()
		if got := conn.RemoteAddr().String(); got != vipPort {
			return "", fmt.Errorf("connected to %s, want %s", got, vipPort)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		return bufio.NewReader(conn).ReadString('\n')
	}

	if control {
		// Without the sysctls a VIP on lo is answered by ARP, which is
		// what steals a VIP from the director.
		ipCmd(t, "-n", rs, "addr", "add", hostPrefix, "dev", "lo")
		if _, err := dial(); err != nil {
			t.Fatalf("control: VIP on lo without arp_ignore should be reachable by ARP: %v", err)
		}
		ipCmd(t, "-n", rs, "addr", "del", hostPrefix, "dev", "lo")
		ipCmd(t, "-n", client, "neigh", "flush", "dev", "c0")
	}

	r, err := New(Options{StateDir: t.TempDir(), Netns: netnstest.Path(rs)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Apply(ctx, []netip.Addr{vipAddr}, []string{"r0"}); err != nil {
		t.Fatal(err)
	}

	// The real server does not answer ARP/NDP for the VIP.
	if _, err := dial(); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Fatalf("dial VIP by neighbour resolution: %v; want EHOSTUNREACH (no reply)", err)
	}

	// As a director does in DR: the packet goes to the real server's MAC.
	h, err := netns.GetFromPath(netnstest.Path(rs))
	if err != nil {
		t.Fatal(err)
	}
	nh, err := netlink.NewHandleAt(h)
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	l, err := nh.LinkByName("r0")
	nh.Close()
	if err != nil {
		t.Fatal(err)
	}
	mac := l.Attrs().HardwareAddr
	ipCmd(t, "-n", client, "neigh", "replace", vip, "lladdr", mac.String(), "dev", "c0", "nud", "permanent")
	got, err := dial()
	if err != nil {
		t.Fatalf("dial VIP via the real server's MAC: %v", err)
	}
	if got = strings.TrimSpace(got); got != vipPort {
		t.Fatalf("real server answered from %s, want %s", got, vipPort)
	}

	if err := r.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(loAddrs(t, rs), netip.MustParsePrefix(hostPrefix)) {
		t.Fatal("VIP left on lo after Remove")
	}
}
