package kvs

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil/kvhistory"
	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterLinearizable checks, with porcupine, that concurrent get, set,
// cas (after gets) and incr through random nodes of a replica-1 sync
// cluster are linearizable while a storage node is killed and brought back
// empty, and while another is cut off from the other nodes and the cluster
// state but not from its clients: no acknowledged write is lost and no read
// is stale. (cmd/lbd's TestClusterKVSLinearizable does the same with real
// lbd processes in network namespaces.)
func TestClusterLinearizable(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	strKeys := []string{"s0", "s1", "s2", "s3", "s4"}
	ctrKeys := []string{"c0", "c1", "c2"}
	h, tally := kvhistory.New(), &kvhistory.Tally{}
	var uniq atomic.Int64
	worker := func(cl int) *kvhistory.Worker {
		rng := rand.New(rand.NewPCG(uint64(cl), 99))
		pool := &kvhistory.Pool{Addrs: tc.addrs, Rng: rng, Timeout: 10 * time.Second}
		t.Cleanup(pool.Close)
		return &kvhistory.Worker{Client: cl, Rng: rng, Call: pool.Call, H: h, T: tally, Strings: strKeys, Counters: ctrKeys,
			Value: func() string { return fmt.Sprintf("v%d", uniq.Add(1)) }}
	}
	// The counters start at 0, in the history.
	w0 := worker(0)
	for _, k := range ctrKeys {
		// A lease may lapse a moment on a loaded machine: retry for 10s.
		for deadline := time.Now().Add(10 * time.Second); !w0.Set(k, "0"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("initial set failed for 10s")
			}
		}
	}

	var faults sync.WaitGroup
	stop := make(chan struct{})
	faults.Add(1)
	go func() {
		defer faults.Done()
		time.Sleep(1500 * time.Millisecond)
		tc.kill(2)
		time.Sleep(2500 * time.Millisecond)
		tc.start(2)
		time.Sleep(1500 * time.Millisecond)
		tc.partition(1, true) // its clients still reach it
		time.Sleep(2500 * time.Millisecond)
		tc.partition(1, false)
		time.Sleep(1500 * time.Millisecond)
		close(stop)
	}()

	var wg sync.WaitGroup
	for cl := range 6 {
		w := w0
		if cl > 0 {
			w = worker(cl)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 2000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				w.Step()
			}
		}()
	}
	wg.Wait()
	faults.Wait()
	ops := h.Ops()
	known := 0
	for _, op := range ops {
		if !op.Out.Unknown {
			known++
		}
	}
	t.Logf("%d operations, %d with a known outcome; %s", len(ops), known, tally)
	if err := kvhistory.Check(ops, time.Minute); err != nil {
		t.Fatal(err)
	}
	if tally.Odds > 0 {
		t.Errorf("%d answers that are neither memcached's nor SERVER_ERROR, the first: %q", tally.Odds, tally.Odd)
	}
}
