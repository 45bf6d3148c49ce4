//go:build linux

package kvs

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/cluster/certs"
	"github.com/lbd-project/lbd/pkg/slots"
)

// loopPeers counts node i's forwarding connections on its event loops and
// the peer connections its loops serve.
func (tc *testCluster) loopPeers(i int) (out, in int) {
	tc.mu.Lock()
	tier := tc.tiers[i]
	tc.mu.Unlock()
	for _, l := range tier.pool.loops {
		l.mu.Lock()
		out += len(l.pconns)
		l.mu.Unlock()
	}
	n := tier.cluster
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, srv := range n.psrvs {
		srv.mu.Lock()
		in += len(srv.evconns)
		srv.mu.Unlock()
	}
	return out, in
}

// waitLoopPeers polls until ok(node i's counts), for up to 20s.
func (tc *testCluster) waitLoopPeers(i int, what string, ok func(out, in int) bool) {
	tc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, in := tc.loopPeers(i)
		if ok(out, in) {
			return
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("%s: after 20s, node %s has %d forwarding and %d served peer connections on its loops", what, tc.names[i], out, in)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pipelineBehindForwards sends, through every node, a forwarded get with
// a "quit" behind it, and then one with a multi-get whose replies overflow
// a loop's output (it reruns on a goroutine) behind it: the loop that
// must read the forwarded reply is the client's own (connection i of a
// set is on loop i), so it must not wait for that reply (it did, until the
// request timed out).
func pipelineBehindForwards(t *testing.T, tc *testCluster) {
	t.Helper()
	m := tc.slotMap()
	big := strings.Repeat("q", 3*evMaxIn)
	for i, name := range tc.names {
		remote := keyWhere(m, "pq:"+name+":", func(sl slots.Slot) bool { return sl.Primary != name })
		local := keyWhere(m, "pl:"+name+":", func(sl slots.Slot) bool { return sl.Primary == name })
		if !setVia(t, tc.addrs[i], remote, "r") || !setVia(t, tc.addrs[i], local, big) {
			t.Fatalf("set %s and %s through %s failed", remote, local, name)
		}
		remoteReply := fmt.Sprintf("VALUE %s 0 1\r\nr\r\nEND\r\n", remote)
		bigReply := strings.Repeat(fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\n", local, len(big), big), 8) + "END\r\n"
		for _, p := range []struct{ req, want string }{
			{"get " + remote + "\r\nquit\r\n", remoteReply},
			{"get " + remote + "\r\nget" + strings.Repeat(" "+local, 8) + "\r\nquit\r\n", remoteReply + bigReply},
		} {
			c, err := net.DialTimeout("tcp", tc.addrs[i], time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.WriteString(c, p.req); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c) // the node closes it after quit
			c.Close()
			if err != nil || string(got) != p.want {
				t.Fatalf("through %s, %.60q...: got %.200q (%d bytes), %v; want %d bytes", name, p.req, got, len(got), err, len(p.want))
			}
		}
	}
}

// overTCPAndTLS runs test on three nodes of a tenant without backups,
// forwarding over plain TCP, then over the daemon's mutual TLS.
func overTCPAndTLS(t *testing.T, test func(*testing.T, *testCluster)) {
	t.Run("tcp", func(t *testing.T) { test(t, startCluster(t, 3, 0, slots.Sync)) })
	t.Run("tls", func(t *testing.T) { test(t, startClusterTLS(t, 3, 0, slots.Sync)) })
}

// TestClusterPeersOnLoops: with no backups, the nodes forward over
// connections their event loops read, and serve the other nodes'
// connections on their loops; reads see writes through any node, a
// request too big for a loop's buffer still goes through (its connection
// moves to a goroutine), and a partition hangs up the loops' peer
// connections.
// Over plain TCP and over the daemon's mutual TLS.
func TestClusterPeersOnLoops(t *testing.T) {
	overTCPAndTLS(t, testClusterPeersOnLoops)
}

func testClusterPeersOnLoops(t *testing.T, tc *testCluster) {
	for i := range 300 {
		if !setVia(t, tc.addrs[i%3], fmt.Sprintf("l:%d", i), fmt.Sprintf("v%d", i)) {
			t.Fatalf("set l:%d through %s failed", i, tc.names[i%3])
		}
	}
	for i := range 3 {
		tc.waitLoopPeers(i, "forwarding", func(out, in int) bool { return out > 0 && in > 0 })
	}
	for i := range 300 {
		if v, found, ok := getVia(t, tc.addrs[(i+1)%3], fmt.Sprintf("l:%d", i)); !ok || !found || v != fmt.Sprintf("v%d", i) {
			t.Fatalf("get l:%d through %s: %q found %v ok %v", i, tc.names[(i+1)%3], v, found, ok)
		}
	}
	// A multi-get of keys on every node, in order.
	var keys, want []string
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("l:%d", i))
		want = append(want, fmt.Sprintf("VALUE l:%d 0 %d\r\nv%d\r\n", i, len(fmt.Sprint(i))+1, i))
	}
	for i := range 3 {
		c, err := net.DialTimeout("tcp", tc.addrs[i], time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got, err := (&textConn{c: c, br: bufio.NewReader(c)}).do("get " + strings.Join(keys, " ") + "\r\n")
		c.Close()
		if err != nil || got != strings.Join(want, "")+"END\r\n" {
			t.Fatalf("multi-get through %s: %q, %v", tc.names[i], got, err)
		}
	}
	// Values bigger than a loop's input buffer, both ways.
	big := strings.Repeat("b", 3*evMaxIn)
	for i := range 6 {
		key := fmt.Sprintf("big:%d", i)
		if !setVia(t, tc.addrs[i%3], key, big) {
			t.Fatalf("set %s through %s failed", key, tc.names[i%3])
		}
		if v, found, ok := getVia(t, tc.addrs[(i+1)%3], key); !ok || !found || v != big {
			t.Fatalf("get %s through %s: %d bytes, found %v ok %v", key, tc.names[(i+1)%3], len(v), found, ok)
		}
	}
	pipelineBehindForwards(t, tc)
	tc.partition(0, true)
	tc.waitLoopPeers(0, "partitioned", func(out, in int) bool { return out == 0 && in == 0 })
	tc.partition(0, false)
	for i := range 30 {
		if v, found, ok := getEventually(t, tc.addrs[0], fmt.Sprintf("l:%d", i)); !ok || !found || v != fmt.Sprintf("v%d", i) {
			t.Fatalf("after the partition healed, get l:%d through %s: %q found %v ok %v", i, tc.names[0], v, found, ok)
		}
	}
}

// loopPeerConn returns a loop's forwarding connection to a listener whose
// accepted connection is sent on the channel.
// Over TLS if tlsOn, as the daemon's nodes.
func loopPeerConn(t *testing.T, timeout time.Duration, tlsOn bool) (*evPool, *peerConn, <-chan net.Conn) {
	t.Helper()
	var cfg *tls.Config
	if tlsOn {
		ca, err := certs.NewCA("test cluster", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cfg = testTLS(t, ca, "st9")
	}
	p, err := newEvPool(Options{EventLoops: 1, NoCPUAffinity: true, NoBatchScheduling: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if tc, ok := c.(*tls.Conn); ok && err == nil {
			tc.SetDeadline(time.Now().Add(30 * time.Second))
			err = tc.Handshake()
			tc.SetDeadline(time.Time{})
		}
		if err == nil {
			t.Cleanup(func() { c.Close() })
			accepted <- c
		}
		close(accepted)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ccfg := cfg.Clone()
		ccfg.ServerName = "127.0.0.1"
		tc := tls.Client(loopConn(c), ccfg)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c = tc
	}
	pc := p.peerConn(c, 0, "st9", timeout)
	if pc == nil {
		t.Fatal("the connection was not put on the loop")
	}
	t.Cleanup(p.close)
	return p, pc, accepted
}

// await waits for f, for up to 30s.
func await(t *testing.T, f *future) string {
	t.Helper()
	select {
	case <-f.doneCh():
		return string(f.data)
	case <-time.After(30 * time.Second):
		t.Fatal("no reply after 30s")
		return ""
	}
}

// TestLoopPeerConnTimeout: a node that does not answer fails the awaited
// replies once they are late, and the loop closes the connection.
// Over plain TCP and TLS.
func TestLoopPeerConnTimeout(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[tlsOn], func(t *testing.T) { testLoopPeerConnTimeout(t, tlsOn) })
	}
}

func testLoopPeerConnTimeout(t *testing.T, tlsOn bool) {
	p, pc, accepted := loopPeerConn(t, 100*time.Millisecond, tlsOn)
	<-accepted
	f := pc.send([]byte("get k\r\n"))
	pc.flush()
	if got := await(t, f); got != "SERVER_ERROR lbd: node st9: timed out\r\n" {
		t.Fatalf("reply %q", got)
	}
	if got := await(t, pc.send([]byte("get k\r\n"))); !strings.HasPrefix(got, "SERVER_ERROR lbd: unavailable: node st9: connection lost") {
		t.Fatalf("reply after the failure %q", got)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		l := p.loops[0]
		l.mu.Lock()
		n := len(l.pconns)
		l.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the loop still has the connection after 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLoopPeerConnBackpressure: requests more than the sockets hold wait
// on the loop for room, and every reply completes its request, in order,
// also when they arrive in pieces.
// Over plain TCP and TLS.
func TestLoopPeerConnBackpressure(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[tlsOn], func(t *testing.T) { testLoopPeerConnBackpressure(t, tlsOn) })
	}
}

func testLoopPeerConnBackpressure(t *testing.T, tlsOn bool) {
	_, pc, accepted := loopPeerConn(t, 30*time.Second, tlsOn)
	peer := <-accepted
	const n = 8000
	payload := strings.Repeat("x", 4000)
	var fs []*future
	for i := range n {
		fs = append(fs, pc.send([]byte(fmt.Sprintf("%d %s\r\n", i, payload))))
	}
	pc.flush()
	pc.mu.Lock()
	armed := pc.outArmed
	if pc.fc != nil {
		armed = pc.fc.pending() > 0
	}
	pc.mu.Unlock()
	if !armed {
		t.Fatal("32 MB taken by the socket at once: nothing waits for room")
	}
	// The peer answers each request with its number, a byte at a time
	// for every 100th.
	go func() {
		br := bufio.NewReader(peer)
		bw := bufio.NewWriter(peer)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "mn\r\n" {
				if br.Buffered() == 0 {
					bw.Flush()
				}
				continue
			}
			i, _, _ := strings.Cut(line, " ")
			reply := "VA 2\r\n" + fmt.Sprintf("%02d", len(i)) + "\r\nHD " + i + "\r\nMN\r\n"
			if len(i) > 1 && strings.HasSuffix(i, "00") {
				bw.Flush()
				for j := range len(reply) {
					peer.Write([]byte{reply[j]})
				}
				continue
			}
			bw.WriteString(reply)
			if br.Buffered() == 0 {
				bw.Flush()
			}
		}
	}()
	for i, f := range fs {
		want := fmt.Sprintf("VA 2\r\n%02d\r\nHD %d\r\n", len(fmt.Sprint(i)), i)
		if got := await(t, f); got != want {
			t.Fatalf("reply %d: %q, want %q", i, got, want)
		}
	}
}

// TestClusterPeersLeaveLoopsForBackups: once the tenant's slots get
// backups, the loops hand the peer connections they serve to goroutines
// (a write there waits for the backups), and writes and reads through any
// node go on.
// Over plain TCP and TLS.
func TestClusterPeersLeaveLoopsForBackups(t *testing.T) {
	overTCPAndTLS(t, testClusterPeersLeaveLoopsForBackups)
}

func testClusterPeersLeaveLoopsForBackups(t *testing.T, tc *testCluster) {
	for i := range 90 {
		if !setVia(t, tc.addrs[i%3], fmt.Sprintf("b:%d", i), "before") {
			t.Fatalf("set b:%d through %s failed", i, tc.names[i%3])
		}
	}
	for i := range 3 {
		tc.waitLoopPeers(i, "forwarding", func(out, in int) bool { return in > 0 })
	}
	if _, err := PlaceTenant(context.Background(), tc.store, "t", tc.names, 1, slots.Sync); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; ; round++ {
		for i := range 90 {
			key, val := fmt.Sprintf("b:%d", i), fmt.Sprintf("after%d", round)
			if !setVia(t, tc.addrs[(i+round)%3], key, val) {
				t.Fatalf("set %s through %s with backups failed", key, tc.names[(i+round)%3])
			}
			if v, found, ok := getVia(t, tc.addrs[(i+round+1)%3], key); !ok || !found || v != val {
				t.Fatalf("get %s through %s: %q found %v ok %v", key, tc.names[(i+round+1)%3], v, found, ok)
			}
		}
		served := 0
		for i := range 3 {
			_, in := tc.loopPeers(i)
			served += in
		}
		if served == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s with backups, the loops still serve %d peer connections", served)
		}
	}
}
