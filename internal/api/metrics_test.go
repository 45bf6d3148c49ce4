package api_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/api/apitest"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	tests := []struct {
		name    string
		metrics []string
		want    string
	}{
		{"real servers", []string{"lbd_real_up", "lbd_real_weight", "lbd_real_active_connections"}, `
# HELP lbd_real_active_connections Active connections to the real server.
# TYPE lbd_real_active_connections gauge
lbd_real_active_connections{real="192.168.12.233:13101",service="user1"} 3
lbd_real_active_connections{real="192.168.12.234:13101",service="user1"} 0
lbd_real_active_connections{real="192.168.12.240:80",service="tcp/203.0.113.20:80"} 0
# HELP lbd_real_up 1 if the real server passes its health check (or is not checked), 0 if it is down.
# TYPE lbd_real_up gauge
lbd_real_up{real="192.168.12.233:13101",service="user1"} 1
lbd_real_up{real="192.168.12.234:13101",service="user1"} 0
lbd_real_up{real="192.168.12.240:80",service="tcp/203.0.113.20:80"} 1
# HELP lbd_real_weight The real server's weight in IPVS.
# TYPE lbd_real_weight gauge
lbd_real_weight{real="192.168.12.233:13101",service="user1"} 1
lbd_real_weight{real="192.168.12.234:13101",service="user1"} 0
lbd_real_weight{real="192.168.12.240:80",service="tcp/203.0.113.20:80"} 2
`},
		{"service counters", []string{"lbd_service_connections_total", "lbd_service_bytes_total"}, `
# HELP lbd_service_bytes_total Bytes through the virtual service.
# TYPE lbd_service_bytes_total counter
lbd_service_bytes_total{direction="in",service="tcp/203.0.113.20:80"} 0
lbd_service_bytes_total{direction="in",service="user1"} 6400
lbd_service_bytes_total{direction="out",service="tcp/203.0.113.20:80"} 0
lbd_service_bytes_total{direction="out",service="user1"} 0
# HELP lbd_service_connections_total Connections scheduled by the virtual service.
# TYPE lbd_service_connections_total counter
lbd_service_connections_total{service="tcp/203.0.113.20:80"} 0
lbd_service_connections_total{service="user1"} 10
`},
		{"vrrp", []string{"lbd_vrrp_state", "lbd_vrrp_transitions_total"}, `
# HELP lbd_vrrp_state 1 for the VRRP instance's current state, 0 for the others.
# TYPE lbd_vrrp_state gauge
lbd_vrrp_state{interface="eth0",state="backup",vrid="51"} 0
lbd_vrrp_state{interface="eth0",state="fault",vrid="51"} 0
lbd_vrrp_state{interface="eth0",state="init",vrid="51"} 0
lbd_vrrp_state{interface="eth0",state="master",vrid="51"} 1
# HELP lbd_vrrp_transitions_total VRRP state transitions.
# TYPE lbd_vrrp_transitions_total counter
lbd_vrrp_transitions_total{interface="eth0",vrid="51"} 2
`},
		{"acl", []string{"lbd_acl_entries", "lbd_acl_dropped_packets_total"}, `
# HELP lbd_acl_dropped_packets_total Packets to the tenant's port dropped by its allow-list.
# TYPE lbd_acl_dropped_packets_total counter
lbd_acl_dropped_packets_total{tenant="user1"} 42
# HELP lbd_acl_entries Entries in the tenant's allow-list set.
# TYPE lbd_acl_entries gauge
lbd_acl_entries{tenant="user1"} 2
`},
		{"reconcile", []string{"lbd_reconcile_last_duration_seconds", "lbd_reconciles_total", "lbd_reconcile_failures_total"}, `
# HELP lbd_reconcile_failures_total Reconciles that failed.
# TYPE lbd_reconcile_failures_total counter
lbd_reconcile_failures_total 1
# HELP lbd_reconcile_last_duration_seconds How long the last reconcile took.
# TYPE lbd_reconcile_last_duration_seconds gauge
lbd_reconcile_last_duration_seconds 0.0015
# HELP lbd_reconciles_total Reconciles run.
# TYPE lbd_reconciles_total counter
lbd_reconciles_total 12
`},
		{"kvs", []string{"lbd_kvs_items", "lbd_kvs_hits_total", "lbd_kvs_connections_total"}, `
# HELP lbd_kvs_connections_total Client connections accepted.
# TYPE lbd_kvs_connections_total counter
lbd_kvs_connections_total{node="lb1",tenant="user1"} 11
# HELP lbd_kvs_hits_total Get hits.
# TYPE lbd_kvs_hits_total counter
lbd_kvs_hits_total{node="lb1",tenant="user1"} 9
# HELP lbd_kvs_items Items in the tenant's store.
# TYPE lbd_kvs_items gauge
lbd_kvs_items{node="lb1",tenant="user1"} 5
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := api.NewCollector(apitest.New())
			if err := testutil.CollectAndCompare(c, strings.NewReader(tt.want), tt.metrics...); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCollectorLint(t *testing.T) {
	probs, err := testutil.CollectAndLint(api.NewCollector(apitest.New()))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestCollectorBackendDown(t *testing.T) {
	f := apitest.New()
	f.Err = errors.New("daemon busy")
	want := `
# HELP lbd_status_up 1 if the daemon's status could be read at this scrape.
# TYPE lbd_status_up gauge
lbd_status_up 0
`
	c := api.NewCollector(f)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
