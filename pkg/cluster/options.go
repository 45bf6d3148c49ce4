package cluster

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Server is a member of the raft configuration.
type Server struct {
	// ID is the node's name (unique in the cluster; the file's node name).
	ID string `json:"id"`
	// Address is the node's advertised host:port (raft and RPC share it).
	Address string `json:"address"`
	// Voter: the server votes and counts toward the quorum; otherwise it
	// only receives the log (a non-voter, reading a local copy).
	Voter bool `json:"voter"`
}

// Options configure a Node. Zero values take the defaults noted (raft's
// and Consul's), so only NodeID, Advertise, DataDir and TLS are required.
type Options struct {
	// NodeID is this node's unique name.
	NodeID string
	// Advertise is the host:port peers dial (host a name or IP that the
	// node's certificate carries).
	Advertise string
	// Bind is the host:port to listen on (default: Advertise).
	Bind string
	// DataDir holds raft's log and stable store (raft.db) and snapshots.
	DataDir string
	// TLS is the node's TLS: its certificate (Certificates or
	// GetCertificate/GetClientCertificate), the cluster CA as RootCAs and
	// ClientCAs, ClientAuth tls.RequireAndVerifyClientCert. It serves both
	// sides of every node-to-node connection. certs.Loader makes one.
	// Required: there is no plain-text mode.
	TLS *tls.Config

	// Bootstrap is the initial voter list. A node in it with no raft state
	// bootstraps with it (every voter with the identical list); a node not
	// in it joins through Join (or, if Join is empty, through these
	// servers' addresses).
	Bootstrap []Server
	// Join lists peer addresses asked (with backoff, until one adds this
	// node) when this node has no raft state and is not in Bootstrap.
	Join []string
	// JoinAsVoter asks to join as a voter (default: a non-voter).
	JoinAsVoter bool

	// SnapshotThreshold: log entries between snapshots (default 16384).
	SnapshotThreshold uint64
	// TrailingLogs: entries kept after a snapshot, for followers that
	// are slightly behind (default 10240).
	TrailingLogs uint64
	// SnapshotInterval: how often the threshold is checked (default 30s).
	SnapshotInterval time.Duration
	// RetainSnapshots: snapshots kept on disk (default 2).
	RetainSnapshots int

	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout (default
	// 500ms each) are raft's timing. CommitTimeout
	// (default 10ms; raft's is 50ms) is how long the leader waits, with
	// no new writes, before telling followers the commit index: a write
	// is applied on the followers within one to two of it.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// LeaderWait bounds how long a write (or a join) waits for a leader to
	// be known before it fails with ErrNoLeader (default 3s).
	LeaderWait time.Duration
	// RPCTimeout bounds a node-to-node call whose context has no deadline
	// (default 10s); status calls in Members use at most 2s.
	RPCTimeout time.Duration

	// Logger receives the node's and raft's logs (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Bind == "" {
		o.Bind = o.Advertise
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.SnapshotThreshold == 0 {
		o.SnapshotThreshold = 16384
	}
	if o.TrailingLogs == 0 {
		o.TrailingLogs = 10240
	}
	if o.RetainSnapshots == 0 {
		o.RetainSnapshots = 2
	}
	def(&o.SnapshotInterval, 30*time.Second)
	def(&o.HeartbeatTimeout, 500*time.Millisecond)
	def(&o.ElectionTimeout, 500*time.Millisecond)
	def(&o.LeaderLeaseTimeout, 500*time.Millisecond)
	def(&o.CommitTimeout, 10*time.Millisecond)
	def(&o.LeaderWait, 3*time.Second)
	def(&o.RPCTimeout, 10*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

func (o *Options) validate() error {
	switch {
	case o.NodeID == "":
		return fmt.Errorf("cluster: options: node id: empty")
	case o.DataDir == "":
		return fmt.Errorf("cluster: options: data dir: empty")
	case o.TLS == nil:
		return fmt.Errorf("cluster: options: tls: missing (node-to-node traffic is mutual TLS only)")
	case o.TLS.ClientAuth != tls.RequireAndVerifyClientCert && o.TLS.GetConfigForClient == nil:
		return fmt.Errorf("cluster: options: tls: client auth must be RequireAndVerifyClientCert")
	}
	if _, _, err := net.SplitHostPort(o.Advertise); err != nil {
		return fmt.Errorf("cluster: options: advertise %q: %w", o.Advertise, err)
	}
	if host, _, _ := net.SplitHostPort(o.Advertise); host == "" || net.ParseIP(host).IsUnspecified() {
		return fmt.Errorf("cluster: options: advertise %q: not an address peers can dial", o.Advertise)
	}
	ids := map[string]bool{}
	for i, s := range o.Bootstrap {
		if s.ID == "" || ids[s.ID] {
			return fmt.Errorf("cluster: options: bootstrap[%d]: id %q empty or repeated", i, s.ID)
		}
		ids[s.ID] = true
		if _, _, err := net.SplitHostPort(s.Address); err != nil {
			return fmt.Errorf("cluster: options: bootstrap[%d] (%s): address %q: %w", i, s.ID, s.Address, err)
		}
	}
	return nil
}
