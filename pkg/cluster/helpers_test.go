package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/cluster/certs"
)

// testCA is a cluster CA for tests, and the TLS of its nodes.
type testCA struct {
	t  testing.TB
	ca certs.PEM
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	ca, err := certs.NewCA("test cluster", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{t: t, ca: ca}
}

// tls returns the mutual-TLS config of node name on 127.0.0.1, through the
// certs loader like the daemon's.
func (c *testCA) tls(name string) *tls.Config {
	c.t.Helper()
	p, err := certs.Issue(c.ca, name, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	dir := c.t.TempDir()
	cf, kf, caf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	for f, b := range map[string][]byte{cf: p.Cert, kf: p.Key, caf: c.ca.Cert} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			c.t.Fatal(err)
		}
	}
	l, err := certs.NewLoader(cf, kf, caf)
	if err != nil {
		c.t.Fatal(err)
	}
	return l.Config()
}

// pool is the CA as a cert pool.
func (c *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(c.ca.Cert)
	return p
}

// freeAddr returns a loopback address with a port free right now, and
// never returned before in this test binary.
func freeAddr(t testing.TB) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// The kernel may give a port closed just now again: a cluster
		// whose two nodes got one address fails to bootstrap.
		if _, taken := handedOut.LoadOrStore(addr, true); !taken {
			return addr
		}
	}
}

// handedOut is every address freeAddr returned in this test binary.
var handedOut sync.Map

// testLogger logs warnings and errors to the test, until the test ends.
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	level := slog.LevelError + 4 // quiet: set CLUSTER_TEST_LOG=1 for raft's logs
	if os.Getenv("CLUSTER_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// testCluster is a set of nodes on loopback.
type testCluster struct {
	t     testing.TB
	ca    *testCA
	opts  []Options
	nodes []*Node // nil when stopped
	log   *slog.Logger
}

// fastOptions are options with test timing.
func fastOptions(o Options) Options {
	o.HeartbeatTimeout = 500 * time.Millisecond
	o.ElectionTimeout = 500 * time.Millisecond
	o.LeaderLeaseTimeout = 250 * time.Millisecond
	o.CommitTimeout = 5 * time.Millisecond
	o.LeaderWait = 2 * time.Second
	o.RPCTimeout = 5 * time.Second
	return o
}

// newBenchCluster is three voters with the default timing.
func newBenchCluster(b testing.TB) *testCluster {
	return newTestCluster(b, 3, func(o *Options) {
		o.HeartbeatTimeout, o.ElectionTimeout, o.LeaderLeaseTimeout, o.CommitTimeout = 0, 0, 0, 0
		o.LeaderWait, o.RPCTimeout = 0, 0
	})
}

// newTestCluster starts n voters bootstrapped together; tweak adjusts
// each node's options.
func newTestCluster(t testing.TB, n int, tweak func(*Options)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, ca: newTestCA(t), log: testLogger(t)}
	var boot []Server
	for i := range n {
		boot = append(boot, Server{ID: fmt.Sprintf("n%d", i), Address: freeAddr(t), Voter: true})
	}
	for i := range n {
		o := fastOptions(Options{
			NodeID: boot[i].ID, Advertise: boot[i].Address, DataDir: t.TempDir(),
			TLS: c.ca.tls(boot[i].ID), Bootstrap: boot, Logger: c.log,
		})
		if tweak != nil {
			tweak(&o)
		}
		c.opts = append(c.opts, o)
		c.nodes = append(c.nodes, nil)
		c.start(i)
	}
	t.Cleanup(c.stopAll)
	return c
}

// add starts one more node with options o (not in the bootstrap list).
func (c *testCluster) add(o Options) int {
	c.opts = append(c.opts, o)
	c.nodes = append(c.nodes, nil)
	c.start(len(c.nodes) - 1)
	return len(c.nodes) - 1
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	n, err := Open(context.Background(), c.opts[i])
	if err != nil {
		c.t.Fatalf("open %s: %v", c.opts[i].NodeID, err)
	}
	c.nodes[i] = n
}

func (c *testCluster) stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].Shutdown(); err != nil {
		c.t.Errorf("shutdown %s: %v", c.opts[i].NodeID, err)
	}
	c.nodes[i] = nil
}

func (c *testCluster) stopAll() {
	for i, n := range c.nodes {
		if n != nil {
			n.Shutdown()
			c.nodes[i] = nil
		}
	}
}

// running returns the running nodes.
func (c *testCluster) running() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader waits for one of the running nodes to be the leader that every
// running voter agrees on.
func (c *testCluster) leader() *Node {
	c.t.Helper()
	var l *Node
	eventually(c.t, 20*time.Second, "a leader", func() bool {
		l = nil
		for _, n := range c.running() {
			if n.IsLeader() {
				l = n
			}
		}
		if l == nil {
			return false
		}
		for _, n := range c.running() {
			if id, _ := n.Leader(); id != l.ID() {
				return false
			}
		}
		return true
	})
	return l
}

// follower returns a running node that is not the leader.
func (c *testCluster) follower() *Node {
	l := c.leader()
	for _, n := range c.running() {
		if n != l {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

func (c *testCluster) index(n *Node) int {
	for i, m := range c.nodes {
		if m == n {
			return i
		}
	}
	return -1
}

// waitAll waits until every running node has key at value.
func (c *testCluster) waitAll(key, value string) {
	c.t.Helper()
	for _, n := range c.running() {
		eventually(c.t, 20*time.Second, fmt.Sprintf("%s=%s on %s", key, value, n.ID()), func() bool {
			e, ok := n.Get(key)
			return ok && string(e.Value) == value
		})
	}
}

// eventually polls cond until it holds or the (generous) deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// propose is n.Propose retried while there is no leader (an election on a
// loaded machine), as a client of an unconditional write would: for the
// tests whose subject is not the election.
func propose(ctx context.Context, n *Node, ops ...Op) (uint64, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		idx, err := n.Propose(ctx, ops...)
		if !errors.Is(err, ErrNoLeader) || time.Now().After(deadline) {
			return idx, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
