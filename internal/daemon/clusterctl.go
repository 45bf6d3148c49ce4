package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/cluster"
)

// clusterControl is what the daemon needs of its Store beyond the Store
// interface: catching up, membership, and every member's progress.
type clusterControl interface {
	// WaitCaughtUp returns once the Store has applied what the leader had
	// committed when it was called.
	WaitCaughtUp(ctx context.Context) error
	// Status is the cluster as this node sees it (members' reconciled
	// indexes included where known).
	Status(ctx context.Context) (api.ClusterStatus, error)
	// Freshness is how fresh this node's reads are, without a network call.
	Freshness() api.Freshness
	// Reconciled asks every member for its reconciled index.
	Reconciled(ctx context.Context) ([]api.NodeApplied, error)
	// Join and Remove change the membership.
	Join(ctx context.Context, req api.JoinRequest) error
	Remove(ctx context.Context, name string) error
	// SetReconciled publishes this node's reconciled index to the others.
	SetReconciled(index uint64)
	// leader says whether this node is the leader (a Local store always
	// is) and, if not, the leader's address ("" while none is known).
	leader() (self bool, address string)
	// post sends body to path on the node at address (node-to-node, over
	// the cluster's mutual TLS) and returns the answer's body.
	post(ctx context.Context, address, path string, body []byte) ([]byte, error)
	// Close releases the Store.
	Close() error
}

// openStore opens this node's Store: a Local one without a cluster
// section, the raft node with one.
func (d *Daemon) openStore(ctx context.Context) (cluster.Store, clusterControl, error) {
	if d.cfg.Cluster == nil {
		l, err := cluster.OpenLocal(d.stateDir(d.cfg))
		if err != nil {
			return nil, nil, err
		}
		return l, &localControl{name: d.node.Name, store: l}, nil
	}
	return d.openRaft(ctx)
}

// localControl is the clusterControl of a Local store: one node, its own
// leader, always caught up.
type localControl struct {
	name       string
	store      cluster.Store
	reconciled atomic.Uint64
}

func (l *localControl) WaitCaughtUp(context.Context) error { return nil }

func (l *localControl) Freshness() api.Freshness {
	return api.Freshness{AppliedIndex: l.store.AppliedIndex(), Leader: l.name}
}

func (l *localControl) Status(context.Context) (api.ClusterStatus, error) {
	idx := l.store.AppliedIndex()
	return api.ClusterStatus{
		Mode: "local", Node: l.name, Leader: l.name, AppliedIndex: idx, CaughtUp: true,
		Members:  []api.ClusterMember{{Name: l.name, Voter: true, State: "leader", AppliedIndex: idx, ReconciledIndex: l.reconciled.Load()}},
		Survives: "single node without a cluster section: its state is its own (" + filepath.Join("state_dir", cluster.LocalFile) + ")",
	}, nil
}

func (l *localControl) Reconciled(context.Context) ([]api.NodeApplied, error) {
	return []api.NodeApplied{{Name: l.name, ReconciledIndex: l.reconciled.Load()}}, nil
}

func (l *localControl) Join(context.Context, api.JoinRequest) error {
	return fmt.Errorf("%w: this node has no cluster section; add one (lbctl cluster certs init, then the cluster: keys) to join nodes", api.ErrInvalid)
}

func (l *localControl) Remove(context.Context, string) error {
	return fmt.Errorf("%w: this node has no cluster section", api.ErrInvalid)
}

func (l *localControl) SetReconciled(index uint64) { l.reconciled.Store(index) }

func (l *localControl) Close() error { return nil }

// The daemon answers the API's cluster calls.
var _ api.ClusterBackend = (*Daemon)(nil)

// ClusterStatus implements api.ClusterBackend.
func (d *Daemon) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	ctl := d.control()
	if ctl == nil {
		return api.ClusterStatus{}, fmt.Errorf("daemon: the cluster state is not open yet")
	}
	st, err := ctl.Status(ctx)
	if err != nil {
		return st, err
	}
	d.mu.RLock()
	st.ReconciledIndex, st.Stale = d.st.reconciled, d.st.stale
	st.CaughtUp = d.st.caughtUp
	d.mu.RUnlock()
	return st, nil
}

// Freshness implements api.ClusterBackend.
func (d *Daemon) Freshness() api.Freshness {
	if ctl := d.control(); ctl != nil {
		return ctl.Freshness()
	}
	return api.Freshness{LastContact: -1}
}

// WaitApplied implements api.ClusterBackend: which members have
// reconciled index; with all, polls until every one has or ctx is done
// (then the report says who has not, without an error).
func (d *Daemon) WaitApplied(ctx context.Context, index uint64, all bool) (api.AppliedReport, error) {
	ctl := d.control()
	if ctl == nil {
		return api.AppliedReport{}, fmt.Errorf("daemon: the cluster state is not open yet")
	}
	for {
		nodes, err := ctl.Reconciled(ctx)
		if err != nil && ctx.Err() == nil {
			return api.AppliedReport{}, err
		}
		rep := api.AppliedReport{Index: index, All: len(nodes) > 0}
		for _, n := range nodes {
			n.Applied = n.ReconciledIndex >= index
			rep.All = rep.All && n.Applied
			rep.Nodes = append(rep.Nodes, n)
		}
		slices.SortFunc(rep.Nodes, func(a, b api.NodeApplied) int { return cmpString(a.Name, b.Name) })
		if !all || rep.All {
			return rep, nil
		}
		select {
		case <-ctx.Done():
			return rep, nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// JoinMember implements api.ClusterBackend.
func (d *Daemon) JoinMember(ctx context.Context, req api.JoinRequest) error {
	ctl := d.control()
	if ctl == nil {
		return fmt.Errorf("daemon: the cluster state is not open yet")
	}
	return proposeErr(ctl.Join(ctx, req))
}

// RemoveMember implements api.ClusterBackend.
func (d *Daemon) RemoveMember(ctx context.Context, name string) error {
	ctl := d.control()
	if ctl == nil {
		return fmt.Errorf("daemon: the cluster state is not open yet")
	}
	return proposeErr(ctl.Remove(ctx, name))
}

func (d *Daemon) control() clusterControl {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.ctl
}
