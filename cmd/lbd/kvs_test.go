package main

import (
	"flag"
	"reflect"
	"testing"

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
		if err := joinStatic(ctx, tier, bad.spec, bad.node, "t", 0, "sync"); err == nil {
			t.Errorf("--cluster %q --node %s: no error", bad.spec, bad.node)
		}
		tier.Close()
	}
	tier := kvs.New(nil, kvs.Options{NoEventLoop: true})
	defer tier.Close()
	if err := joinStatic(ctx, tier, "st1=127.0.0.1:0,st2=127.0.0.1:1", "st1", "t", 1, "sync"); err != nil {
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
