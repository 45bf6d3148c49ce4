package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// ErrShutdown is returned by a Node that is shut down.
var ErrShutdown = errors.New("cluster: node is shut down")

// errNotLeader: this node is not the leader and nothing was written; the
// caller may look for the leader again.
var errNotLeader = errors.New("cluster: not the leader")

// Node is one member of the raft cluster: it implements Store over a raft
// FSM, and serves the node-to-node RPC and raft on one mutual-TLS listener.
type Node struct {
	opts   Options
	log    *slog.Logger
	fsm    *fsm
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	bolt   *raftboltdb.BoltStore
	mux    *mux
	rpc    *http.ServeMux
	server *http.Server
	client *http.Client

	restoresAtOpen uint64

	ctx      context.Context // the node's lifetime
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutdown sync.Once
	shutErr  error
}

var _ Store = (*Node)(nil)

// Open starts a node: it opens (or creates) the raft data under
// opts.DataDir, listens on opts.Bind, bootstraps when this node is in
// opts.Bootstrap and has no raft state, and otherwise, when it has no raft
// state, asks the known peers to add it (in the background, with backoff).
// Open does not wait for a leader; ctx bounds only Open itself.
func Open(ctx context.Context, opts Options) (*Node, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := opts.Logger.With("node", opts.NodeID)
	n := &Node{opts: opts, log: log, fsm: newFSM(log), rpc: http.NewServeMux()}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			n.Shutdown()
		}
	}()
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: data dir: %w", err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(opts.DataDir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second},
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("cluster: open %s: locked by another process (another lbd on this data dir?)", filepath.Join(opts.DataDir, "raft.db"))
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: open %s: %w", filepath.Join(opts.DataDir, "raft.db"), err)
	}
	n.bolt = bolt
	logs, err := raft.NewLogCache(512, bolt)
	if err != nil {
		return nil, fmt.Errorf("cluster: log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(opts.DataDir, opts.RetainSnapshots, newHclog(n.log, "snapshot"))
	if err != nil {
		return nil, fmt.Errorf("cluster: snapshot store: %w", err)
	}

	ln, err := net.Listen("tcp", opts.Bind)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen %s: %w", opts.Bind, err)
	}
	n.mux = newMux(ln, serverTLS(opts.TLS), advertiseAddr(opts.Advertise), n.log)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.mux.serve() }()
	clientTLS := opts.TLS.Clone()
	n.client = newRPCClient(clientTLS)

	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{chanListener: n.mux.raft, clientTLS: clientTLS, stop: n.ctx.Done()},
		MaxPool: 3,
		// No pipelining: with raft's default of 2 in flight, a refused
		// append can deadlock a follower's replication and Shutdown
		// (hashicorp/raft's pipeline; grafana/pyroscope#5518 disables it
		// for the same reason). raft's docs find it of little benefit.
		MaxRPCsInFlight: 1,
		Timeout:         10 * time.Second,
		Logger:          newHclog(n.log, "transport"),
	})

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(opts.NodeID)
	conf.Logger = newHclog(n.log, "raft")
	conf.SnapshotThreshold = opts.SnapshotThreshold
	conf.TrailingLogs = opts.TrailingLogs
	conf.SnapshotInterval = opts.SnapshotInterval
	conf.HeartbeatTimeout = opts.HeartbeatTimeout
	conf.ElectionTimeout = opts.ElectionTimeout
	conf.LeaderLeaseTimeout = opts.LeaderLeaseTimeout
	conf.CommitTimeout = opts.CommitTimeout
	// Larger batches than raft's 64: one fsync carries more writes
	// under load (BenchmarkPropose: about three times the writes/s).
	conf.MaxAppendEntries = 512
	if err := raft.ValidateConfig(conf); err != nil {
		return nil, fmt.Errorf("cluster: raft config: %w", err)
	}

	has, err := raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		return nil, fmt.Errorf("cluster: read raft state: %w", err)
	}
	inBootstrap := false
	for _, s := range opts.Bootstrap {
		inBootstrap = inBootstrap || s.ID == opts.NodeID
	}
	if !has && inBootstrap {
		var cfg raft.Configuration
		for _, s := range opts.Bootstrap {
			suf := raft.Nonvoter
			if s.Voter {
				suf = raft.Voter
			}
			cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address), Suffrage: suf})
		}
		if err := raft.BootstrapCluster(conf, logs, bolt, snaps, n.trans, cfg); err != nil {
			return nil, fmt.Errorf("cluster: bootstrap: %w", err)
		}
		n.log.Info("cluster: bootstrapped", "servers", len(cfg.Servers))
	}
	r, err := raft.NewRaft(conf, n.fsm, logs, bolt, snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	n.raft = r
	n.restoresAtOpen = n.fsm.restores.Load()

	n.routes()
	n.server = &http.Server{Handler: n.rpc, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)}
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.server.Serve(n.mux.http) }()

	if !has && !inBootstrap {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.joinLoop() }()
	}
	ok = true
	return n, nil
}

