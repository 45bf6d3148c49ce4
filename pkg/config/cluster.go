package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// StorageACLOn reports whether storage nodes fence the tenants' ports
// themselves (defaults.storage_acl, true unless the file says false).
func (d Defaults) StorageACLOn() bool { return d.StorageACL == nil || *d.StorageACL }

// ClusterVoters returns the names of the nodes that vote in raft: the
// file's cluster.voters, or the default (see Cluster.Voters); nil without
// a cluster section.
func (c *Config) ClusterVoters() []string {
	if c.Cluster == nil {
		return nil
	}
	if len(c.Cluster.Voters) > 0 {
		return c.Cluster.Voters
	}
	return defaultVoters(c.Nodes)
}

// defaultVoters: the directors, then the storage-only nodes, in file
// order; 5 of them with five or more nodes, 3 with three or four, 1 with
// one or two (two voters would make either node's loss stop every write).
func defaultVoters(nodes []Node) []string {
	var cand []string
	for _, n := range nodes {
		if n.Role.IsDirector() {
			cand = append(cand, n.Name)
		}
	}
	for _, n := range nodes {
		if !n.Role.IsDirector() {
			cand = append(cand, n.Name)
		}
	}
	want := 1
	switch {
	case len(cand) >= 5:
		want = 5
	case len(cand) >= 3:
		want = 3
	case len(cand) == 0:
		return nil
	}
	return cand[:want]
}

// ClusterAddr is where the other nodes reach node's cluster listener.
func (c *Config) ClusterAddr(n Node) string {
	if n.ClusterAddress != "" {
		return n.ClusterAddress
	}
	port := DefaultClusterPort
	if c.Cluster != nil && c.Cluster.Port != 0 {
		port = c.Cluster.Port
	}
	return net.JoinHostPort(n.Address, strconv.Itoa(port))
}

// ForNode returns the TLS paths of node name ("{node}" replaced).
func (t ClusterTLS) ForNode(name string) ClusterTLS {
	r := strings.NewReplacer("{node}", name)
	return ClusterTLS{CA: r.Replace(t.CA), Cert: r.Replace(t.Cert), Key: r.Replace(t.Key)}
}

// CatchupTimeoutD is cluster.catchup_timeout with its default.
func (c *Cluster) CatchupTimeoutD() time.Duration {
	if c == nil || c.CatchupTimeout == nil {
		return DefaultCatchupTimeout
	}
	return c.CatchupTimeout.D()
}

