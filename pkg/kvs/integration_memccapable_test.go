//go:build integration

package kvs

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMemccapable runs libmemcached's protocol conformance checker (ASCII
// tests) against lbd's KVS, for both stores.
func TestMemccapable(t *testing.T) {
	path, err := exec.LookPath("memccapable")
	if err != nil {
		t.Fatalf("memccapable not installed (Debian package libmemcached-tools): %v", err)
	}
	for _, kind := range []StoreKind{StoreMemory, StoreDurable} {
		t.Run(string(kind), func(t *testing.T) {
			cfg := TenantConfig{Name: "cap", Store: kind}
			if kind == StoreDurable {
				cfg.Dir = t.TempDir()
			}
			_, addrs := startTier(t, Options{}, cfg)
			host, port, _ := net.SplitHostPort(addrs["cap"])
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, path, "-a", "-h", host, "-p", port).CombinedOutput()
			t.Logf("memccapable:\n%s", out)
			if err != nil || !strings.Contains(string(out), "All tests passed") {
				t.Fatalf("memccapable failed: %v", err)
			}
		})
	}
}
