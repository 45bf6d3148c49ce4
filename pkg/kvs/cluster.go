package kvs

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/slots"
)

// ClusterOptions make a Tier's tenants one store across the storage nodes
// (see JoinCluster).
type ClusterOptions struct {
	// Node is this storage node's name, as in the configuration.
	Node string
	// PeerListen is the host:port of the node-to-node listener (forwarded
	// requests, replication); port 0 lets the kernel choose (tests).
	PeerListen string
	// PeerAdvertise is the address the other nodes dial; the bound address
	// of PeerListen if empty.
	PeerAdvertise string
	// Store is the replicated cluster state: slot maps under
	// slots.Key(tenant), node addresses under NodeKey(node).
	Store cluster.Store
	// ServerTLS, if set, serves the peer listener over TLS (the cluster's
	// mutual TLS: it should require and verify client certificates).
	ServerTLS *tls.Config
	// ClientTLS, if set, dials the other nodes over TLS.
	ClientTLS *tls.Config
	// AllowPeer, if set, admits to the peer listener only connections
	// from the addresses it accepts (the cluster's nodes): the listener
	// serves every tenant's keys and renews the node's lease.
	AllowPeer func(netip.Addr) bool
	// IsLeader reports whether this node is the raft leader, which alone
	// watches the storage nodes and fails slots over; nil: never.
	IsLeader func() bool
	// VerifyLeader, if set, confirms with a quorum that this node still
	// leads (cluster.Node.VerifyLeader): the monitor's probes, which renew
	// the storage nodes' leases, go out only within MonitorInterval of the
	// start of a confirmation, so that a leader deposed without knowing it
	// yet grants no lease for longer than that (see leadership). Nil:
	// IsLeader is trusted alone.
	VerifyLeader func(context.Context) error
	// MonitorInterval and MonitorThreshold: the leader declares a node down
	// after MonitorThreshold failed probes MonitorInterval apart (Flare's
	// monitor-interval and monitor-threshold); 300ms and 3 by default.
	MonitorInterval  time.Duration
	MonitorThreshold int
	// RequestTimeout bounds a forwarded request or a replication
	// acknowledgement; 2s by default.
	RequestTimeout time.Duration
	// Static fixes the membership and the slot maps as the store holds them
	// at start, with no leader: every node serves its primaries without a
	// lease and nothing fails over (benchmarks; a cluster without a
	// replicated state).
	Static bool
	// RebuildBytesPerSec limits the bandwidth of a backup's rebuild;
	// DefaultRebuildBytesPerSec if zero.
	RebuildBytesPerSec int64
}

// defaults fills zero fields.
func (o *ClusterOptions) defaults() {
	if o.MonitorInterval <= 0 {
		o.MonitorInterval = 300 * time.Millisecond
	}
	if o.MonitorThreshold <= 0 {
		o.MonitorThreshold = 3
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 2 * time.Second
	}
	if o.RebuildBytesPerSec <= 0 {
		o.RebuildBytesPerSec = DefaultRebuildBytesPerSec
	}
}

// NodeKeyPrefix is the cluster state's prefix of the storage nodes'
// addresses.
const NodeKeyPrefix = "kvsnodes/"

// NodeKey is the cluster state's key of a storage node's address record.
func NodeKey(node string) string { return NodeKeyPrefix + node }

// nodeRecord is what a storage node publishes under NodeKey.
type nodeRecord struct {
	Peer string `json:"peer"`
}

// clusterNode is a Tier's part of the cluster: its peer listener, its
// connections to the other nodes and a router per tenant.
type clusterNode struct {
	opts   ClusterOptions
	log    *slog.Logger
	tier   *Tier
	ln     net.Listener
	addr   string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	peers   map[peerKey]*peerSet
	routers map[string]*router // tenant
	pconns  map[net.Conn]struct{}
	// psrvs serve the peer connections that run on the event loops,
	// one server per tenant (see loopPeer).
	psrvs  map[*service]*server
	closed bool
	// lease is the unix nanosecond until which this node may serve as a
	// primary without hearing from the leader (see renewLease).
	lease atomic.Int64
	// syncing: a lapsed lease waits for a barrier (see renewLease).
	syncing atomic.Bool
	// cut simulates a network partition (tests): no peer connection in
	// or out.
	cut atomic.Bool
	// changed is closed, and replaced, when something that decides where
	// a request may run changes here: a tenant's map, the lease granted
	// again (see changes).
	chMu    sync.Mutex
	changed chan struct{}
}

