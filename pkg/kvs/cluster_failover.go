package kvs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/healthcheck"
	"github.com/lbd-project/lbd/pkg/slots"
)

// Failover and the primary's lease.
//
// The raft leader probes every storage node's peer listener with the
// memcached "version" check of pkg/healthcheck, MonitorInterval apart; a
// node is down after MonitorThreshold failed probes (Flare's
// monitor-interval x monitor-threshold), and the leader then fails over the
// slots whose primary it was, in one compare-and-set per tenant
// (slots.Failover: an in-sync backup promoted, the epoch bumped).
//
// A probe also renews the probed node's lease: a node serves its primary
// slots only while its last probe is younger than two thirds of
// MonitorInterval x MonitorThreshold. A primary cut off from the leader thus
// stops answering before the leader can declare it down and promote a
// backup, and never serves a read the new primary could contradict.
//
// A lease proves that the leader reaches the node, not that the node's slot
// maps are current: a node back from a partition (or whose cluster state
// lags) would serve, under the map it had, slots that moved meanwhile. So a
// probe extends a running lease, but one that lapsed is granted again only
// once the node has caught up with the cluster state: a write through it
// (a barrier: Propose returns once the write is applied here, and with it
// every earlier one) and a refresh of its maps. A node that cannot write to
// the cluster state does not serve as a primary.

// leaseFor is how long a probe lets a node serve as a primary.
func (o *ClusterOptions) leaseFor() time.Duration {
	return o.MonitorInterval * time.Duration(o.MonitorThreshold) * 2 / 3
}

// renewLease extends the node's lease from now: at once if it is running,
// after a barrier if it lapsed (see above).
func (n *clusterNode) renewLease() {
	now := time.Now()
	until := now.Add(n.opts.leaseFor()).UnixNano()
	if now.UnixNano() < n.lease.Load() {
		raiseLease(&n.lease, until)
		return
	}
	if !n.syncing.CompareAndSwap(false, true) {
		return // a barrier is under way
	}
	go func() {
		defer n.syncing.Store(false)
		if err := n.barrier(); err != nil {
			n.log.Debug("kvs: lease not renewed: cluster state not reached", "err", err)
			return
		}
		n.log.Debug("kvs: lease granted again after a barrier", "barrier", time.Since(now))
		raiseLease(&n.lease, until)
		n.notify() // the requests waiting for the lease run now
	}()
}

// barrier brings the node's slot maps up to date with the cluster state:
// it writes the node's address record again (unchanged) and refreshes
// every tenant's map once that write is applied here.
func (n *clusterNode) barrier() error {
	rec, _ := json.Marshal(nodeRecord{Peer: n.addr})
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.RequestTimeout)
	defer cancel()
	if _, err := n.opts.Store.Propose(ctx, cluster.Op{Key: NodeKey(n.opts.Node), Value: rec}); err != nil {
		return fmt.Errorf("kvs: barrier: %w", err)
	}
	n.refreshAll()
	return nil
}

// raiseLease raises v to at least until.
func raiseLease(v *atomic.Int64, until int64) {
	for {
		c := v.Load()
		if c >= until || v.CompareAndSwap(c, until) {
			return
		}
	}
}

// serving reports whether this node may serve its primary slots now.
func (r *router) serving() bool {
	return r.n.opts.Static || time.Now().UnixNano() < r.n.lease.Load()
}

// servingSlot reports whether this node may serve slot now: it holds a
// lease and has not fenced the slot at its epoch (see replicator.fenced).
func (r *router) servingSlot(slot int) bool {
	m := r.m.Load()
	return r.serving() && (m == nil || !r.repl.isFenced(slot, m.Slots[slot].Epoch))
}

// leadership confirms, for the monitor, that this node still leads. A
// probe renews the probed node's lease, and the leader probes itself too;
// raft's IsLeader stays true on a leader cut off from the others until
// raft's leader lease runs out (hashicorp/raft steps down then), and the
// monitor stops probing only at its next look: meanwhile its probes would
// keep granting leases (its own and those of the nodes on its side) while
// a new leader, elected on the other side, fails their slots over. So
// each probe waits for a confirmation (VerifyLeader: a quorum answered a
// heartbeat) that started less than a MonitorInterval before. A quorum
// that answered one started at T can elect another leader only once one of
// its members has heard nothing for raft's heartbeat timeout, after T
// (less a heartbeat's round trip: hashicorp/raft also counts the answer to
// a heartbeat in flight when the confirmation started, see
// TestVerifyLeader in pkg/cluster); a probe confirmed by it reaches its
// node by T + 2 MonitorIntervals (its connect timeout is one), so the last
// lease it grants ends by T + 2 MonitorIntervals + leaseFor, before the
// new leader can have failed the node over (its own probes of a node cut
// off time out, MonitorThreshold times, MonitorInterval apart).
type leadership struct {
	verify   func(context.Context) error
	interval time.Duration
	since    atomic.Int64 // unix ns: the start of the last confirmation
}

