package config

import (
	"slices"
	"strings"
	"testing"
)

const clusterNodes = `
nodes:
  - {name: st1, role: storage, address: 10.0.0.11}
  - {name: lb1, role: director, address: 10.0.0.1, interface: eth0}
  - {name: st2, role: storage, address: 10.0.0.12}
  - {name: lb2, role: director, address: 10.0.0.2, interface: eth0}
  - {name: st3, role: storage, address: 10.0.0.13}
  - {name: st4, role: storage, address: 10.0.0.14}
`

const clusterTLS = `
cluster:
  tls: {ca: /c/ca.pem, cert: "/c/{node}.pem", key: "/c/{node}-key.pem"}
`

func TestClusterDefaults(t *testing.T) {
	c, err := Parse([]byte(clusterNodes+clusterTLS), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.ClusterVoters(), []string{"lb1", "lb2", "st1", "st2", "st3"}; !slices.Equal(got, want) {
		t.Errorf("voters %v, want %v (directors first, five)", got, want)
	}
	n, _ := c.NodeByName("lb2")
	if got := c.ClusterAddr(n); got != "10.0.0.2:7380" {
		t.Errorf("cluster address %s", got)
	}
	if got := c.Cluster.CatchupTimeoutD(); got != DefaultCatchupTimeout {
		t.Errorf("catchup_timeout %s", got)
	}
	if tls := c.Cluster.TLS.ForNode("lb2"); tls.Cert != "/c/lb2.pem" || tls.Key != "/c/lb2-key.pem" || tls.CA != "/c/ca.pem" {
		t.Errorf("tls for lb2: %+v", tls)
	}
	if !c.Defaults.StorageACLOn() {
		t.Error("storage_acl is not on by default")
	}
	for _, tc := range []struct {
		nodes int
		want  []string
	}{{1, []string{"st1"}}, {2, []string{"lb1"}}, {3, []string{"lb1", "st1", "st2"}}, {4, []string{"lb1", "lb2", "st1"}}} {
		lines := strings.Split(strings.TrimSpace(clusterNodes), "\n")
		c, err := Parse([]byte(strings.Join(lines[:tc.nodes+1], "\n")+clusterTLS), "c.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ClusterVoters(); !slices.Equal(got, tc.want) {
			t.Errorf("%d nodes: voters %v, want %v", tc.nodes, got, tc.want)
		}
	}
	off, err := Parse([]byte(clusterNodes+"defaults: {storage_acl: false}\n"), "c.yaml")
	if err != nil || off.Defaults.StorageACLOn() {
		t.Errorf("storage_acl: false is not off: %v", err)
	}
}

func TestClusterErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{clusterNodes + "cluster:\n  tls: {ca: a}\n", "c.yaml:10: cluster.tls.cert is required"},
		{clusterNodes + clusterTLS + "  voters: [lb1, lb9]\n", "c.yaml:12: voter \"lb9\" is not a node"},
		{clusterNodes + clusterTLS + "  voters: [lb1, lb2, st1, st2]\n", "use an odd number"},
		{clusterNodes + clusterTLS + "  voters: [lb1, lb1, st1]\n", "listed twice"},
		{clusterNodes + clusterTLS + "  port: 70000\n", "c.yaml:12: cluster port 70000 out of range"},
		{strings.Replace(clusterNodes, "10.0.0.11}", "10.0.0.12}", 1) + clusterTLS, "share the address 10.0.0.12"},
		{clusterNodes + clusterTLS + "  kvs_peer_port: 70000\n", "c.yaml:12: kvs_peer_port 70000 out of range"},
		{clusterNodes + clusterTLS + "  port: 7500\n  kvs_peer_port: 7500\n", "c.yaml:13: kvs_peer_port 7500 is the cluster port"},
		{clusterNodes + clusterTLS + "  catchup_timeout: -1s\n", "catchup_timeout must be positive"},
		{clusterNodes + clusterTLS + "  kvs_monitor_interval: -1s\n", "c.yaml:12: invalid duration \"-1s\""},
		{clusterNodes + clusterTLS + "  kvs_monitor_threshold: -2\n", "c.yaml:12: kvs_monitor_threshold -2: want a positive number"},
		{clusterNodes + clusterTLS + "  raft_heartbeat_timeout: 5ms\n", "c.yaml:12: raft_heartbeat_timeout 5ms: want at least 10ms"},
		{clusterNodes + clusterTLS + "  raft_commit_timeout: 500us\n", "c.yaml:12: raft_commit_timeout 500µs: want at least 1ms"},
		{clusterNodes + clusterTLS + "  raft_heartbeat_timeout: 300ms\n", "c.yaml:12: raft_leader_lease_timeout 500ms is longer than the heartbeat timeout 300ms"},
		{clusterNodes + clusterTLS + "  raft_leader_lease_timeout: 2s\n", "raft_leader_lease_timeout 2s is longer than the heartbeat timeout 500ms"},
		{strings.Replace(clusterNodes, "10.0.0.11}", "10.0.0.11, cluster_address: 10.0.0.1:7380}", 1) + clusterTLS, "share the cluster address 10.0.0.1:7380"},
		{strings.Replace(clusterNodes, "10.0.0.11}", "10.0.0.11, cluster_address: nowhere}", 1) + clusterTLS, "c.yaml:3: node \"st1\": cluster_address \"nowhere\": want host:port"},
		{strings.Replace(clusterNodes, "10.0.0.11}", "10.0.0.11, cluster_address: 127.0.0.1:1}", 1), "cluster_address without a cluster section"},
	} {
		_, err := Parse([]byte(tc.yaml), "c.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
}