// serverTLS is the listener's TLS: the caller's config offering both ALPN
// protocols (also through GetConfigForClient when the caller set one).
func serverTLS(base *tls.Config) *tls.Config {
	protos := []string{ProtoRaft, protoHTTP}
	cfg := base.Clone()
	cfg.NextProtos = protos
	if get := base.GetConfigForClient; get != nil {
		cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hi)
			if err != nil || c == nil {
				return c, err
			}
			c = c.Clone()
			c.NextProtos = protos
			return c, nil
		}
	}
	return cfg
}

// Shutdown stops raft, the listener and the RPC server, and closes the
// raft data. It does not leave the cluster (see Remove). Safe to call twice.
func (n *Node) Shutdown() error {
	n.shutdown.Do(func() {
		n.cancel()
		var errs []error
		// Raft is told to stop, its transport closes (so that no
		// replication waits on a peer), then raft's goroutines are joined.
		var stopped raft.Future
		if n.raft != nil {
			stopped = n.raft.Shutdown()
		}
		if n.trans != nil {
			n.trans.CloseStreams() // the pooled outgoing connections
			errs = append(errs, n.trans.Close())
		}
		if n.mux != nil {
			n.mux.close()
		}
		if stopped != nil {
			errs = append(errs, stopped.Error())
		}
		if n.server != nil {
			errs = append(errs, n.server.Close())
		}
		if n.client != nil {
			n.client.CloseIdleConnections()
		}
		n.wg.Wait()
		if n.bolt != nil {
			errs = append(errs, n.bolt.Close())
		}
		n.shutErr = errors.Join(errs...)
	})
	return n.shutErr
}

// ID is this node's id.
func (n *Node) ID() string { return n.opts.NodeID }

// Address is this node's advertised address.
func (n *Node) Address() string { return n.opts.Advertise }

// Get implements Store.
func (n *Node) Get(key string) (Entry, bool) { return n.fsm.get(key) }

// List implements Store.
func (n *Node) List(prefix string) []Entry { return n.fsm.list(prefix) }

// AppliedIndex implements Store: the index of the last write applied on
// this node.
func (n *Node) AppliedIndex() uint64 { return n.fsm.index() }

// Watch implements Store.
func (n *Node) Watch(ctx context.Context) <-chan uint64 { return n.fsm.watch(ctx.Done()) }

// Propose implements Store. On the leader the transaction is applied to
// raft; on a follower it is forwarded to the leader over the RPC. It
// returns the write's index once the write is committed and applied on
// this node, with ErrConflict (errors.Is) when an IfVersion did not match
// (the index is then that of the refused entry, and nothing was written).
// With no leader known within Options.LeaderWait it fails with an error
// that is ErrNoLeader and says what is missing; when leadership is lost
// while the write was in flight it is ErrNoLeader too, but the write may
// still commit (the caller re-reads to know). An invalid transaction
// (ValidateOps) is refused before anything is proposed.
func (n *Node) Propose(ctx context.Context, ops ...Op) (uint64, error) {
	data, err := encodeTxn(ops)
	if err != nil {
		return 0, err
	}
	idx, err := n.onLeader(ctx, n.opts.LeaderWait, pathPropose, data, func(ctx context.Context) (uint64, error) {
		return n.applyLocal(ctx, data)
	})
	if idx == 0 {
		return 0, err
	}
	if werr := n.waitApplied(ctx, idx); werr != nil {
		return idx, fmt.Errorf("cluster: write %d committed, not yet applied on %s: %w", idx, n.opts.NodeID, werr)
	}
	return idx, err
}

// Submit proposes ops on this node, which must be the leader (nothing is
// forwarded: ErrNoLeader otherwise), and returns at once with a function
// that waits for the outcome as Propose reports it. Submissions from one
// goroutine enter the log in call order, so a writer may submit a write
// that depends (Op.IfHash) on one still in flight.
func (n *Node) Submit(ctx context.Context, ops ...Op) (wait func() (uint64, error), err error) {
	data, err := encodeTxn(ops)
	if err != nil {
		return nil, err
	}
	if n.ctx.Err() != nil {
		return nil, ErrShutdown
	}
	if !n.IsLeader() {
		return nil, fmt.Errorf("%w: %s is not the leader", ErrNoLeader, n.opts.NodeID)
	}
	f := n.raft.Apply(data, n.timeoutOf(ctx))
	return func() (uint64, error) {
		idx, rerr := n.await(ctx, f)
		if idx == 0 {
			if ctx.Err() != nil {
				rerr = fmt.Errorf("%w: %w", ErrNoLeader, rerr)
			}
			return 0, rerr
		}
		if werr := n.waitApplied(ctx, idx); werr != nil {
			return idx, fmt.Errorf("cluster: write %d committed, not yet applied on %s: %w", idx, n.opts.NodeID, werr)
		}
		return idx, rerr
	}, nil
}

