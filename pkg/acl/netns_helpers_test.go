//go:build integration || vm

package acl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/netnstest"
)

// These helpers build throwaway network namespaces (named
// lbdacl-<pid>-<n>, deleted in t.Cleanup) and move real packets between
// them. Nothing here touches the namespace the test process runs in.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, ipsets and iptables rules")
	}
	for _, bin := range []string{"ip", "iptables", "ip6tables", "iptables-restore", "ipset"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s: %v", bin, err)
		}
	}
}

// lan is a server namespace with a bridge, and client namespaces (one per
// source address) plugged into it.
type lan struct {
	t       *testing.T
	srv     string
	clients int
}

// newLAN creates the server namespace with srv4/24 and srv6/64 on br0.
func newLAN(t *testing.T, srv4, srv6 string) *lan {
	l := &lan{t: t, srv: netnstest.New(t, "lbdacl")}
	netnstest.Exec(t, "ip", "-n", l.srv, "link", "add", "br0", "type", "bridge")
	netnstest.Exec(t, "ip", "-n", l.srv, "link", "set", "br0", "up")
	netnstest.Exec(t, "ip", "-n", l.srv, "addr", "add", srv4+"/24", "dev", "br0")
	if srv6 != "" {
		netnstest.Exec(t, "ip", "-n", l.srv, "addr", "add", srv6+"/64", "dev", "br0", "nodad")
	}
	return l
}

// client creates a namespace holding the given addresses on eth0, wired
// to the bridge.
func (l *lan) client(addrs ...string) string {
	t := l.t
	name := netnstest.New(t, "lbdacl")
	l.clients++
	peer := fmt.Sprintf("v%d", l.clients)
	netnstest.Exec(t, "ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", l.srv)
	netnstest.Exec(t, "ip", "-n", l.srv, "link", "set", peer, "master", "br0", "up")
	for _, a := range addrs {
		args := []string{"ip", "-n", name, "addr", "add", a, "dev", "eth0"}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		netnstest.Exec(t, args...)
	}
	netnstest.Exec(t, "ip", "-n", name, "link", "set", "eth0", "up")
	return name
}

// serveTCP answers every connection to addr in namespace ns with "ok".
func serveTCP(t *testing.T, ns, addr string) {
	t.Helper()
	var ln net.Listener
	if err := netnstest.Do(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	testutil.Serve(t, ln, func(c net.Conn) {
		c.Write([]byte("ok\n"))
		c.Close()
	})
}

// serveUDP answers every datagram to addr in namespace ns with "ok".
func serveUDP(t *testing.T, ns, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := netnstest.Do(ns, func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte("ok\n"), from)
		}
	}()
}

// Probe budgets. A connection that is let through on a veth completes in
// well under a millisecond; blockedWait is how long a probe that should
// get nothing waits before concluding it got nothing. They bound the
// test's running time; no assertion is about speed.
const (
	allowedWait = 10 * time.Second
	blockedWait = 400 * time.Millisecond
)

// reach dials network/addr from namespace ns and reports whether it got
// the server's "ok". wantOK selects how long to wait.
func reach(ns, network, addr string, wantOK bool) (bool, error) {
	wait := blockedWait
	if wantOK {
		wait = allowedWait
	}
	var got bool
	err := netnstest.Do(ns, func() error {
		c, err := net.DialTimeout(network, addr, wait)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(wait))
		if network == "udp" {
			if _, err := c.Write([]byte("hi")); err != nil {
				return err
			}
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		got = line == "ok\n"
		return nil
	})
	return got, err
}

// probe is one expectation about reachability.
type probe struct {
	from, network, addr string
	want                bool
	// silent, for blocked probes: nothing came back (no RST, no ICMP),
	// the DROP signature. Otherwise any failure counts as blocked.
	silent bool
}

// check runs the probes in parallel and reports every mismatch.
func check(t *testing.T, label string, probes []probe) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]string, len(probes))
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := reach(p.from, p.network, p.addr, p.want)
			switch {
			case p.want && !ok:
				errs[i] = fmt.Sprintf("%s -> %s/%s: want connected, got %v", p.from, p.network, p.addr, err)
			case !p.want && ok:
				errs[i] = fmt.Sprintf("%s -> %s/%s: want blocked, got through", p.from, p.network, p.addr)
			case !p.want && p.silent && !isTimeout(err):
				errs[i] = fmt.Sprintf("%s -> %s/%s: want silence, got %v", p.from, p.network, p.addr, err)
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Errorf("%s: %s", label, e)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// testLogger sends the Manager's log to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newTestManager(t *testing.T, ns string, opts Options) *Manager {
	t.Helper()
	opts.NetNS = netnstest.Path(ns)
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func bg() context.Context { return context.Background() }

func hostPort(ip, port string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + port
	}
	return ip + ":" + port
}

func tcp(from, ip, port string, want bool) probe {
	return probe{from: from, network: "tcp", addr: hostPort(ip, port), want: want, silent: !want}
}
