package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/cluster/certs"
)

// pathReconciled is the daemon's node-to-node call: a node's reconciled
// index (served on the cluster's mutual-TLS listener).
const pathReconciled = "/lbd/v1/reconciled"

// peerTimeout bounds one node-to-node progress call.
const peerTimeout = 2 * time.Second

// openRaft opens this node's raft node (pkg/cluster) as the file's
// cluster section says: the voters bootstrap together, the other nodes
// join through them as non-voters.
func (d *Daemon) openRaft(ctx context.Context) (cluster.Store, clusterControl, error) {
	cfg, me := d.cfg, d.node
	paths := cfg.Cluster.TLS.ForNode(me.Name)
	loader, err := certs.NewLoader(paths.Cert, paths.Key, paths.CA)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster certificate of node %s: %w", me.Name, err)
	}
	voters := cfg.ClusterVoters()
	var boot []cluster.Server
	for _, n := range cfg.Nodes {
		if slices.Contains(voters, n.Name) {
			boot = append(boot, cluster.Server{ID: n.Name, Address: cfg.ClusterAddr(n), Voter: true})
		}
	}
	tlsConf := loader.Config()
	n, err := cluster.Open(ctx, cluster.Options{
		NodeID:    me.Name,
		Advertise: cfg.ClusterAddr(me),
		DataDir:   filepath.Join(d.stateDir(cfg), "raft"),
		TLS:       tlsConf,
		Bootstrap: boot,
		Logger:    d.log.With("component", "cluster"),

		SnapshotThreshold: uint64(cfg.Cluster.RaftSnapshotThreshold),
		SnapshotInterval:  cfg.Cluster.RaftSnapshotInterval.D(),
		TrailingLogs:      uint64(cfg.Cluster.RaftTrailingLogs),

		HeartbeatTimeout:   cfg.Cluster.RaftHeartbeatTimeout.D(),
		ElectionTimeout:    cfg.Cluster.RaftElectionTimeout.D(),
		LeaderLeaseTimeout: cfg.Cluster.RaftLeaderLeaseTimeout.D(),
		CommitTimeout:      cfg.Cluster.RaftCommitTimeout.D(),
	})
	if err != nil {
		return nil, nil, err
	}
	rc := &raftControl{n: n, name: me.Name, tls: tlsConf}
	n.Handle("GET "+pathReconciled, rc)
	n.Handle("POST "+pathChanges, http.HandlerFunc(d.serveChanges))
	return n, rc, nil
}

// raftControl is the clusterControl of a raft node.
type raftControl struct {
	n    *cluster.Node
	name string
	// tls is the cluster's mutual TLS (client certificates required), as
	// the raft transport uses it: the storage tier's peer listener too.
	tls        *tls.Config
	reconciled atomic.Uint64
}

// progress is the answer of pathReconciled.
type progress struct {
	Name            string `json:"name"`
	ReconciledIndex uint64 `json:"reconciled_index"`
}

// ServeHTTP answers pathReconciled.
func (r *raftControl) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(progress{Name: r.name, ReconciledIndex: r.reconciled.Load()})
}

func (r *raftControl) WaitCaughtUp(ctx context.Context) error { return r.n.WaitCaughtUp(ctx) }
func (r *raftControl) SetReconciled(index uint64)             { r.reconciled.Store(index) }
func (r *raftControl) Close() error                           { return r.n.Shutdown() }

func (r *raftControl) Freshness() api.Freshness {
	st := r.n.Status()
	return api.Freshness{AppliedIndex: st.AppliedIndex, Leader: st.LeaderID, LastContact: st.LastContact}
}

func (r *raftControl) Join(ctx context.Context, req api.JoinRequest) error {
	_, err := r.n.Join(ctx, cluster.Server{ID: req.Name, Address: req.Address, Voter: req.Voter})
	return err
}

func (r *raftControl) Remove(ctx context.Context, name string) error {
	_, err := r.n.Remove(ctx, name)
	return err
}

// peerProgress asks the node at address for its reconciled index.
func (r *raftControl) peerProgress(ctx context.Context, address string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cluster.PeerURL(address, pathReconciled), nil)
	if err != nil {
		return 0, err
	}
	resp, err := r.n.Client().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", address, resp.Status)
	}
	var p progress
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return 0, fmt.Errorf("%s: %w", address, err)
	}
	return p.ReconciledIndex, nil
}

// Reconciled asks every server of the configuration, in parallel.
func (r *raftControl) Reconciled(ctx context.Context) ([]api.NodeApplied, error) {
	servers, err := r.n.Servers()
	if err != nil {
		return nil, err
	}
	out := make([]api.NodeApplied, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		out[i].Name = s.ID
		if s.ID == r.name {
			out[i].ReconciledIndex = r.reconciled.Load()
			continue
		}
		wg.Go(func() {
			idx, err := r.peerProgress(ctx, s.Address)
			out[i].ReconciledIndex = idx
			if err != nil {
				out[i].Error = err.Error()
			}
		})
	}
	wg.Wait()
	return out, nil
}

// Status asks every member for its raft status and its reconciled index.
func (r *raftControl) Status(ctx context.Context) (api.ClusterStatus, error) {
	self := r.n.Status()
	st := api.ClusterStatus{
		Mode: "raft", Node: r.name, Leader: self.LeaderID, Term: self.Term,
		AppliedIndex: self.AppliedIndex, LastContact: self.LastContact,
	}
	members, err := r.n.Members(ctx)
	if err != nil {
		return st, err
	}
	progress, _ := r.Reconciled(ctx)
	rec := map[string]uint64{}
	for _, p := range progress {
		rec[p.Name] = p.ReconciledIndex
	}
	voters := 0
	for _, m := range members {
		cm := api.ClusterMember{Name: m.ID, Address: m.Address, Voter: m.Voter, State: "unreachable", Error: m.Error,
			ReconciledIndex: rec[m.ID]}
		if m.Voter {
			voters++
		}
		if m.Reachable {
			cm.State = strings.ToLower(m.Status.State)
			cm.LastContact, cm.AppliedIndex = m.Status.LastContact, m.Status.AppliedIndex
			cm.SnapshotsInstalled = m.Status.SnapshotsInstalled
		}
		st.Members = append(st.Members, cm)
	}
	st.Survives = survives(voters, len(members))
	return st, nil
}

// survives says plainly what a cluster of voters (of members) survives.
func survives(voters, members int) string {
	others := "; every node keeps enforcing its last applied state meanwhile"
	switch {
	case voters == 0:
		return "no voter known"
	case voters == 1 && members == 1:
		return "one node: it is the whole cluster"
	case voters == 1:
		return "1 voter: writes stop while it is down (losing a non-voter loses nothing)" + others
	case voters == 2:
		return "2 voters: writes stop while either is down (raft needs both)" + others
	}
	q := voters/2 + 1
	return fmt.Sprintf("%d voters: writes go on with up to %d of them down (a quorum is %d)%s", voters, voters-q, q, others)
}
