package cluster

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"
)

func TestOpenRefusesBadOptions(t *testing.T) {
	ca := newTestCA(t)
	good := func() Options {
		return fastOptions(Options{NodeID: "n0", Advertise: freeAddr(t), DataDir: t.TempDir(), TLS: ca.tls("n0"), Logger: testLogger(t)})
	}
	for _, tc := range []struct {
		name, want string
		edit       func(*Options)
	}{
		{"no id", "node id", func(o *Options) { o.NodeID = "" }},
		{"no data dir", "data dir", func(o *Options) { o.DataDir = "" }},
		{"no tls", "tls: missing", func(o *Options) { o.TLS = nil }},
		{"no client auth", "RequireAndVerifyClientCert", func(o *Options) { o.TLS = &tls.Config{} }},
		{"bad advertise", "advertise", func(o *Options) { o.Advertise = "nowhere" }},
		{"unspecified advertise", "not an address", func(o *Options) { o.Advertise = "0.0.0.0:7000" }},
		{"repeated voter", "bootstrap[1]", func(o *Options) {
			o.Bootstrap = []Server{{ID: "n0", Address: o.Advertise}, {ID: "n0", Address: o.Advertise}}
		}},
	} {
		o := good()
		tc.edit(&o)
		if _, err := Open(context.Background(), o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	// Two nodes on one data dir: the second is told.
	o := good()
	o.Bootstrap = []Server{{ID: "n0", Address: o.Advertise, Voter: true}}
	n, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	o2 := o
	o2.Advertise = freeAddr(t)
	if _, err := Open(context.Background(), o2); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second node on one data dir: %v", err)
	}
	// A single voter elects itself and takes writes.
	ctx := ctxT(t)
	eventually(t, 10*time.Second, "a leader", n.IsLeader)
	if _, err := n.Propose(ctx, Op{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
}