// applyLocal applies a transaction on this node as the leader.
func (n *Node) applyLocal(ctx context.Context, data []byte) (uint64, error) {
	return n.await(ctx, n.raft.Apply(data, n.timeoutOf(ctx)))
}

// await waits for a write this node applied as the leader: its index and
// the FSM's answer once committed, or why it was not (0).
func (n *Node) await(ctx context.Context, f raft.ApplyFuture) (uint64, error) {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return 0, n.raftErr(err)
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("cluster: write in flight (it may still commit): %w", ctx.Err())
	}
	if err, ok := f.Response().(error); ok {
		return f.Index(), err
	}
	return f.Index(), nil
}

// raftErr maps raft's errors to the package's.
func (n *Node) raftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before it was written: look for the leader again.
		return errNotLeader
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %s lost the leadership while committing (the write may or may not be applied; re-read): %s", ErrNoLeader, n.opts.NodeID, n.quorumNeeds())
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %s could not enqueue the write in time", ErrNoLeader, n.opts.NodeID)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	}
	return fmt.Errorf("cluster: raft: %w", err)
}

// onLeader runs local on this node if it is the leader, and otherwise
// posts body to path on the leader; it looks for a leader for at most wait
// (or until ctx ends), retrying while nothing was written. It returns the
// index the leader reports.
func (n *Node) onLeader(ctx context.Context, wait time.Duration, path string, body []byte, local func(context.Context) (uint64, error)) (uint64, error) {
	deadline := time.Now().Add(wait)
	var last error
	for {
		if n.ctx.Err() != nil {
			return 0, ErrShutdown
		}
		if n.raft.State() == raft.Leader {
			idx, err := local(ctx)
			if !errors.Is(err, errNotLeader) {
				return idx, err
			}
			last = err
		} else if addr, id := n.raft.LeaderWithID(); addr != "" {
			idx, err := n.post(ctx, string(addr), path, body)
			var remote *remoteError
			switch {
			case err == nil || errors.As(err, &remote) && !errors.Is(err, errNotLeader):
				return idx, err
			case !errors.Is(err, errNotLeader) && !isDialErr(err):
				// Sent, but no answer: the outcome is unknown.
				return 0, fmt.Errorf("%w: leader %s (%s) did not answer (a write may or may not be committed; re-read): %v", ErrNoLeader, id, addr, err)
			}
			last = fmt.Errorf("leader %s (%s): %w", id, addr, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, n.noLeaderErr(wait, last)
		}
		select {
		case <-ctx.Done():
		case <-n.ctx.Done():
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// quorumNeeds says what a leader needs.
func (n *Node) quorumNeeds() string {
	var voters []string
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters = append(voters, string(s.ID))
			}
		}
	}
	if len(voters) == 0 {
		return "this node is in no cluster configuration yet (not bootstrapped, not joined)"
	}
	return fmt.Sprintf("a leader needs %d of the voters %v to reach each other", len(voters)/2+1, voters)
}

// noLeaderErr says what is missing when no leader answers.
func (n *Node) noLeaderErr(wait time.Duration, last error) error {
	msg := fmt.Sprintf("%s found no leader within %s (term %d): %s", n.opts.NodeID, wait.Round(time.Millisecond), n.raft.CurrentTerm(), n.quorumNeeds())
	if last != nil {
		msg += "; last try: " + last.Error()
	}
	return fmt.Errorf("%w: %s", ErrNoLeader, msg)
}

// WaitApplied returns once this node has applied the write at index idx
// (an index another node's Propose returned, say), or ctx's error.
func (n *Node) WaitApplied(ctx context.Context, idx uint64) error { return n.waitApplied(ctx, idx) }

// waitApplied returns once this node's FSM has applied index idx.
func (n *Node) waitApplied(ctx context.Context, idx uint64) error {
	if n.fsm.index() >= idx {
		return nil
	}
	done := make(chan struct{})
	defer close(done)
	ch := n.fsm.watch(done)
	for n.fsm.index() < idx {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.ctx.Done():
			return ErrShutdown
		}
	}
	return nil
}

// isDialErr: the request never left this node (safe to retry).
func isDialErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
