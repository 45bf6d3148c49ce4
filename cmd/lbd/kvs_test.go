package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/cluster/certs"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// TestEventLoopFlags checks that the event-loop flags, `lbd kvs`'s and the
// daemon's (--kvs-...), reach the tier's options, and that by default the
// loops are pinned and under SCHED_BATCH.
func TestEventLoopFlags(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		args   []string
		want   kvs.Options
	}{
		{"", nil, kvs.Options{GoMemoryLimit: true}},
		{"kvs-", nil, kvs.Options{GoMemoryLimit: true}},
		{"", []string{"--sched-batch=false"}, kvs.Options{NoBatchScheduling: true, GoMemoryLimit: true}},
		{"kvs-", []string{"--kvs-event-loops=3", "--kvs-cpu-affinity=false", "--kvs-sched-batch=false"},
			kvs.Options{EventLoops: 3, NoCPUAffinity: true, NoBatchScheduling: true, GoMemoryLimit: true}},
	} {
		fs := flag.NewFlagSet("lbd", flag.ContinueOnError)
		opts := eventLoopFlags(fs, tc.prefix, "")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := opts(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("flags %q (prefix %q): options %+v, want %+v", tc.args, tc.prefix, got, tc.want)
		}
	}
}

// TestJoinStatic: a static cluster's list is checked, and a node joins
// with the tenant's slots placed over every node.
func TestJoinStatic(t *testing.T) {
	ctx := t.Context()
	for _, bad := range []struct{ spec, node string }{
		{"st1", "st1"},
		{"st1=127.0.0.1:0,=x", "st1"},
		{"st1=127.0.0.1:0", "st2"},
	} {
		tier := kvs.New(nil, kvs.Options{NoEventLoop: true})
		if err := joinStatic(ctx, tier, bad.spec, bad.node, "", "t", 0, "sync"); err == nil {
			t.Errorf("--cluster %q --node %s: no error", bad.spec, bad.node)
		}
		tier.Close()
	}
	tier := kvs.New(nil, kvs.Options{NoEventLoop: true})
	defer tier.Close()
	if err := joinStatic(ctx, tier, "st1=127.0.0.1:0,st2=127.0.0.1:1", "st1", "", "t", 1, "sync"); err != nil {
		t.Fatal(err)
	}
	if err := tier.Apply(ctx, []kvs.TenantConfig{{Name: "t", Listen: "127.0.0.1:0"}}); err != nil {
		t.Fatal(err)
	}
	st, ok := tier.ClusterStatus()
	if !ok || len(st.Tenants) != 1 || st.Tenants[0].Replicas != 1 || len(st.Tenants[0].Nodes) != 2 {
		t.Fatalf("status %+v", st)
	}
}

// TestJoinStaticTLS: with --certs, the nodes of a static cluster forward
// to each other over mutual TLS with `lbctl cluster certs`' files, every
// key read back through the other node; a directory without the node's
// certificate is refused.
func TestJoinStaticTLS(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	if err := certs.InitDir(dir, "test"); err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, n := range []string{"st1", "st2"} {
		if _, _, err := certs.IssueDir(dir, n, []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, ln.Addr().String())
		ln.Close()
	}
	spec := "st1=" + ports[0] + ",st2=" + ports[1]
	bad := kvs.New(nil, kvs.Options{NoEventLoop: true})
	defer bad.Close()
	if err := joinStatic(ctx, bad, spec, "st1", t.TempDir(), "t", 0, "sync"); err == nil || !strings.Contains(err.Error(), "--certs") {
		t.Fatalf("--certs of an empty directory: %v, want an error naming --certs", err)
	}
	var addrs []string
	for _, n := range []string{"st1", "st2"} {
		tier := kvs.New(nil, kvs.Options{NoEventLoop: true})
		defer tier.Close()
		if err := joinStatic(ctx, tier, spec, n, dir, "t", 0, "sync"); err != nil {
			t.Fatal(err)
		}
		if err := tier.Apply(ctx, []kvs.TenantConfig{{Name: "t", Listen: "127.0.0.1:0"}}); err != nil {
			t.Fatal(err)
		}
		a, _ := tier.Addr("t")
		addrs = append(addrs, a.String())
	}
	// The peer listener speaks TLS with the cluster's certificates.
	tc, err := staticTLS(dir, "st1")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ports[1], tc)
	if err != nil {
		t.Fatalf("TLS to st2's peer listener: %v", err)
	}
	pc.Close()
	// 40 keys: about half have their primary on the other node.
	for i := range 40 {
		k := fmt.Sprintf("k%d", i)
		if got := memcachedDo(t, addrs[i%2], "set "+k+" 0 0 1\r\nv\r\n"); got != "STORED\r\n" {
			t.Fatalf("set %s through %s: %q", k, addrs[i%2], got)
		}
		if got := memcachedDo(t, addrs[(i+1)%2], "get "+k+"\r\n"); got != "VALUE "+k+" 0 1\r\nv\r\nEND\r\n" {
			t.Fatalf("get %s through %s: %q", k, addrs[(i+1)%2], got)
		}
	}
}

// memcachedDo sends req on a new connection to addr and returns its reply,
// read up to its last line (STORED, END or an error).
func memcachedDo(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out strings.Builder
	for {
		line, err := br.ReadString('\n')
		out.WriteString(line)
		if err != nil || line == "STORED\r\n" || line == "END\r\n" || strings.HasSuffix(line, "ERROR\r\n") || strings.HasPrefix(line, "SERVER_ERROR") {
			return out.String()
		}
	}
}
