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
