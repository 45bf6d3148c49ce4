package apitest

import (
	"net/netip"
	"time"

	"github.com/lbd-project/lbd/internal/api"
)

// SampleTime is the fixed time of SampleStatus.
var SampleTime = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// SampleStatus is a director that is VRRP master with a tenant service (two
// storage nodes, one down) and a plain web service.
func SampleStatus() api.Status {
	vip := netip.MustParseAddr("203.0.113.10")
	return api.Status{
		Node: "lb1", Role: "both", ConfigFile: "/etc/lbd/lbd.yaml", Started: SampleTime.Add(-time.Hour),
		VRRP: []api.VRRPStatus{{VRID: 51, Interface: "eth0", State: "master", Since: SampleTime.Add(-30 * time.Minute),
			Priority: 150, VIPs: []netip.Addr{vip}, Transitions: 2}},
		Services: []api.ServiceStatus{
			{Name: "user1", Tenant: "user1", Protocol: "tcp", VIP: vip, Port: 13101, Scheduler: "rr", Forward: "dr", InKernel: true,
				Stats: api.Stats{Conns: 10, InPkts: 100, OutPkts: 0, InBytes: 6400, OutBytes: 0, CPS: 1},
				Reals: []api.RealStatus{
					{Addr: netip.MustParseAddr("192.168.12.233"), Port: 13101, Forward: "dr", Weight: 1, ConfigWeight: 1,
						Health: "up", HealthSince: SampleTime.Add(-20 * time.Minute), ActiveConns: 3, InactConns: 1,
						Stats: api.Stats{Conns: 7, InPkts: 70, InBytes: 4480}},
					{Addr: netip.MustParseAddr("192.168.12.234"), Port: 13101, Forward: "dr", Weight: 0, ConfigWeight: 1,
						Health: "down", HealthSince: SampleTime.Add(-5 * time.Minute), LastError: "connection refused",
						Stats: api.Stats{Conns: 3, InPkts: 30, InBytes: 1920}},
				}},
			{Name: "tcp/203.0.113.20:80", Protocol: "tcp", VIP: netip.MustParseAddr("203.0.113.20"), Port: 80,
				Scheduler: "wlc", Forward: "dr", InKernel: true,
				Reals: []api.RealStatus{{Addr: netip.MustParseAddr("192.168.12.240"), Port: 80, Forward: "dr",
					Weight: 2, ConfigWeight: 2, Health: "unchecked"}}},
		},
		ACL: []api.ACLStatus{{Tenant: "user1", VIP: vip, Port: 13101, Entries: []netip.Prefix{
			netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("198.51.100.0/28")}, Drops: 42}},
		KVS: []api.KVSStats{{Node: "lb1", Tenant: "user1", Listen: "192.168.12.233:13101", Items: 5, Bytes: 1234,
			LimitBytes: 256 << 20, Hits: 9, Misses: 1, Evictions: 0, CurrConns: 2, TotalConns: 11, StorageKind: "durable"}},
		Reconcile: api.ReconcileStatus{Last: SampleTime, Took: 1500 * time.Microsecond, Count: 12, Failures: 1},
	}
}
