package cluster

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A peer without a certificate of the cluster CA can neither join, read
// nor write: the raft stream, propose, status and join are all refused at
// the TLS handshake, while a cluster certificate passes the same calls.
func TestCertificateRefusals(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	target := c.opts[0].Advertise
	foreign := newTestCA(t).tls("n9") // another CA, same node name

	outsiders := map[string]*tls.Config{
		"no certificate": {InsecureSkipVerify: true, MinVersion: tls.VersionTLS13},
		"foreign CA": {InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
			GetClientCertificate: foreign.GetClientCertificate},
	}
	for name, cfg := range outsiders {
		t.Run(name, func(t *testing.T) {
			// The raft stream.
			rc := cfg.Clone()
			rc.NextProtos = []string{ProtoRaft}
			if err := probeRaft(target, rc, 10*time.Second); err == nil {
				t.Error("raft stream: accepted")
			}
			// The RPC: propose, status, join.
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
			calls := []struct{ method, path, body string }{
				{"POST", pathPropose, `{"v":1,"ops":[{"key":"evil","value":"eA=="}]}`},
				{"GET", pathStatus, ""},
				{"POST", pathJoin, `{"id":"n9","address":"127.0.0.1:1","voter":true}`},
				{"POST", pathRemove, `{"id":"n1"}`},
			}
			for _, call := range calls {
				req, _ := http.NewRequest(call.method, PeerURL(target, call.path), strings.NewReader(call.body))
				resp, err := hc.Do(req)
				if err == nil {
					resp.Body.Close()
					t.Errorf("%s %s: answered %s", call.method, call.path, resp.Status)
				}
			}
		})
	}
	// The cluster's own certificate passes the same doors.
	own := c.ca.tls("n9")
	rc := own.Clone()
	rc.NextProtos = []string{ProtoRaft}
	if err := probeRaft(target, rc, 300*time.Millisecond); err != nil {
		t.Fatalf("raft stream with a cluster certificate: %v", err)
	}
	hc := newRPCClient(own)
	resp, err := hc.Get(PeerURL(target, pathStatus))
	if err != nil {
		t.Fatalf("status with a cluster certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status with a cluster certificate: %s", resp.Status)
	}
	for _, n := range c.running() {
		if _, ok := n.Get("evil"); ok {
			t.Fatalf("an outsider's write reached %s", n.ID())
		}
		srv, err := n.Servers()
		if err != nil || len(srv) != 3 {
			t.Fatalf("servers of %s: %v %v", n.ID(), srv, err)
		}
	}
	// A node of a cluster presents a certificate the others check too: a
	// server with a foreign certificate is refused by a cluster client.
	evil := fastOptions(Options{NodeID: "n9", Advertise: freeAddr(t), DataDir: t.TempDir(), TLS: foreign, Logger: c.log,
		Bootstrap: []Server{{ID: "n9", Address: "", Voter: true}}})
	evil.Bootstrap[0].Address = evil.Advertise
	en, err := Open(ctxT(t), evil)
	if err != nil {
		t.Fatal(err)
	}
	defer en.Shutdown()
	if _, err := c.nodes[0].Client().Get(PeerURL(evil.Advertise, pathStatus)); err == nil {
		t.Fatal("a cluster node trusted a server of another CA")
	}
}

// probeRaft opens a raft stream and reads: the server refuses a client
// certificate after the client's side of the TLS 1.3 handshake is done, so
// the refusal shows as an error on the first read; an accepted stream
// stays open (the read times out after wait: a refusal must come sooner).
func probeRaft(addr string, cfg *tls.Config, wait time.Duration) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != ProtoRaft {
		return errors.New("negotiated " + p)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		err = errors.New("unexpected data")
	}
	return err
}
