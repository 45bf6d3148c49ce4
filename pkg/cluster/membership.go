package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Status is one node's view of the cluster, as its status RPC answers.
type Status struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// State is raft's: Leader, Follower, Candidate, Shutdown.
	State string `json:"state"`
	Term  uint64 `json:"term"`
	// AppliedIndex is the index of the last write applied to this node's
	// state (Store.AppliedIndex).
	AppliedIndex uint64 `json:"applied_index"`
	// CommitIndex and LastLogIndex are raft's, as this node knows them.
	CommitIndex  uint64 `json:"commit_index"`
	LastLogIndex uint64 `json:"last_log_index"`
	// LastSnapshotIndex is the index of the newest snapshot on disk.
	LastSnapshotIndex uint64 `json:"last_snapshot_index"`
	LeaderID          string `json:"leader_id,omitempty"`
	LeaderAddress     string `json:"leader_address,omitempty"`
	// LastContact is how long ago this node last heard from the leader
	// (0 on the leader itself, -1 if never).
	LastContact time.Duration `json:"last_contact_ns"`
	// SnapshotsInstalled counts snapshots restored from a leader since
	// this node opened (InstallSnapshot).
	SnapshotsInstalled uint64 `json:"snapshots_installed"`
}

// Member is a server of the configuration with what it said about itself.
type Member struct {
	Server
	// Leader: the server is the leader as this node knows it.
	Leader bool `json:"leader"`
	// Reachable: the server answered its status RPC in time; otherwise
	// Error says why and Status is empty.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	Status    Status `json:"status"`
}

// Status is this node's own status.
func (n *Node) Status() Status {
	addr, id := n.raft.LeaderWithID()
	st := Status{
		ID: n.opts.NodeID, Address: n.opts.Advertise,
		State: n.raft.State().String(), Term: n.raft.CurrentTerm(),
		AppliedIndex:       n.fsm.index(),
		LeaderID:           string(id),
		LeaderAddress:      string(addr),
		SnapshotsInstalled: n.fsm.restores.Load() - n.restoresAtOpen,
		LastContact:        -1,
	}
	stats := n.raft.Stats()
	st.CommitIndex, _ = strconv.ParseUint(stats["commit_index"], 10, 64)
	st.LastLogIndex, _ = strconv.ParseUint(stats["last_log_index"], 10, 64)
	st.LastSnapshotIndex, _ = strconv.ParseUint(stats["last_snapshot_index"], 10, 64)
	if n.raft.State() == raft.Leader {
		st.LastContact = 0
	} else if t := n.raft.LastContact(); !t.IsZero() {
		st.LastContact = time.Since(t)
	}
	return st
}

// Leader returns the leader's id and address as this node knows them
// (empty when there is none).
func (n *Node) Leader() (id, address string) {
	addr, sid := n.raft.LeaderWithID()
	return string(sid), string(addr)
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// VerifyLeader confirms with a quorum of voters that this node still
// leads (raft's VerifyLeader: a heartbeat round, no log entry): an error if
// it does not, or if no quorum answers before ctx ends. A leader cut off
// from the others believes it leads until raft's leader lease runs out;
// this is how it finds out at once.
func (n *Node) VerifyLeader(ctx context.Context) error {
	f := n.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // ends when raft answers (or steps down)
	select {
	case err := <-done:
		if err != nil {
			return n.raftErr(err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: verify leadership: %w", ctx.Err())
	}
}

// Term is raft's current term on this node.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// Servers is the raft configuration as this node has it.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, n.raftErr(err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// membersTimeout bounds each status call of Members.
const membersTimeout = 2 * time.Second

// Members returns every server of the configuration, each asked for its
// status over the RPC (in parallel, at most 2s each and within ctx);
// unreachable ones say so in Error.
func (n *Node) Members(ctx context.Context) ([]Member, error) {
	servers, err := n.Servers()
	if err != nil {
		return nil, err
	}
	leaderID, _ := n.Leader()
	out := make([]Member, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		out[i] = Member{Server: s, Leader: s.ID == leaderID}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.ID == n.opts.NodeID {
				out[i].Reachable, out[i].Status = true, n.Status()
				return
			}
			cctx, cancel := context.WithTimeout(ctx, membersTimeout)
			defer cancel()
			st, err := n.getStatus(cctx, s.Address)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].Reachable, out[i].Status = true, st
		}()
	}
	wg.Wait()
	return out, nil
}

// Join adds a server to the cluster (through the leader): a voter if
// s.Voter, else a non-voter. Adding a server already present with the
// same address and suffrage changes nothing. It returns the index of the
// configuration change.
func (n *Node) Join(ctx context.Context, s Server) (uint64, error) {
	if s.ID == "" || s.Address == "" {
		return 0, fmt.Errorf("cluster: join: id and address are required")
	}
	body, _ := json.Marshal(s)
	idx, err := n.onLeader(ctx, n.opts.LeaderWait, pathJoin, body, func(ctx context.Context) (uint64, error) {
		return n.joinLocal(ctx, s)
	})
	if err != nil {
		return idx, fmt.Errorf("cluster: join %s (%s): %w", s.ID, s.Address, err)
	}
	return idx, nil
}

func (n *Node) joinLocal(ctx context.Context, s Server) (uint64, error) {
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, have := range f.Configuration().Servers {
			if string(have.ID) == s.ID && string(have.Address) == s.Address && (have.Suffrage == raft.Voter) == s.Voter {
				return f.Index(), nil
			}
		}
	}
	var f raft.IndexFuture
	if s.Voter {
		f = n.raft.AddVoter(raft.ServerID(s.ID), raft.ServerAddress(s.Address), 0, n.timeoutOf(ctx))
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(s.ID), raft.ServerAddress(s.Address), 0, n.timeoutOf(ctx))
	}
	if err := f.Error(); err != nil {
		return 0, n.raftErr(err)
	}
	n.log.Info("cluster: added a server", "id", s.ID, "address", s.Address, "voter", s.Voter)
	return f.Index(), nil
}

