package kvs

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/cluster/certs"
	"github.com/lbd-project/lbd/pkg/healthcheck"
	"github.com/lbd-project/lbd/pkg/slots"
)

// probeServer is a TLS memcached stand-in that answers "version" and
// counts the connections it accepted and the versions it answered.
type probeServer struct {
	ln       net.Listener
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
	versions int
}

func (s *probeServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepted++
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil || line != "version\r\n" {
					return
				}
				s.mu.Lock()
				s.versions++
				s.mu.Unlock()
				if _, err := c.Write([]byte("VERSION 1.6.21\r\n")); err != nil {
					return
				}
			}
		}()
	}
}

// counts returns the connections accepted and the versions answered.
func (s *probeServer) counts() (accepted, versions int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.versions
}

// closeConns closes the connections accepted so far (a node restarted).
func (s *probeServer) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// testTLS returns a mutual TLS config of the cluster CA ca for name.
func testTLS(t *testing.T, ca certs.PEM, name string) *tls.Config {
	t.Helper()
	p, err := certs.Issue(ca, name, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cf, kf, caf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	for f, b := range map[string][]byte{cf: p.Cert, kf: p.Key, caf: ca.Cert} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := certs.NewLoader(cf, kf, caf)
	if err != nil {
		t.Fatal(err)
	}
	return l.Config()
}

// TestProbeDialerKeepsConnection: the storage monitor's memcached checks of
// a node over the cluster's TLS use one connection for many probes; a
// connection the node closed (a restart) is replaced with no failed
// probe; a node that is gone fails its checks and goes down.
func TestProbeDialerKeepsConnection(t *testing.T) {
	ca, err := certs.NewCA("test cluster", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", testTLS(t, ca, "st1"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &probeServer{ln: ln}
	go srv.serve()
	defer ln.Close()
	defer srv.closeConns()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var transitions []healthcheck.Transition
	chk := healthcheck.New(healthcheck.Options{Jitter: -1, Dialer: newProbeDialer(ctx, testTLS(t, ca, "leader")),
		OnTransition: func(tr healthcheck.Transition) {
			mu.Lock()
			transitions = append(transitions, tr)
			mu.Unlock()
		}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		chk.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	iv := 5 * time.Millisecond
	if err := chk.Update([]healthcheck.Target{{ID: "st1", Addr: netip.MustParseAddrPort(ln.Addr().String()), Spec: healthcheck.Spec{
		Type: healthcheck.Memcached, ConnectTimeout: 2 * time.Second, DelayLoop: iv, DelayBeforeRetry: iv, Retry: 2, Warmup: -1,
	}}}); err != nil {
		t.Fatal(err)
	}
	waitVersions := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, v := srv.counts(); v >= n {
				return
			}
			if time.Now().After(deadline) {
				a, v := srv.counts()
				t.Fatalf("%d probes answered on %d connections, want %d", v, a, n)
			}
		}
	}
	waitVersions(30)
	if a, v := srv.counts(); a != 1 {
		t.Fatalf("%d probes on %d connections, want one", v, a)
	}
	// The node restarts: its connection is closed; the next probe dials
	// again, and no check fails.
	srv.closeConns()
	_, v := srv.counts()
	waitVersions(v + 30)
	if a, v := srv.counts(); a != 2 {
		t.Fatalf("%d probes on %d connections after the node closed one, want two", v, a)
	}
	mu.Lock()
	for _, tr := range transitions {
		if !tr.Up {
			t.Fatalf("a transition down: %+v", tr)
		}
	}
	mu.Unlock()
	// The node is gone: its checks fail, it goes down.
	ln.Close()
	srv.closeConns()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if st := chk.States(); len(st) == 1 && !st[0].Up {
			t.Logf("down: %s", st[0].LastError)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still up after the node is gone: %+v", chk.States())
		}
	}
}

// TestPeerListenerKeepsProbeConnection: a node's peer listener answers
// the leader's health checks one after another on one connection (the
// monitor keeps it, see probeDialer), each renewing the node's lease.
func TestPeerListenerKeepsProbeConnection(t *testing.T) {
	tc := startCluster(t, 3, 0, slots.Sync)
	c, err := net.Dial("tcp", tc.tiers[1].PeerAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	n := tc.tiers[1].cluster
	for i := range 5 {
		before := n.lease.Load()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "version\r\n"); err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "VERSION ") {
			t.Fatalf("probe %d on one connection: %q %v, want a VERSION", i, line, err)
		}
		if after := n.lease.Load(); after <= before {
			t.Fatalf("probe %d did not extend the lease (%d, then %d)", i, before, after)
		}
	}
}