// cluster validates the cluster section and the nodes' cluster_address.
func (k *checker) cluster() {
	for i, n := range k.c.Nodes {
		if n.ClusterAddress == "" {
			continue
		}
		p := at("nodes", i, "cluster_address")
		if k.c.Cluster == nil {
			k.errf(p, "node %q: cluster_address without a cluster section", n.Name)
		} else if err := checkHostPort(n.ClusterAddress); err != nil {
			k.errf(p, "node %q: cluster_address %q: %v", n.Name, n.ClusterAddress, err)
		}
	}
	c := k.c.Cluster
	if c == nil {
		return
	}
	p := func(f string) []any { return at("cluster", f) }
	if c.Port == 0 {
		c.Port = DefaultClusterPort
	}
	if c.Port < 1 || c.Port > 65535 {
		k.errf(p("port"), "cluster port %d out of range 1-65535", c.Port)
	}
	if c.KVSPeerPort == 0 {
		c.KVSPeerPort = DefaultKVSPeerPort
	}
	if c.KVSPeerPort < 1 || c.KVSPeerPort > 65535 {
		k.errf(p("kvs_peer_port"), "kvs_peer_port %d out of range 1-65535", c.KVSPeerPort)
	} else if c.KVSPeerPort == c.Port {
		k.errf(p("kvs_peer_port"), "kvs_peer_port %d is the cluster port: the storage tier's peer listener needs its own", c.KVSPeerPort)
	}
	if c.CatchupTimeout == nil {
		d := Duration(DefaultCatchupTimeout)
		c.CatchupTimeout = &d
	}
	if c.RaftSnapshotThreshold < 0 {
		k.errf(p("raft_snapshot_threshold"), "raft_snapshot_threshold %d: want a positive number of entries", c.RaftSnapshotThreshold)
	}
	if c.RaftTrailingLogs < 0 {
		k.errf(p("raft_trailing_logs"), "raft_trailing_logs %d: want a positive number of entries", c.RaftTrailingLogs)
	}
	if c.RaftSnapshotInterval < 0 {
		k.errf(p("raft_snapshot_interval"), "raft_snapshot_interval must be positive")
	}
	for _, t := range []struct {
		key string
		d   Duration
	}{{"raft_heartbeat_timeout", c.RaftHeartbeatTimeout}, {"raft_election_timeout", c.RaftElectionTimeout}, {"raft_leader_lease_timeout", c.RaftLeaderLeaseTimeout}} {
		if t.d != 0 && t.d.D() < 10*time.Millisecond {
			k.errf(p(t.key), "%s %s: want at least 10ms", t.key, t.d.D())
		}
	}
	if c.RaftCommitTimeout != 0 && c.RaftCommitTimeout.D() < time.Millisecond {
		k.errf(p("raft_commit_timeout"), "raft_commit_timeout %s: want at least 1ms (raft refuses less)", c.RaftCommitTimeout.D())
	}
	if hb, lease := c.RaftHeartbeatTimeout.D(), c.RaftLeaderLeaseTimeout.D(); (hb != 0 || lease != 0) &&
		orDefault(lease, 500*time.Millisecond) > orDefault(hb, 500*time.Millisecond) {
		key := "raft_leader_lease_timeout"
		if lease == 0 {
			key = "raft_heartbeat_timeout"
		}
		k.errf(p(key), "raft_leader_lease_timeout %s is longer than the heartbeat timeout %s (raft refuses that)",
			orDefault(lease, 500*time.Millisecond), orDefault(hb, 500*time.Millisecond))
	}
	if c.CatchupTimeout.D() <= 0 {
		k.errf(p("catchup_timeout"), "catchup_timeout must be positive")
	}
	if c.KVSMonitorThreshold < 0 {
		k.errf(p("kvs_monitor_threshold"), "kvs_monitor_threshold %d: want a positive number of probes", c.KVSMonitorThreshold)
	}
	for _, f := range []struct{ key, v string }{{"ca", c.TLS.CA}, {"cert", c.TLS.Cert}, {"key", c.TLS.Key}} {
		if f.v == "" {
			k.errf(at("cluster", "tls"), "cluster.tls.%s is required: nodes talk over mutual TLS only (lbctl cluster certs init makes the files)", f.key)
		}
	}
	seen := map[string]int{}
	for i, v := range c.Voters {
		pv := at("cluster", "voters", i)
		if _, ok := k.c.NodeByName(v); !ok {
			k.errf(pv, "voter %q is not a node of this file", v)
		}
		if first := seen[v]; first > 0 {
			k.errf(pv, "voter %q listed twice (line %d)", v, first)
		}
		seen[v] = lineOf(k.c.root, pv...)
	}
	switch n := len(c.Voters); {
	case n > 7:
		k.errf(p("voters"), "%d voters: at most 7 (raft's commits slow down with every voter; the others follow as non-voters)", n)
	case n > 2 && n%2 == 0:
		k.errf(p("voters"), "%d voters: use an odd number (%d survive no more failures than %d)", n, n, n-1)
	}
	if len(k.c.Nodes) == 0 {
		k.errf(at("cluster"), "a cluster needs nodes")
	}
	// The storage tier's peer listener is ADDRESS:kvs_peer_port.
	peers := map[string]string{}
	for i, n := range k.c.Nodes {
		if !n.Role.IsStorage() || n.Address == "" {
			continue
		}
		if other, ok := peers[n.Address]; ok {
			k.errf(at("nodes", i, "address"), "storage nodes %q and %q share the address %s: each needs its own for the storage tier's peer listener (kvs_peer_port)", other, n.Name, n.Address)
		}
		peers[n.Address] = n.Name
	}
	// Two nodes on one address need cluster_address to tell them apart.
	addrs := map[string]string{}
	for _, n := range k.c.Nodes {
		if _, err := netip.ParseAddr(n.Address); err != nil && n.ClusterAddress == "" {
			continue // reported by nodes()
		}
		a := k.c.ClusterAddr(n)
		if other, ok := addrs[a]; ok {
			k.errf(at("cluster"), "nodes %q and %q share the cluster address %s (set cluster_address)", other, n.Name, a)
		}
		addrs[a] = n.Name
	}
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port")
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("host %q is not an IP address", host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q out of range 1-65535", port)
	}
	return nil
}

// orDefault is d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
