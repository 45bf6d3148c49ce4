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
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
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

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNS creates a network namespace with lo up, deleted at cleanup.
func newNS(t *testing.T, name string) string {
	t.Helper()
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// uid returns a short random suffix that keeps names unique across tests
// and within interface-name limits.
func uid() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// inNS runs f on a thread switched into the namespace; sockets f creates
// stay in that namespace afterwards.
func inNS(t *testing.T, name string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	f()
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
	br := newNS(t, "lbdbr-"+id)
	run(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", br, "link", "set", "br0", "up")
	attach := func(ns, ip string, n int) {
		host := fmt.Sprintf("v%d-%s", n, id)
		run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
		run(t, "ip", "link", "set", host, "netns", br)
		run(t, "ip", "-n", br, "link", "set", host, "master", "br0", "up")
		run(t, "ip", "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
		run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	}
	l.client = newNS(t, "lbdc-"+id)
	attach(l.client, "10.77.0.1", 0)
	l.director = newNS(t, "lbdd-"+id)
	attach(l.director, "10.77.0.2", 1)
	run(t, "ip", "-n", l.director, "addr", "add", l.vip+"/32", "dev", "eth0")
	for i, ip := range l.realIPs {
		ns := newNS(t, fmt.Sprintf("lbdr%d-%s", i+1, id))
		l.reals = append(l.reals, ns)
		attach(ns, ip, i+2)
		for _, k := range []string{"all", "eth0"} {
			run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf."+k+".arp_ignore=1")
			run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf."+k+".arp_announce=2")
		}
		run(t, "ip", "-n", ns, "addr", "add", l.vip+"/32", "dev", "lo")
	}
	return l
}

// serve makes each real server answer every TCP connection on VIP:port
// with its namespace's name, until the test ends.
func (l *lab) serve(t *testing.T, port int) {
	t.Helper()
	for _, ns := range l.reals {
		var ln net.Listener
		inNS(t, ns, func() {
			var err error
			ln, err = net.Listen("tcp", fmt.Sprintf("%s:%d", l.vip, port))
			if err != nil {
				t.Fatal(err)
			}
		})
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%s\n", ns)
				c.Close()
			}
		}()
	}
}

// ask connects from the client to VIP:port and returns the first line the
// server sent.
func (l *lab) ask(t *testing.T, port int) (string, error) {
	t.Helper()
	var c net.Conn
	var err error
	inNS(t, l.client, func() {
		c, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", l.vip, port), 5*time.Second)
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
	return run(t, append([]string{"ip", "netns", "exec", ns, "ipvsadm"}, args...)...)
}
