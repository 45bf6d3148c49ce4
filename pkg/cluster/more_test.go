package cluster

import (
	"io"
	"net/http"
	"os"
	"testing"
	"time"
)

// A voter whose raft data is lost comes back with the same options
// (bootstrapping again with the same voter list) and catches up.
func TestWipedVoterRejoins(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	ctx := ctxT(t)
	f := c.follower()
	fi := c.index(f)
	if _, err := propose(ctx, f, Op{Key: "a", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	c.stop(fi)
	if err := os.RemoveAll(c.opts[fi].DataDir); err != nil {
		t.Fatal(err)
	}
	l := c.leader()
	if _, err := propose(ctx, l, Op{Key: "b", Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	c.start(fi)
	c.waitAll("a", "1")
	c.waitAll("b", "2")
	if _, err := propose(ctx, c.nodes[fi], Op{Key: "c", Value: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	c.waitAll("c", "3")
}

// Other packages' node-to-node handlers ride the same mutual TLS: the
// handler sees the caller's certificate, and Watch reports applied writes.
func TestHandleAndClient(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	ctx := ctxT(t)
	c.nodes[0].Handle("GET /test/whoami", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	resp, err := c.nodes[1].Client().Get(PeerURL(c.opts[0].Advertise, "/test/whoami"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "n1" {
		t.Fatalf("whoami: %s %q", resp.Status, b)
	}

	ch := c.nodes[2].Watch(ctx)
	idx, err := propose(ctx, c.nodes[0], Op{Key: "w", Value: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	for got := range ch {
		if got >= idx {
			break
		}
	}
	if e, ok := c.nodes[2].Get("w"); !ok || string(e.Value) != "x" {
		t.Fatalf("after watch: %+v %v", e, ok)
	}
}

// A planned shutdown hands the leadership over first; a second Shutdown
// is harmless.
func TestTransferLeadership(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	ctx := ctxT(t)
	l := c.leader()
	if err := l.TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	if l.IsLeader() {
		t.Fatal("still the leader after a transfer")
	}
	c.stop(c.index(l))
	if err := l.Shutdown(); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	if _, err := propose(ctx, c.leader(), Op{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	c.waitAll("k", "v")
}

// A node that asks to join as a voter becomes one, and counts toward the
// quorum.
func TestJoinAsVoter(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	ctx := ctxT(t)
	o := c.opts[0]
	o.NodeID, o.Advertise, o.DataDir, o.TLS = "n3", freeAddr(t), t.TempDir(), c.ca.tls("n3")
	o.Bootstrap, o.Join, o.JoinAsVoter = nil, []string{c.leader().Address()}, true
	j := c.nodes[c.add(o)]
	eventually(t, 20*time.Second, "n3 a voter", func() bool {
		srv, err := c.leader().Servers()
		if err != nil {
			return false
		}
		for _, s := range srv {
			if s.ID == "n3" {
				return s.Voter
			}
		}
		return false
	})
	if _, err := propose(ctx, j, Op{Key: "v", Value: []byte("4")}); err != nil {
		t.Fatal(err)
	}
	c.waitAll("v", "4")
}
