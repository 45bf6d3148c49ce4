package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// fsm is raft's finite state machine: a thin, locked dispatcher over State
// that also wakes the watchers.
type fsm struct {
	log      *slog.Logger
	mu       sync.RWMutex
	st       *State
	watchers map[chan uint64]struct{}
	// restores counts snapshots restored (at start from the local
	// snapshot store, and every InstallSnapshot from a leader).
	restores atomic.Uint64
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.FSMSnapshot = (*fsmSnapshot)(nil)
)

func newFSM(log *slog.Logger) *fsm {
	return &fsm{log: log, st: NewState(), watchers: map[chan uint64]struct{}{}}
}

// Apply implements raft.FSM: it returns nil or the transaction's error
// (ErrConflict, or a decoding error for an entry that cannot be read,
// which then changes nothing but still advances the index).
func (f *fsm) Apply(l *raft.Log) any {
	ops, derr := decodeTxn(l.Data)
	f.mu.Lock()
	defer f.mu.Unlock()
	if derr != nil {
		// Every node validates before proposing, so this is a newer
		// lbd's entry on an older one: upgrade this node.
		f.log.Error("cluster: a log entry this lbd cannot read was skipped; its state may now differ from newer nodes': upgrade it", "index", l.Index, "err", derr)
		ops = nil
	}
	err := f.st.Apply(l.Index, ops)
	notify(f.watchers, f.st.Index())
	if derr != nil {
		return derr
	}
	return err
}

// Snapshot implements raft.FSM. Values are never modified in place (Apply
// stores copies), so the snapshot shares them with the live state.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &fsmSnapshot{Index: f.st.Index(), Entries: f.st.Entries()}, nil
}

// Restore implements raft.FSM: the state becomes the snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("cluster: read snapshot: %w", err)
	}
	snap, err := decodeSnapshot(data)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Restore(snap.Index, snap.Entries)
	f.restores.Add(1)
	notify(f.watchers, snap.Index)
	return nil
}

// snapshotVersion is the version of the snapshot encoding.
const snapshotVersion = 1

// fsmSnapshot is a point-in-time copy of the state, as persisted.
type fsmSnapshot struct {
	V       int     `json:"v"`
	Index   uint64  `json:"index"`
	Entries []Entry `json:"entries"`
}

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	s.V = snapshotVersion
	if err := json.NewEncoder(sink).Encode(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("cluster: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

// decodeSnapshot decodes and checks a persisted snapshot: every key
// non-empty, unique, with a version no later than the snapshot's index.
func decodeSnapshot(data []byte) (*fsmSnapshot, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s fsmSnapshot
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("cluster: decode snapshot: %w", err)
	}
	if s.V != snapshotVersion {
		return nil, fmt.Errorf("cluster: decode snapshot: version %d, want %d", s.V, snapshotVersion)
	}
	seen := make(map[string]struct{}, len(s.Entries))
	for i, e := range s.Entries {
		if e.Key == "" || e.Version == 0 || e.Version > s.Index {
			return nil, fmt.Errorf("cluster: decode snapshot: entries[%d] (%q): bad key or version %d at index %d", i, e.Key, e.Version, s.Index)
		}
		if _, dup := seen[e.Key]; dup {
			return nil, fmt.Errorf("cluster: decode snapshot: entries[%d]: %s twice", i, e.Key)
		}
		seen[e.Key] = struct{}{}
	}
	return &s, nil
}

// get, list, index and watch are the Store reads over the FSM.
func (f *fsm) get(key string) (Entry, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Get(key)
}

func (f *fsm) list(prefix string) []Entry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.List(prefix)
}

func (f *fsm) index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Index()
}

func (f *fsm) watch(done <-chan struct{}) <-chan uint64 {
	ch := make(chan uint64, 1)
	f.mu.Lock()
	f.watchers[ch] = struct{}{}
	f.mu.Unlock()
	go func() {
		<-done
		f.mu.Lock()
		delete(f.watchers, ch)
		close(ch)
		f.mu.Unlock()
	}()
	return ch
}
