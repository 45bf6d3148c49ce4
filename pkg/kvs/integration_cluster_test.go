//go:build integration

package kvs

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterMemccapable runs libmemcached's conformance checker through
// each node of a three-node cluster (the keys spread over the nodes, so
// most requests are forwarded), with and without a replica.
func TestClusterMemccapable(t *testing.T) {
	path, err := exec.LookPath("memccapable")
	if err != nil {
		t.Fatalf("memccapable not installed (Debian package libmemcached-tools): %v", err)
	}
	for _, r := range []int{0, 1} {
		t.Run(map[int]string{0: "replicas0", 1: "replicas1"}[r], func(t *testing.T) {
			tc := startCluster(t, 3, r, slots.Sync)
			host, port, _ := net.SplitHostPort(tc.addrs[r])
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, path, "-v", "-a", "-h", host, "-p", port).CombinedOutput()
			t.Logf("memccapable:\n%s", out)
			if err != nil || !strings.Contains(string(out), "All tests passed") {
				t.Fatalf("memccapable failed: %v", err)
			}
		})
	}
}

// TestClusterDifferential sends the differential scripts to memcached and
// through a three-node cluster (each script to another node), and wants
// the same bytes back.
func TestClusterDifferential(t *testing.T) {
	mc := startMemcached(t, 64)
	tc := startCluster(t, 3, 1, slots.Sync)
	for i, sc := range differentialScripts {
		lbd := tc.addrs[i%3]
		t.Run(sc.name, func(t *testing.T) {
			for _, addr := range []string{mc, lbd} {
				exchange(t, addr, "flush_all\r\n")
			}
			want := normalize(exchange(t, mc, sc.script))
			got := normalize(exchange(t, lbd, sc.script))
			if got != want {
				t.Errorf("script %q\nmemcached: %q\nlbd:       %q", trunc(sc.script), trunc(want), trunc(got))
			}
		})
	}
}