// Remove removes a server from the cluster (through the leader). The
// removed server's raft stops (its reads stay at what it had applied);
// it takes a new data dir to join again.
func (n *Node) Remove(ctx context.Context, id string) (uint64, error) {
	body, _ := json.Marshal(map[string]string{"id": id})
	idx, err := n.onLeader(ctx, n.opts.LeaderWait, pathRemove, body, func(ctx context.Context) (uint64, error) {
		return n.removeLocal(ctx, id)
	})
	if err != nil {
		return idx, fmt.Errorf("cluster: remove %s: %w", id, err)
	}
	return idx, nil
}

func (n *Node) removeLocal(ctx context.Context, id string) (uint64, error) {
	f := n.raft.RemoveServer(raft.ServerID(id), 0, n.timeoutOf(ctx))
	if err := f.Error(); err != nil {
		return 0, n.raftErr(err)
	}
	n.log.Info("cluster: removed a server", "id", id)
	return f.Index(), nil
}

// barrierLocal waits, on the leader, until every entry committed before
// the call is applied here, and returns the applied index.
func (n *Node) barrierLocal(ctx context.Context) (uint64, error) {
	if err := n.raft.Barrier(n.timeoutOf(ctx)).Error(); err != nil {
		return 0, n.raftErr(err)
	}
	return n.fsm.index(), nil
}

// WaitCaughtUp returns once this node has applied every write the leader
// had committed when it was called (on the leader: a raft barrier). If no
// leader answers before ctx ends (or within Options.LeaderWait when ctx
// has no deadline) it returns an error that is ErrNoLeader: the daemon then
// serves its last state and says so.
func (n *Node) WaitCaughtUp(ctx context.Context) error {
	wait := n.opts.LeaderWait
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	idx, err := n.onLeader(ctx, wait, pathBarrier, nil, n.barrierLocal)
	if err != nil {
		return err
	}
	if err := n.waitApplied(ctx, idx); err != nil {
		return fmt.Errorf("%w: caught up to %d of %d when the wait ended: %v", ErrNoLeader, n.fsm.index(), idx, err)
	}
	return nil
}

// TransferLeadership hands the leadership to another voter, if this node
// has it, and waits for that (bounded by raft's election timeout): call it
// before a planned Shutdown so that writes pause for a round trip instead
// of an election.
func (n *Node) TransferLeadership() error {
	if !n.IsLeader() {
		return nil
	}
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("cluster: transfer leadership: %w", err)
	}
	return nil
}

// Snapshot makes a snapshot now (raft also makes them by itself, per
// SnapshotThreshold).
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("cluster: snapshot: %w", err)
	}
	return nil
}

// joinLoop asks the known peers to add this node until one does.
func (n *Node) joinLoop() {
	peers := n.opts.Join
	if len(peers) == 0 {
		for _, s := range n.opts.Bootstrap {
			peers = append(peers, s.Address)
		}
	}
	if len(peers) == 0 {
		n.log.Warn("cluster: no raft state, not in the bootstrap list and no peers to join: waiting to be added (lbctl cluster join)")
		return
	}
	body, _ := json.Marshal(Server{ID: n.opts.NodeID, Address: n.opts.Advertise, Voter: n.opts.JoinAsVoter})
	backoff := 250 * time.Millisecond
	for {
		for _, p := range peers {
			if p == n.opts.Advertise {
				continue
			}
			_, err := n.post(n.ctx, p, pathJoin, body)
			if err == nil {
				n.log.Info("cluster: joined", "via", p, "voter", n.opts.JoinAsVoter)
				return
			}
			if n.ctx.Err() != nil {
				return
			}
			n.log.Debug("cluster: join", "via", p, "err", err)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
