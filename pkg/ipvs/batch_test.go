package ipvs_test

import (
	"context"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/ipvs"
	"github.com/lbd-project/lbd/pkg/ipvs/ipvstest"
)

// TestBatchedMatchesSequential runs the same reloads through the batching
// path and the one-request-at-a-time path: same writes, same table.
func TestBatchedMatchesSequential(t *testing.T) {
	steps := []func([]ipvs.Service) []ipvs.Service{
		func(s []ipvs.Service) []ipvs.Service { return s },
		func(s []ipvs.Service) []ipvs.Service { s[3].Dests[1].Weight = 7; return s },
		func(s []ipvs.Service) []ipvs.Service { s[5].Dests = s[5].Dests[:2]; s[6].Scheduler = "wlc"; return s },
		func(s []ipvs.Service) []ipvs.Service { return s[:300] },
		func(s []ipvs.Service) []ipvs.Service { return append(s, bigState(700, 5)[600:]...) },
	}
	run := func(k ipvs.Kernel) (writes []int) {
		clk := newClock()
		r, err := ipvs.NewReconciler(k, ipvs.Options{DrainPeriod: time.Minute, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range steps {
			desired := step(bigState(600, 4))
			res, err := r.Apply(context.Background(), desired)
			if err != nil {
				t.Fatal(err)
			}
			clk.advance(2 * time.Minute)
			writes = append(writes, res.Writes)
		}
		return writes
	}
	seq, bat := ipvstest.NewFake(), ipvstest.NewFake()
	ws, wb := run(seq), run(ipvs.Batched(bat))
	if !reflect.DeepEqual(ws, wb) {
		t.Fatalf("writes differ: sequential %v, batched %v", ws, wb)
	}
	if !reflect.DeepEqual(seq.Table(), bat.Table()) {
		t.Fatal("tables differ")
	}
}

// TestBatchedFailedServiceAdd checks that a real server is not sent to a
// service whose creation failed in the same batch, and that the retry
// finishes the job.
func TestBatchedFailedServiceAdd(t *testing.T) {
	k := ipvstest.NewFake()
	r, err := ipvs.NewReconciler(ipvs.Batched(k), ipvs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k.FailNext(ipvstest.AddService, syscall.EIO)
	res, err := r.Apply(context.Background(), seed())
	if err == nil || res.Failed != 2 || k.Calls(ipvstest.AddDest) != 0 {
		t.Fatalf("res %+v, err %v, AddDest calls %d", res, err, k.Calls(ipvstest.AddDest))
	}
	k.FailNext(ipvstest.AddService, nil)
	if res, err = r.Apply(context.Background(), seed()); err != nil || res.Writes != 6 {
		t.Fatalf("retry: %+v %v", res, err)
	}
}
