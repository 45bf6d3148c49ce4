package daemon

import (
	"fmt"
	"testing"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/ipvs"
)

func TestSyncDaemons(t *testing.T) {
	const file = `
nodes:
  - {name: lb1, role: director, address: 10.0.0.1, interface: eth0, priority: 150}
  - {name: lb2, role: director, address: 10.0.0.2, interface: eth1, priority: 100}
  - {name: st1, role: storage, address: 10.0.0.11, interface: eth0}
vrrp:
  virtual_router_id: 51
  vips: [203.0.113.10]
  lvs_sync_daemon: {%s}
`
	tests := []struct {
		opts, node string
		want       []ipvs.SyncDaemon
	}{
		{"", "lb1", []ipvs.SyncDaemon{
			{State: ipvs.SyncMaster, Interface: "eth0", SyncID: 51},
			{State: ipvs.SyncBackup, Interface: "eth0", SyncID: 52}}},
		{"", "lb2", []ipvs.SyncDaemon{
			{State: ipvs.SyncMaster, Interface: "eth1", SyncID: 52},
			{State: ipvs.SyncBackup, Interface: "eth1", SyncID: 51}}},
		{"interface: sync0, syncid: 7, port: 9000, ttl: 2, maxlen: 1400", "lb2", []ipvs.SyncDaemon{
			{State: ipvs.SyncMaster, Interface: "sync0", SyncID: 8, Port: 9000, TTL: 2, MaxLen: 1400},
			{State: ipvs.SyncBackup, Interface: "sync0", SyncID: 7, Port: 9000, TTL: 2, MaxLen: 1400}}},
		{"", "st1", nil},
	}
	for _, tc := range tests {
		cfg, err := config.Parse([]byte(fmt.Sprintf(file, tc.opts)), "t.yaml")
		if err != nil {
			t.Fatal(err)
		}
		node, _ := cfg.NodeByName(tc.node)
		got := syncDaemons(cfg, node)
		if len(got) != len(tc.want) {
			t.Fatalf("%s %q: %v", tc.node, tc.opts, got)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s %q: daemon %d = %+v, want %+v", tc.node, tc.opts, i, got[i], tc.want[i])
			}
		}
	}
}

func TestSyncDaemonsIPv6Group(t *testing.T) {
	cfg, err := config.Parse([]byte(`
nodes:
  - {name: lb1, role: director, address: "2001:db8::1", interface: eth0, priority: 150}
  - {name: lb2, role: director, address: "2001:db8::2", interface: eth0, priority: 100}
vrrp:
  virtual_router_id: 51
  vips: ["2001:db8::10"]
  lvs_sync_daemon: {}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	node, _ := cfg.NodeByName("lb1")
	for _, d := range syncDaemons(cfg, node) {
		if d.Group.String() != "ff02::81" {
			t.Errorf("%s: want the IPv6 group", d)
		}
	}
}
