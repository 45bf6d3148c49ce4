package cluster

import (
	"context"
	"errors"
)

// Keys of the state that lbd itself uses. Other packages may add their own
// under a prefix of their own ("slots/", "credentials/").
const (
	// KeyConfig holds the configuration file as last applied cluster-wide.
	KeyConfig = "config"
	// KeyOverlay holds the runtime changes made on top of it.
	KeyOverlay = "overlay"
)

// Errors a Store returns; callers test them with errors.Is.
var (
	// ErrConflict: an Op's IfVersion did not match; nothing was written.
	// The caller re-reads, re-validates and tries again.
	ErrConflict = errors.New("cluster: version conflict")
	// ErrNoLeader: no leader answers (no quorum, or an election is under
	// way); nothing was written.
	ErrNoLeader = errors.New("cluster: no leader")
)

// Entry is a key's value as applied on this node.
type Entry struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
	// Version is the index of the write that last set the key (never 0
	// for a present key).
	Version uint64 `json:"version"`
}

// Op is one write of a transaction.
type Op struct {
	Key string `json:"key"`
	// Value is the new value; ignored with Delete.
	Value  []byte `json:"value,omitempty"`
	Delete bool   `json:"delete,omitempty"`
	// IfVersion, when set, makes the whole transaction fail with
	// ErrConflict unless the key's current version equals it (0: absent).
	IfVersion *uint64 `json:"if_version,omitempty"`
	// IfHash, when set (32 bytes), makes the whole transaction fail with
	// ErrConflict unless the key is present and its value's SHA-256 is
	// IfHash: a writer that knows the value it proposed last can propose
	// the next one on top of it before the first is committed.
	IfHash []byte `json:"if_hash,omitempty"`
}

// Version returns a pointer to v, for Op.IfVersion.
func Version(v uint64) *uint64 { return &v }

// Store is the replicated state as one node sees it. Reads are local (as
// fresh as AppliedIndex); writes go through the leader.
type Store interface {
	// Get returns a key's applied value.
	Get(key string) (Entry, bool)
	// List returns the entries whose key starts with prefix, sorted by key.
	List(prefix string) []Entry
	// AppliedIndex is the index of the last write applied on this node.
	AppliedIndex() uint64
	// Watch returns a channel that receives the applied index after writes
	// are applied (coalesced: a slow reader sees only the latest). It is
	// closed when ctx is done.
	Watch(ctx context.Context) <-chan uint64
	// Propose commits ops atomically (forwarded to the leader when this
	// node is not it) and returns the write's index once it is committed
	// and applied on this node.
	Propose(ctx context.Context, ops ...Op) (uint64, error)
}
