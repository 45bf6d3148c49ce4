package daemon

import (
	"net/netip"
	"testing"

	"github.com/lbd-project/lbd/pkg/ipvs"
)

// kernelView keeps lbd's services only, keys them like config names them
// and carries each real server's drain state to status.
func TestKernelView(t *testing.T) {
	vip := netip.MustParseAddr("10.0.0.5")
	rs := netip.MustParseAddr("10.0.2.1")
	snap := []ipvs.ServiceStatus{
		{Service: ipvs.Service{Addr: vip, Port: 80, Protocol: ipvs.TCP}, Owned: true,
			Dests: []ipvs.DestStatus{{Dest: ipvs.Dest{Addr: rs, Weight: 0}, ActiveConns: 3, Draining: true}}},
		{Service: ipvs.Service{Addr: vip, Port: 81, Protocol: ipvs.TCP}},
	}
	got := kernelView(snap)
	if len(got) != 1 {
		t.Fatalf("kernelView = %v, want only the owned service", got)
	}
	k, ok := got["tcp/10.0.0.5:80"]
	if !ok {
		t.Fatalf("kernelView keys = %v", got)
	}
	d, ok := k.dests[netip.AddrPortFrom(rs, 80)]
	if !ok || !d.draining || d.active != 3 {
		t.Errorf("dest = %+v, %v; want draining with 3 active (port from the service)", d, ok)
	}
}
