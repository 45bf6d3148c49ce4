//go:build vm

package ipvs_test

// Helpers for the tests that need a kernel with IPVS (build tag vm; run
// them with `make vmtest`, which boots one in a VM). Everything lives in
// network namespaces named after the test, removed when it ends.

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/netnstest"
)

// needIPVS skips unless running as root on a kernel with IPVS.
func needIPVS(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root (run with make vmtest)")
	}
	exec.Command("modprobe", "-a", "ip_vs", "veth", "bridge").Run()
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Skip("kernel has no IPVS (run with make vmtest)")
	}
}

// uid returns a short random suffix that keeps veth names unique across
// tests and within interface-name limits.
func uid() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// lab is a client, a director and two real servers on one bridge (which
// lives in a namespace of its own), wired for direct routing: the VIP is on
// the director's interface and on the real servers' lo, where ARP for it is
// ignored.
type lab struct {
	client, director string
	reals            []string
	realIPs          []string
	vip              string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	id := uid()
	l := &lab{vip: "10.77.0.100", realIPs: []string{"10.77.0.11", "10.77.0.12"}}
	br := netnstest.New(t, "lbdbr")
	netnstest.Exec(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge")
	netnstest.Exec(t, "ip", "-n", br, "link", "set", "br0", "up")
	attach := func(ns, ip string, n int) {
		host := fmt.Sprintf("v%d-%s", n, id)
		netnstest.Exec(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
		netnstest.Exec(t, "ip", "link", "set", host, "netns", br)
		netnstest.Exec(t, "ip", "-n", br, "link", "set", host, "master", "br0", "up")
		netnstest.Exec(t, "ip", "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
		netnstest.Exec(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	}
	l.client = netnstest.New(t, "lbdc")
	attach(l.client, "10.77.0.1", 0)
	l.director = netnstest.New(t, "lbdd")
	attach(l.director, "10.77.0.2", 1)
	netnstest.Exec(t, "ip", "-n", l.director, "addr", "add", l.vip+"/32", "dev", "eth0")
	for i, ip := range l.realIPs {
		ns := netnstest.New(t, fmt.Sprintf("lbdr%d", i+1))
		l.reals = append(l.reals, ns)
		attach(ns, ip, i+2)
		for _, k := range []string{"all", "eth0"} {
			netnstest.Exec(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf."+k+".arp_ignore=1")
			netnstest.Exec(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf."+k+".arp_announce=2")
		}
		netnstest.Exec(t, "ip", "-n", ns, "addr", "add", l.vip+"/32", "dev", "lo")
	}
	return l
}

// serve makes each real server answer every TCP connection on VIP:port
// with its namespace's name, until the test ends.
func (l *lab) serve(t *testing.T, port int) {
	t.Helper()
	for _, ns := range l.reals {
		var ln net.Listener
		if err := netnstest.Do(ns, func() (err error) {
			ln, err = net.Listen("tcp", fmt.Sprintf("%s:%d", l.vip, port))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		testutil.Serve(t, ln, func(c net.Conn) {
			fmt.Fprintf(c, "%s\n", ns)
			c.Close()
		})
	}
}

// ask connects from the client to VIP:port and returns the first line the
// server sent.
func (l *lab) ask(t *testing.T, port int) (string, error) {
	t.Helper()
	var c net.Conn
	err := netnstest.Do(l.client, func() (err error) {
		c, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", l.vip, port), 5*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// ipvsadm runs ipvsadm in a namespace.
func ipvsadm(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return netnstest.Exec(t, append([]string{"ip", "netns", "exec", ns, "ipvsadm"}, args...)...)
}
