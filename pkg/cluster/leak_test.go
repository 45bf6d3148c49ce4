package cluster

import (
	"runtime"
	"testing"
	"time"
)

// Shutdown leaves no goroutine of the node behind (the daemon opens one
// node for its life, but a leak would show here first).
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	c := newTestCluster(t, 3, nil)
	ctx := ctxT(t)
	if _, err := propose(ctx, c.nodes[1], Op{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes[0].Members(ctx); err != nil {
		t.Fatal(err)
	}
	c.stopAll()
	var n int
	deadline := time.Now().Add(20 * time.Second)
	for n = runtime.NumGoroutine(); n > before+2 && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(50 * time.Millisecond)
	}
	if n > before+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after shutdown, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