// changes returns a channel closed at the next change of a map or of the
// lease: a request waiting to run (see waitVer) takes it before it looks
// at the state, so that no change is missed.
func (n *clusterNode) changes() <-chan struct{} {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	if n.changed == nil {
		n.changed = make(chan struct{})
	}
	return n.changed
}

// notify wakes the requests waiting for a change (see changes).
func (n *clusterNode) notify() {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	if n.changed != nil {
		close(n.changed)
		n.changed = nil
	}
}

// partition cuts the node off from the other nodes (tests), or heals it:
// peer connections are closed and refused both ways.
func (n *clusterNode) partition(cut bool) {
	n.cut.Store(cut)
	if !cut {
		return
	}
	n.mu.Lock()
	for c := range n.pconns {
		c.Close()
	}
	for _, srv := range n.psrvs {
		srv.hangUp()
	}
	peers := n.peers
	n.peers = map[peerKey]*peerSet{}
	routers := n.routerList()
	n.mu.Unlock()
	for _, ps := range peers {
		ps.close()
	}
	for _, r := range routers {
		r.repl.mu.Lock()
		for _, pc := range r.repl.streams {
			if pc.c != nil {
				pc.c.Close()
			}
		}
		r.repl.mu.Unlock()
	}
}

// JoinCluster makes the tier's tenants one store with the other storage
// nodes of the cluster state: it opens the peer listener, publishes this
// node's address under NodeKey(Node), and from then on every tenant this
// tier serves routes its keys by the tenant's slot map (slots.Key(tenant)),
// which must be placed by the leader (see PlaceTenant); a tenant without a
// map answers SERVER_ERROR. Call it before Apply.
func (t *Tier) JoinCluster(ctx context.Context, opts ClusterOptions) error {
	if opts.Node == "" || opts.Store == nil {
		return errors.New("kvs: join cluster: node name and store required")
	}
	opts.defaults()
	ln, err := listen(ctx, opts.PeerListen)
	if err != nil {
		return fmt.Errorf("kvs: join cluster: %w", err)
	}
	if opts.ServerTLS != nil {
		ln = loopTLSListener{ln, opts.ServerTLS}
	}
	addr := opts.PeerAdvertise
	if addr == "" {
		addr = ln.Addr().String()
	}
	rec, _ := json.Marshal(nodeRecord{Peer: addr})
	if _, err := opts.Store.Propose(ctx, cluster.Op{Key: NodeKey(opts.Node), Value: rec}); err != nil {
		ln.Close()
		return fmt.Errorf("kvs: join cluster: publish %s: %w", opts.Node, err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	n := &clusterNode{opts: opts, log: t.log.With("node", opts.Node), tier: t, ln: ln, addr: addr, ctx: cctx, cancel: cancel,
		peers: map[peerKey]*peerSet{}, routers: map[string]*router{}, pconns: map[net.Conn]struct{}{}}
	t.mu.Lock()
	if t.cluster != nil || t.closed || len(t.tenants) > 0 {
		t.mu.Unlock()
		cancel()
		ln.Close()
		return errors.New("kvs: join cluster: already joined, closed, or tenants started")
	}
	t.cluster = n
	t.mu.Unlock()
	n.wg.Add(2)
	go n.acceptLoop()
	go n.watchLoop(opts.Store.Watch(cctx))
	if opts.IsLeader != nil && !opts.Static {
		n.wg.Add(1)
		go n.monitorLoop()
	}
	return nil
}

// PeerAddr is the address of the node's peer listener ("" if not joined).
func (t *Tier) PeerAddr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cluster == nil {
		return ""
	}
	return t.cluster.addr
}

// PlaceTenant creates or re-places a tenant's slot map over nodes (the
// storage nodes, members of the cluster) by compare-and-set, retrying on
// conflicts: the raft leader calls it when a tenant is added or changes its
// replicas, and when storage nodes are added or removed.
func PlaceTenant(ctx context.Context, st cluster.Store, tenant string, nodes []string, replicas int, replication string) (*slots.Map, error) {
	return placeTenant(ctx, st, tenant, nodes, nil, replicas, replication)
}

// placeTenant is PlaceTenant keeping the in-sync copies on draining nodes
// while the slots' new backups are rebuilt (slots.KeepDraining).
func placeTenant(ctx context.Context, st cluster.Store, tenant string, nodes, draining []string, replicas int, replication string) (*slots.Map, error) {
	for {
		e, ok := st.Get(slots.Key(tenant))
		var prev *slots.Map
		if ok {
			var err error
			if prev, err = slots.Decode(e.Value); err != nil {
				return nil, fmt.Errorf("kvs: place %s: %w", tenant, err)
			}
		}
		m, err := slots.Place(prev, nodes, replicas, replication)
		if err != nil {
			return nil, fmt.Errorf("kvs: place %s: %w", tenant, err)
		}
		m = slots.KeepDraining(prev, m, draining)
		_, err = st.Propose(ctx, cluster.Op{Key: slots.Key(tenant), Value: m.Encode(), IfVersion: cluster.Version(e.Version)})
		if errors.Is(err, cluster.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kvs: place %s: %w", tenant, err)
		}
		return m, nil
	}
}

// updateMap read-modify-writes a tenant's slot map by compare-and-set:
// change returns the new map from the current one, or an error to give up.
func updateMap(ctx context.Context, st cluster.Store, tenant string, change func(*slots.Map) (*slots.Map, error)) (*slots.Map, error) {
	for {
		e, ok := st.Get(slots.Key(tenant))
		if !ok {
			return nil, fmt.Errorf("kvs: tenant %s has no slot map", tenant)
		}
		cur, err := slots.Decode(e.Value)
		if err != nil {
			return nil, err
		}
		next, err := change(cur)
		if err != nil || next == nil {
			return cur, err
		}
		_, err = st.Propose(ctx, cluster.Op{Key: slots.Key(tenant), Value: next.Encode(), IfVersion: cluster.Version(e.Version)})
		if errors.Is(err, cluster.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return next, nil
	}
}

// peerAddr resolves a node's peer address from the cluster state.
func (n *clusterNode) peerAddr(node string) (string, error) {
	e, ok := n.opts.Store.Get(NodeKey(node))
	if !ok {
		return "", fmt.Errorf("node %s has no address", node)
	}
	var rec nodeRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil || rec.Peer == "" {
		return "", fmt.Errorf("node %s: bad address record", node)
	}
	return rec.Peer, nil
}

// loopTLSListener is tls.NewListener over connections that can move to an
// event loop after their handshake (see loopConn).
type loopTLSListener struct {
	net.Listener
	cfg *tls.Config
}

func (l loopTLSListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(loopConn(c), l.cfg), nil
}

// dial opens a connection to a node's peer listener and sends hello.
func (n *clusterNode) dial(node, hello string) (net.Conn, error) {
	if n.cut.Load() {
		return nil, fmt.Errorf("node %s: network unreachable", node)
	}
	addr, err := n.peerAddr(node)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: time.Second}
	ctx, cancel := context.WithTimeout(n.ctx, time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if cfg := n.opts.ClientTLS; cfg != nil {
		// As tls.Dialer, over a connection that can move to an event
		// loop after the handshake (see loopConn).
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(loopConn(c), cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("node %s: %w", node, err)
		}
		c = tc
	}
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(hello)); err != nil {
		c.Close()
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}

// peerKey names a peerSet: its node and tenant (a lookup allocates
// nothing: it runs for every forwarded request).
type peerKey struct{ node, tenant string }

// peers returns the connection set to node for tenant.
func (n *clusterNode) peerSet(node, tenant string) *peerSet {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := peerKey{node, tenant}
	ps := n.peers[k]
	if ps == nil {
		ps = &peerSet{n: n, node: node, tenant: tenant, size: peerConnsPerNode}
		// Fixed for the set's life: a session's requests stay on one
		// connection, in order.
		if r := n.routers[tenant]; r != nil && n.tier != nil {
			if m := r.m.Load(); m != nil && m.Replicas == 0 {
				if loops := n.tier.pool.size(); loops > 0 {
					ps.size = min(loops, peerConnsPerNode)
				}
			}
		}
		n.peers[k] = ps
	}
	return ps
}

// watchLoop refreshes every router's map when the cluster state changes.
func (n *clusterNode) watchLoop(ch <-chan uint64) {
	defer n.wg.Done()
	for range ch {
		n.refreshAll()
	}
}

// refreshAll refreshes every tenant's map from the cluster state.
func (n *clusterNode) refreshAll() {
	n.mu.Lock()
	rs := n.routerList()
	n.mu.Unlock()
	for _, r := range rs {
		r.refresh()
	}
}

// routerList returns the tenants' routers, to use outside n.mu (held by
// the caller).
func (n *clusterNode) routerList() []*router {
	rs := make([]*router, 0, len(n.routers))
	for _, r := range n.routers {
		rs = append(rs, r)
	}
	return rs
}

// attach makes svc a clustered tenant's service.
func (n *clusterNode) attach(svc *service) {
	r := &router{n: n, tenant: svc.name, svc: svc}
	svc.router = r
	// Every clustered tenant's writes go through a replicator: its
	// replicas may change at run time.
	r.repl = newReplicator(r, svc.store)
	svc.store = r.repl
	n.mu.Lock()
	n.routers[svc.name] = r
	n.mu.Unlock()
	r.refresh()
}

// detach forgets a stopped tenant.
func (n *clusterNode) detach(svc *service) {
	n.mu.Lock()
	if r := n.routers[svc.name]; r != nil && r.svc == svc {
		delete(n.routers, svc.name)
	}
	srv := n.psrvs[svc]
	delete(n.psrvs, svc)
	n.mu.Unlock()
	if srv != nil {
		srv.close() // the other nodes' connections it serves on the loops
	}
	if r := svc.router; r != nil && r.repl != nil {
		r.repl.close()
	}
}

// service returns a clustered tenant's service.
func (n *clusterNode) service(tenant string) *service {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.routers[tenant]; r != nil {
		return r.svc
	}
	return nil
}

// close stops the peer listener and every peer connection.
func (n *clusterNode) close() {
	n.mu.Lock()
	n.closed = true
	n.ln.Close()
	for c := range n.pconns {
		c.Close()
	}
	peers := n.peers
	n.peers = map[peerKey]*peerSet{}
	psrvs := n.psrvs
	n.psrvs = nil
	n.mu.Unlock()
	n.cancel()
	for _, ps := range peers {
		ps.close()
	}
	n.wg.Wait()
	for _, srv := range psrvs {
		srv.close()
	}
}

// router is a clustered tenant's view of its slot map.
type router struct {
	n      *clusterNode
	tenant string
	svc    *service
	repl   *replicator
	m      atomic.Pointer[slots.Map]
	prims  atomic.Pointer[primaries] // m's, once made
	ver    atomic.Uint64
	sessID atomic.Uint64
	// waiting counts the requests that ran nowhere and wait to be sent
	// again (see waitVer).
	waiting atomic.Int32
	// backups: a slot of the map has backups (see loopSafe).
	backups atomic.Bool
	// refreshMu serializes refresh: the watch, a shrink and a rebuild
	// refresh at once, and a map loaded earlier must not replace a newer
	// one (nor hand takeover the two the wrong way round).
	refreshMu sync.Mutex
}

// primaries is a slot map's primaries, a byte per slot, and epochs, for
// routing: a map's slots are 96 bytes each, and reading one for each key
// of a multi-get missed the cache about as often as the store's index did.
type primaries struct {
	m     *slots.Map
	names []string
	idx   [slots.Count]uint8 // into names
	epoch [slots.Count]uint64
}

// newPrimaries returns m's primaries; nil if m is not one of slots.Count
// slots on at most 256 names.
func newPrimaries(m *slots.Map) *primaries {
	if len(m.Slots) != slots.Count {
		return nil
	}
	p := &primaries{m: m}
	for i := range m.Slots {
		j := slices.Index(p.names, m.Slots[i].Primary)
		if j < 0 {
			if len(p.names) == 256 {
				return nil
			}
			j = len(p.names)
			p.names = append(p.names, m.Slots[i].Primary)
		}
		p.idx[i], p.epoch[i] = uint8(j), m.Slots[i].Epoch
	}
	return p
}

// primariesOf returns the primaries of m, nil if not made yet (then read
// m.Slots).
func (r *router) primariesOf(m *slots.Map) *primaries {
	if p := r.prims.Load(); p != nil && p.m == m {
		return p
	}
	return nil
}

// noBackups reports whether no slot of m has a backup.
func noBackups(m *slots.Map) bool {
	if m.Replicas > 0 {
		return false
	}
	for i := range m.Slots {
		if len(m.Slots[i].Backups) > 0 {
			return false
		}
	}
	return true
}

// loopSafe reports whether a peer session may run on an event loop: the
// tenant has a map and no slot has backups, so that no request waits
// (for backups, or for a read of a write that awaits them). A map that
// adds backups is marked before it is used, but a request that a loop
// started under the old map and that writes under the new one waits on
// the loop, once (see evLoop.process).
func (r *router) loopSafe() bool {
	return r.m.Load() != nil && !r.backups.Load()
}

// refresh loads the tenant's map if it changed, and raises the store's cas
// counter above every epoch's range.
func (r *router) refresh() {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	e, ok := r.n.opts.Store.Get(slots.Key(r.tenant))
	if !ok || e.Version == r.ver.Load() {
		return
	}
	m, err := slots.Decode(e.Value)
	if err != nil {
		r.n.log.Error("kvs: slot map", "tenant", r.tenant, "err", err)
		return
	}
	r.repl.takeover(r.m.Load(), m) // before any request is served under m
	nb := noBackups(m)
	if !nb {
		r.backups.Store(true) // before a loop can see m (see loopSafe)
	}
	r.m.Store(m)
	r.prims.Store(newPrimaries(m))
	r.backups.Store(!nb)
	r.ver.Store(e.Version)
	raiseCAS(r.repl.inner, m.MaxEpoch()<<slots.EpochShift)
	r.repl.mapChanged(m)
	r.n.notify()
}

// owner returns the node that serves key's slot.
func (r *router) owner(key []byte) (node string, slot int, ok bool) {
	m := r.m.Load()
	if m == nil {
		return "", 0, false
	}
	slot = slots.Of(key)
	if p := r.primariesOf(m); p != nil {
		return p.names[p.idx[slot]], slot, true
	}
	return m.Slots[slot].Primary, slot, true
}

// SetStorageNodes places every clustered tenant over nodes (the members
// with a new node, or without a drained one), at once: for a store without
// a storage membership (lbd keeps one: ChangeMembers, then the leader's
// PlaceMembers). A node added gets backups,
// rebuilt, then its share of primaries (see rebalance); a node drained
// hands its primaries to their in-sync backups and its backups to the
// others. Watch the maps (or Tier.ClusterStatus) for the end of the move.
func SetStorageNodes(ctx context.Context, st cluster.Store, nodes []string) error {
	for _, e := range st.List(slots.KeyPrefix) {
		m, err := slots.Decode(e.Value)
		if err != nil {
			return fmt.Errorf("kvs: %s: %w", e.Key, err)
		}
		tenant := e.Key[len(slots.KeyPrefix):]
		if _, err := PlaceTenant(ctx, st, tenant, nodes, m.Replicas, m.Replication); err != nil {
			return err
		}
	}
	return nil
}

// RemoveNode forgets a storage node's address once no tenant's map places
// anything on it (drain it first): for a store without a storage
// membership (lbd's `lbctl node remove` marks the member removed instead).
func RemoveNode(ctx context.Context, st cluster.Store, node string) error {
	for _, e := range st.List(slots.KeyPrefix) {
		m, err := slots.Decode(e.Value)
		if err != nil {
			return fmt.Errorf("kvs: %s: %w", e.Key, err)
		}
		for i, s := range m.Slots {
			if s.Primary == node || slices.Contains(s.Backups, node) {
				return fmt.Errorf("kvs: node %s still holds slot %d of %s: drain it first", node, i, e.Key[len(slots.KeyPrefix):])
			}
		}
	}
	e, ok := st.Get(NodeKey(node))
	if !ok {
		return fmt.Errorf("kvs: no storage node %s", node)
	}
	_, err := st.Propose(ctx, cluster.Op{Key: NodeKey(node), Delete: true, IfVersion: cluster.Version(e.Version)})
	return err
}
