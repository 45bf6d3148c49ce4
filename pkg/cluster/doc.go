// Package cluster holds lbd's replicated cluster state: the desired state of
// every node (the configuration as last applied, the runtime changes made
// through the API, the storage tier's slot map, tenants' credentials) as a
// small versioned key/value document.
//
// The data flow is
//
//	request → any node → Propose → raft leader → commit → every node's State → Watch → per-role reconcilers
//
// Writes are transactions of Ops; an Op may carry IfVersion, so a writer
// that validated a new value against the version it read commits only if
// nobody changed that key meanwhile (compare-and-set): the log never holds a
// value that was not validated against its predecessor.
//
// State is the pure state machine (no I/O): the raft FSM and the
// single-node store both apply transactions through it.
//
// # The raft Node
//
// Open starts a *Node, a Store on github.com/hashicorp/raft with
// raft-boltdb/v2 (DataDir/raft.db) and file snapshots (DataDir/snapshots):
//
//	n, err := cluster.Open(ctx, cluster.Options{
//		NodeID: "dir1", Advertise: "10.0.0.1:7946", DataDir: "/var/lib/lbd/raft",
//		TLS:       loader.Config(), // certs.NewLoader(cert, key, ca)
//		Bootstrap: []cluster.Server{{ID: "dir1", Address: "10.0.0.1:7946", Voter: true}, ...},
//		Logger:    log,
//	})
//	defer n.Shutdown()
//
// Reads (Get, List, AppliedIndex, Watch) are local. Propose forwards to
// the leader and returns once the write is committed and applied on this
// node; it fails with ErrConflict (a stale IfVersion; nothing written) or
// ErrNoLeader (no leader within Options.LeaderWait; the message names the
// voters a quorum needs). WaitCaughtUp returns once this node has applied
// what the leader had committed when it was called (the gate before a
// director becomes VRRP master).
//
// Membership: voters in Options.Bootstrap bootstrap together (the same list
// on each); any other node with no raft state asks Options.Join (or the
// bootstrap addresses) to add it, as a non-voter unless JoinAsVoter. Join,
// Remove, Servers, Members (each server's own Status over the RPC), Leader,
// IsLeader, Term and Status answer `lbctl cluster ...`.
//
// # Transport and security
//
// A node has one TCP listener (Bind, announced as Advertise) speaking only
// mutual TLS: both sides present a certificate of the cluster CA (package
// certs makes them). ALPN "lbd-raft" connections go to raft's stream layer;
// any other go to the node-to-node HTTP RPC: /cluster/v1/propose, join,
// remove, barrier and status, plus what other packages register with
// Node.Handle; they call peers with Node.Client and PeerURL.
package cluster
