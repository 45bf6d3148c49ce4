package ipvs_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/lbd-project/lbd/pkg/ipvs"
	"github.com/lbd-project/lbd/pkg/ipvs/ipvstest"
)

func bigState(n, m int) []ipvs.Service {
	out := make([]ipvs.Service, 0, n)
	for i := 0; i < n; i++ {
		s := ipvs.Service{Addr: netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i%10)}), Port: uint16(10000 + i/10),
			Protocol: ipvs.TCP, Scheduler: "rr"}
		for j := 0; j < m; j++ {
			s.Dests = append(s.Dests, ipvs.Dest{Addr: netip.AddrFrom4([4]byte{192, 168, 12, byte(10 + j)}), Weight: 1})
		}
		out = append(out, s)
	}
	return out
}

// BenchmarkApplyOneChange10k is the CPU side of a reload that changes one
// weight among 10,000 services x 4 real servers (one write to the fake).
func BenchmarkApplyOneChange10k(b *testing.B) {
	desired := bigState(10000, 4)
	r, err := ipvs.NewReconciler(ipvstest.NewFake(), ipvs.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := r.Apply(ctx, desired); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		desired[i%len(desired)].Dests[1].Weight = 2 + i%7
		res, err := r.Apply(ctx, desired)
		if err != nil || res.Writes > 1 {
			b.Fatal(fmt.Sprint(res.Writes, err))
		}
	}
}
