package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/kvs"
	"github.com/lbd-project/lbd/pkg/slots"
)

// kvsJoinTimeout bounds a storage node's join of the storage tier's
// cluster (publishing its peer address takes a raft commit).
const kvsJoinTimeout = 5 * time.Second

// raftNode returns the raft control of this node, nil without a cluster
// section.
func (d *Daemon) raftNode() *raftControl {
	rc, _ := d.control().(*raftControl)
	return rc
}

// kvsReady reports whether this storage node's tier may start tenants:
// always without a cluster section (one node, no slot map); with one, once
// the tier joined the storage tier's cluster (joinKVSCluster), so that a
// clustered tenant is never served alone from this node's own copy.
func (d *Daemon) kvsReady(cfg *config.Config) error {
	if cfg.Cluster == nil || d.kvsJoined.Load() {
		return nil
	}
	return fmt.Errorf("kvs: tenants not started until this node joined the storage tier's cluster")
}

// joinKVSCluster makes this storage node's tier one store with the other
// storage nodes of the cluster state, before its first Apply, retrying
// every kvsPlaceInterval until it succeeds (publishing the node's peer
// address takes a raft commit), then asks for a reconcile.
func (d *Daemon) joinKVSCluster(ctx context.Context, rc *raftControl, cfg *config.Config, node config.Node) {
	port := cfg.Cluster.KVSPeerPort
	if port == 0 {
		port = config.DefaultKVSPeerPort
	}
	last := ""
	for {
		jctx, cancel := context.WithTimeout(ctx, kvsJoinTimeout)
		err := d.sub.kvs.tier.JoinCluster(jctx, kvs.ClusterOptions{
			Node:       node.Name,
			PeerListen: net.JoinHostPort(node.Address, strconv.Itoa(port)),
			Store:      rc.n,
			ServerTLS:  rc.tls.Clone(),
			ClientTLS:  rc.tls.Clone(),
			IsLeader:   rc.n.IsLeader,
			AllowPeer:  d.isClusterNode,

			VerifyLeader: rc.n.VerifyLeader,

			MonitorInterval:  cfg.Cluster.KVSMonitorInterval.D(),
			MonitorThreshold: cfg.Cluster.KVSMonitorThreshold,
		})
		cancel()
		if err == nil {
			d.kvsJoined.Store(true)
			d.log.Info("storage tier joined the cluster", "peer", d.sub.kvs.tier.PeerAddr())
			d.Kick()
			return
		}
		if msg := err.Error(); msg != last {
			d.log.Warn("storage tier cannot join the cluster yet; retrying", "error", err)
			last = msg
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(kvsPlaceInterval):
		}
	}
}

