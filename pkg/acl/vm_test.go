//go:build vm

package acl

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/internal/testutil/netnstest"
)

// TestVMACLInFrontOfIPVS shows the allow-list is enforced in filter INPUT
// before IPVS forwards: a director namespace holds the VIP and a real IPVS
// DR service to a real-server namespace (VIP on lo, arp_ignore), and the
// outsider's packets never reach IPVS (its connection counter does not
// move) while the allowed client is served by the real server. It needs a
// kernel with IPVS, so it runs in the VM (scripts/vmtest.sh).
func TestVMACLInFrontOfIPVS(t *testing.T) {
	requireRoot(t)
	exec.Command("modprobe", "ip_vs").Run()
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Skip("needs IPVS in the kernel; run it with scripts/vmtest.sh")
	}
	if _, err := exec.LookPath("ipvsadm"); err != nil {
		t.Skip("needs ipvsadm")
	}
	const (
		dir4  = "10.78.0.1"
		vip   = "10.78.0.100"
		real4 = "10.78.0.50"
		in4   = "10.78.0.10"
		out4  = "10.78.0.40"
	)
	l := newLAN(t, dir4, "")
	director := l.srv
	netnstest.Exec(t, "ip", "-n", director, "addr", "add", vip+"/32", "dev", "br0")
	realNS := l.client(real4 + "/24")
	netnstest.Exec(t, "ip", "-n", realNS, "addr", "add", vip+"/32", "dev", "lo")
	for _, kv := range []string{"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
		"net.ipv4.conf.eth0.arp_ignore=1", "net.ipv4.conf.eth0.arp_announce=2"} {
		netnstest.Exec(t, "ip", "netns", "exec", realNS, "sysctl", "-q", "-w", kv)
	}
	inside := l.client(in4 + "/24")
	outsider := l.client(out4 + "/24")

	// Fence first, then announce the service: the order lbd uses.
	m := newTestManager(t, director, Options{})
	if err := m.Apply(bg(), []Tenant{{Name: "kvs", VIP: netip.MustParseAddr(vip), Port: 80, Allow: pfx(in4)}}); err != nil {
		t.Fatal(err)
	}
	serveTCP(t, realNS, vip+":80") // only the real server listens on the VIP
	ipvsadm := func(args ...string) string {
		return netnstest.Exec(t, append([]string{"ip", "netns", "exec", director, "ipvsadm"}, args...)...)
	}
	ipvsadm("-A", "-t", vip+":80", "-s", "rr")
	ipvsadm("-a", "-t", vip+":80", "-r", real4+":80", "-g", "-w", "1")
	t.Cleanup(func() { exec.Command("ip", "netns", "exec", director, "ipvsadm", "-C").Run() })

	check(t, "through IPVS", []probe{tcp(inside, vip, "80", true), tcp(outsider, vip, "80", false)})
	// IPVS's connection table names every client it forwarded for. (Its
	// --stats counters are refreshed by a timer, so they are not used.)
	if got := ipvsClients(t, ipvsadm("-L", "-n", "-c")); !got[in4] || got[out4] {
		t.Errorf("IPVS forwarded for %v, want %s and not %s", got, in4, out4)
	}
	st, err := m.State(bg())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Packets == 0 {
		t.Errorf("no drops counted by the ACL: %+v", st)
	}

	// An update in front of IPVS decides the next connection too.
	if err := m.AddAllow(bg(), "kvs", pfx(out4)); err != nil {
		t.Fatal(err)
	}
	check(t, "after allowing the outsider", []probe{tcp(outsider, vip, "80", true)})
	if got := ipvsClients(t, ipvsadm("-L", "-n", "-c")); !got[out4] {
		t.Errorf("IPVS forwarded for %v, want %s too", got, out4)
	}
}

// ipvsClients returns the client addresses in "ipvsadm -L -n -c" output
// (lines "TCP 01:59 FIN_WAIT 10.78.0.10:41234 10.78.0.100:80 10.78.0.50:80").
func ipvsClients(t *testing.T, out string) map[string]bool {
	got := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || (f[0] != "TCP" && f[0] != "UDP") {
			continue
		}
		ap, err := netip.ParseAddrPort(f[3])
		if err != nil {
			t.Fatalf("ipvsadm connection %q: %v", line, err)
		}
		got[ap.Addr().String()] = true
	}
	return got
}
