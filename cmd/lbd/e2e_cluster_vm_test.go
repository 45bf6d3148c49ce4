//go:build vm

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
)

var vmCluster = clusterYAML([][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}}, `
vrrp: {virtual_router_id: 79, advert_interval: 100ms, vips: [10.99.0.100]}
defaults: {health: {type: none}}
tenants:
  - name: shop
    service: {vip: 10.99.0.100, port: 13101}
    allow: [10.99.0.10]
    kvs: {memory: 8MiB}
`)

// TestVMClusterTenantAdd: one tenant add, on a storage node, gives the
// tenant an IPVS service on both directors, its fence, and its store; a
// client of its allow-list is served through the VIP, an outsider is not.
func TestVMClusterTenantAdd(t *testing.T) {
	l := newClusterLab(t, vmCluster, [][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}})
	l.host("cl", "10.99.0.10")
	l.host("out", "10.99.0.20")
	all := []string{"lb1", "lb2", "st1"}
	for _, n := range all {
		l.startNode(n)
	}
	l.leader(all...)
	l.change("st1", all, func(ctx context.Context, c *api.Client) error {
		return c.AddTenant(ctx, config.Tenant{Name: "cafe", Service: config.Service{VIP: "10.99.0.100", Port: 13102},
			Allow: []string{"10.99.0.10"}, KVS: config.KVS{Memory: 8 << 20}})
	})
	for _, d := range []string{"lb1", "lb2"} {
		eventually(t, 60*time.Second, "IPVS service of the new tenant on "+d, func() bool {
			return strings.Contains(l.sh(d, "ipvsadm -Ln -t 10.99.0.100:13102 2>/dev/null || true"), "10.99.0.11:13102")
		})
		if rules := l.sh(d, "iptables -S LBD-ACL"); !strings.Contains(rules, "--dport 13102") {
			t.Errorf("no fence for the new tenant on %s:\n%s", d, rules)
		}
	}
	eventually(t, 60*time.Second, "lb1 master", func() bool {
		return strings.Contains(l.sh("lb1", "ip -o addr show dev eth0"), " 10.99.0.100/")
	})
	eventually(t, 60*time.Second, "the client served by the new tenant through the VIP", func() bool {
		out, err := l.nc("cl", "10.99.0.100:13102", "version")
		return err == nil && strings.HasPrefix(out, "VERSION")
	})
	if out, err := l.nc("out", "10.99.0.100:13102", "version"); err == nil {
		t.Errorf("an outsider reached the new tenant: %q", out)
	}
}