// isClusterNode reports whether a is the address of a node of the
// current configuration (its address or its cluster_address's host).
func (d *Daemon) isClusterNode(a netip.Addr) bool {
	d.mu.RLock()
	cfg := d.cfg
	d.mu.RUnlock()
	a = a.Unmap()
	for _, n := range cfg.Nodes {
		if na, err := netip.ParseAddr(n.Address); err == nil && na.Unmap() == a {
			return true
		}
		if host, _, err := net.SplitHostPort(n.ClusterAddress); err == nil {
			if na, err := netip.ParseAddr(host); err == nil && na.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// kvsPlaceInterval spaces the leader's placement rounds (and its retries).
const kvsPlaceInterval = time.Second

// runKVSCluster starts, with a cluster section, the leader's placement of
// the tenants' slot maps on every node (it acts while the node leads) and
// the storage nodes' monitor on a voter that is not a storage node.
func (d *Daemon) runKVSCluster(ctx context.Context, wg *sync.WaitGroup) {
	if d.raftNode() == nil {
		return
	}
	d.mu.RLock()
	cfg, node := d.cfg, d.node
	d.mu.RUnlock()
	rc := d.raftNode()
	if node.Role.IsStorage() {
		wg.Go(func() { d.joinKVSCluster(ctx, rc, cfg, node) })
	}
	wg.Go(func() { d.runKVSMonitor(ctx, cfg, node) })
	wg.Go(func() {
		t := time.NewTicker(kvsPlaceInterval)
		defer t.Stop()
		last := ""
		// A round is a function of the configuration and the cluster
		// state: once one succeeded as the leader, the next runs only
		// when either changed (each decodes every tenant's map: on a
		// slow machine a round a second cost the leader a sixth of its
		// CPU for nothing).
		type input struct {
			cfg         *config.Config
			term, index uint64
		}
		var done input
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			d.mu.RLock()
			cfg := d.cfg
			d.mu.RUnlock()
			in := input{cfg: cfg, term: rc.n.Term(), index: rc.n.AppliedIndex()}
			if in == done {
				continue
			}
			err := d.placeKVSTenants(ctx, cfg)
			if err == nil && rc.n.IsLeader() && rc.n.Term() == in.term {
				done = in
			}
			if msg := errString(err); msg != last {
				if err != nil {
					d.log.Warn("kvs tenants not placed yet; retrying", "error", err)
				}
				last = msg
			}
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// runKVSMonitor watches the storage nodes and fails their slots over
// while this node is the raft leader: for a voter that is not a storage
// node (a storage node's tier does it itself). Returns at once without a
// cluster section.
func (d *Daemon) runKVSMonitor(ctx context.Context, cfg *config.Config, node config.Node) {
	rc := d.raftNode()
	if rc == nil || node.Role.IsStorage() || !slices.Contains(cfg.ClusterVoters(), node.Name) {
		return
	}
	err := kvs.RunMonitor(ctx, d.log.With("component", "kvs-monitor"), kvs.ClusterOptions{
		Node: node.Name, Store: rc.n, IsLeader: rc.n.IsLeader, VerifyLeader: rc.n.VerifyLeader, ClientTLS: rc.tls.Clone(),
		MonitorInterval: cfg.Cluster.KVSMonitorInterval.D(), MonitorThreshold: cfg.Cluster.KVSMonitorThreshold,
	})
	if err != nil {
		d.log.Error("storage tier monitor", "error", err)
	}
}

// storageNodes are the names of the file's storage nodes, in file order.
func storageNodes(cfg *config.Config) []string {
	var out []string
	for _, n := range cfg.Nodes {
		if n.Role.IsStorage() {
			out = append(out, n.Name)
		}
	}
	return out
}

// placeKVSTenants, on the raft leader, keeps the storage membership
// (seeded from the file's storage nodes when the cluster state has none;
// a member no longer in the file is removed) and places the slot map of
// every tenant that has none, or whose replicas, replication or active
// storage nodes changed (kvs.PlaceMembers). A tenant that fails is
// retried by the next round.
func (d *Daemon) placeKVSTenants(ctx context.Context, cfg *config.Config) error {
	rc := d.raftNode()
	if cfg.Cluster == nil || rc == nil || !rc.n.IsLeader() {
		return nil
	}
	d.mu.RLock()
	cfgIndex := d.st.index
	d.mu.RUnlock()
	file := storageNodes(cfg)
	mctx, cancel := context.WithTimeout(ctx, kvsJoinTimeout)
	mem, err := kvs.ChangeMembers(mctx, rc.n, file, func(cur *slots.Members, _ map[string]*slots.Map) (*slots.Members, error) {
		// Only from a configuration at least as new as the membership:
		// a node just added to the file and then to the tier stays.
		if _, ver, ok, _ := kvs.Members(rc.n); ok && cfgIndex < ver {
			return nil, nil
		}
		next, changed := cur.SyncFile(file)
		if !changed {
			return nil, nil
		}
		d.log.Info("kvs storage nodes no longer in the file leave the storage tier", "active", next.Placement())
		return next, nil
	})
	cancel()
	if err != nil {
		return fmt.Errorf("kvs: placement: %w", err)
	}
	var ts []kvs.TenantPlacement
	for _, t := range cfg.Tenants {
		repl := t.KVS.Replication
		if repl == "" {
			repl = "sync" // the file's default, as config's checks fill it
		}
		ts = append(ts, kvs.TenantPlacement{Tenant: t.Name, Replicas: t.KVS.Replicas, Replication: repl})
	}
	pctx, cancel := context.WithTimeout(ctx, kvsJoinTimeout)
	placed, err := kvs.PlaceMembers(pctx, rc.n, mem, ts)
	cancel()
	for _, t := range placed {
		d.log.Info("kvs tenant placed", "tenant", t, "nodes", mem.Placement())
	}
	if err != nil {
		return fmt.Errorf("kvs: placement: %w", err)
	}
	return nil
}

// KVSClusterStatus implements api.KVSClusterBackend: the storage tier's
// cluster as this storage node sees it.
func (d *Daemon) KVSClusterStatus(context.Context) (kvs.ClusterStatus, error) {
	if !d.node.Role.IsStorage() || d.sub.kvs == nil {
		return kvs.ClusterStatus{}, fmt.Errorf("%w: node %s is not a storage node (ask one: lbctl --socket ... kvs status)", api.ErrNotFound, d.node.Name)
	}
	st, ok := d.sub.kvs.tier.ClusterStatus()
	if !ok {
		return kvs.ClusterStatus{}, fmt.Errorf("%w: node %s has not joined a storage tier cluster (no cluster section, or not yet)", api.ErrNotFound, d.node.Name)
	}
	return st, nil
}