// run confirms the leadership every half MonitorInterval until ctx ends.
func (l *leadership) run(ctx context.Context) {
	for {
		start := time.Now()
		vctx, cancel := context.WithTimeout(ctx, l.interval)
		err := l.verify(vctx)
		cancel()
		if err == nil {
			l.since.Store(start.UnixNano())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(l.interval / 2))):
		}
	}
}

// confirmed reports whether a confirmation started less than an interval
// ago.
func (l *leadership) confirmed() bool {
	return time.Now().UnixNano()-l.since.Load() < int64(l.interval)
}

// confirmedDialer dials a probe once the leadership is confirmed (see
// leadership); the probe fails if it is not before its connect timeout.
type confirmedDialer struct {
	base healthcheck.Dialer
	l    *leadership
}

func (d confirmedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	for !d.l.confirmed() {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kvs: monitor: leadership not confirmed: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return d.base.DialContext(ctx, network, addr)
}

// RunMonitor watches the storage nodes and fails their slots over while
// opts.IsLeader reports true, until ctx ends: for a node of the cluster
// state that is not a storage node (a director can be the raft leader).
// A storage node gets the same from JoinCluster with IsLeader set. Uses
// Store, IsLeader, ClientTLS, MonitorInterval, MonitorThreshold and
// RequestTimeout of opts.
func RunMonitor(ctx context.Context, log *slog.Logger, opts ClusterOptions) error {
	if opts.Store == nil || opts.IsLeader == nil {
		return errors.New("kvs: monitor: store and IsLeader required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.defaults()
	n := &clusterNode{opts: opts, log: log, ctx: ctx}
	n.wg.Add(1)
	n.monitorLoop()
	return nil
}

// leaderPoll is how often the monitor looks whether this node became the
// leader, at most: a new leader starts probing at once (the nodes' leases
// lapse while no leader probes them).
const leaderPoll = 50 * time.Millisecond

// monitorLoop runs the health checks of the storage nodes while this node
// is the leader, and fails their slots over when they go down: at once
// when a check says so, and every MonitorInterval.
func (n *clusterNode) monitorLoop() {
	defer n.wg.Done()
	var chk *healthcheck.Checker
	var run struct {
		stop context.CancelFunc
		done chan struct{}
	}
	stopChecker := func() {
		if chk != nil {
			run.stop()
			<-run.done
			chk = nil
		}
	}
	defer stopChecker()
	// down is kicked by a check's transition (a node down or up).
	down := make(chan struct{}, 1)
	kick := func(healthcheck.Transition) {
		select {
		case down <- struct{}{}:
		default:
		}
	}
	var last string // the targets given to chk
	var next time.Time
	ticks := 0
	tick := time.NewTicker(min(leaderPoll, n.opts.MonitorInterval))
	defer tick.Stop()
	for {
		kicked := false
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		case <-down:
			kicked = true
		}
		if !n.opts.IsLeader() {
			stopChecker()
			continue
		}
		if chk == nil {
			last, next = "", time.Time{}
			ctx, stop := context.WithCancel(n.ctx)
			// One connection per storage node kept across probes (see
			// probeDialer), closed with the checker; each probe once the
			// leadership is confirmed (see leadership).
			var dialer healthcheck.Dialer = newProbeDialer(ctx, n.opts.ClientTLS)
			var lead *leadership
			if n.opts.VerifyLeader != nil {
				lead = &leadership{verify: n.opts.VerifyLeader, interval: n.opts.MonitorInterval}
				dialer = confirmedDialer{base: dialer, l: lead}
			}
			chk = healthcheck.New(healthcheck.Options{Logger: n.log, Jitter: -1, OnTransition: kick, Dialer: dialer})
			run.stop, run.done = stop, make(chan struct{})
			go func(chk *healthcheck.Checker, done chan struct{}) {
				defer close(done)
				if lead != nil {
					go lead.run(ctx)
				}
				chk.Run(ctx)
			}(chk, run.done)
		}
		due := !time.Now().Before(next)
		if due {
			next = time.Now().Add(n.opts.MonitorInterval)
			if ts := n.targets(); fmt.Sprint(ts) != last {
				if err := chk.Update(ts); err != nil {
					n.log.Warn("kvs: storage node checks", "err", err)
				}
				last = fmt.Sprint(ts)
			}
		}
		if due || kicked {
			n.failover(chk)
		}
		if due {
			ticks++
			n.rebalance(chk, ticks%rebalanceTicks == 0)
		}
	}
}

// rebalanceTicks is how many monitor intervals apart the leader looks for
// slots to move (see rebalance); moves under way advance every interval.
const rebalanceTicks = 5

// rebalance carries the slots' moves (a rebalance, a node added or
// drained) one step further and, with plan and none under way, starts the
// moves towards an even spread (slots.Rebalance): for each tenant, while
// every storage node is up, by compare-and-set. Every move is
// make-before-break: a new backup joins and is rebuilt before the copy it
// replaces leaves, and a primary moves only to an in-sync backup (the two
// swap), so no slot has fewer in-sync copies meanwhile and no acknowledged
// write is lost; a write in flight at the old primary runs at the new one
// (see cluster_move.go and cluster_settle.go).
func (n *clusterNode) rebalance(chk *healthcheck.Checker, plan bool) {
	for _, st := range chk.States() {
		if !st.Up {
			return
		}
	}
	for _, e := range n.opts.Store.List(slots.KeyPrefix) {
		tenant := strings.TrimPrefix(e.Key, slots.KeyPrefix)
		ctx, cancel := context.WithTimeout(n.ctx, n.opts.RequestTimeout)
		_, err := updateMap(ctx, n.opts.Store, tenant, func(cur *slots.Map) (*slots.Map, error) {
			if !plan && cur.Moving() == 0 {
				return nil, nil
			}
			next, changed, err := slots.Rebalance(cur)
			if err != nil || !changed {
				return nil, err
			}
			if cur.Moving() == 0 {
				n.log.Info("kvs: rebalancing", "tenant", tenant, "slots", next.Moving())
			} else if next.Moving() == 0 {
				n.log.Info("kvs: rebalanced", "tenant", tenant)
			}
			return next, nil
		})
		cancel()
		if err != nil {
			n.log.Error("kvs: rebalance", "tenant", tenant, "err", err)
		}
	}
}

// targets are the storage nodes' peer listeners.
func (n *clusterNode) targets() []healthcheck.Target {
	var ts []healthcheck.Target
	iv := n.opts.MonitorInterval
	mem, _, hasMem, _ := Members(n.opts.Store)
	for _, e := range n.opts.Store.List(NodeKeyPrefix) {
		node := strings.TrimPrefix(e.Key, NodeKeyPrefix)
		if hasMem && mem.State(node) != slots.Active && mem.State(node) != slots.Draining {
			continue // not (or no longer) in the storage tier: not watched
		}
		addr, err := n.peerAddr(node)
		if err != nil {
			continue
		}
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			continue
		}
		ts = append(ts, healthcheck.Target{ID: node, Addr: ap, Spec: healthcheck.Spec{
			Type: healthcheck.Memcached, ConnectTimeout: iv, DelayLoop: iv, DelayBeforeRetry: iv,
			Retry: n.opts.MonitorThreshold - 1, Warmup: -1,
		}})
	}
	return ts
}

// failover commits, for every tenant, the failover of the slots whose
// primary is down.
func (n *clusterNode) failover(chk *healthcheck.Checker) {
	down := map[string]bool{}
	for _, st := range chk.States() {
		if !st.Up {
			down[st.ID] = true
		}
	}
	if len(down) == 0 {
		return
	}
	for _, e := range n.opts.Store.List(slots.KeyPrefix) {
		tenant := strings.TrimPrefix(e.Key, slots.KeyPrefix)
		ctx, cancel := context.WithTimeout(n.ctx, n.opts.RequestTimeout)
		_, err := updateMap(ctx, n.opts.Store, tenant, func(cur *slots.Map) (*slots.Map, error) {
			next, changed := slots.Failover(cur, down)
			if !changed {
				return nil, nil
			}
			n.log.Warn("kvs: failing slots over", "tenant", tenant, "down", keys(down))
			return next, nil
		})
		cancel()
		if err != nil {
			n.log.Error("kvs: failover", "tenant", tenant, "err", err)
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
