package cluster

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
)

// State is the pure state machine behind every Store: the entries and the
// index of the last write. It does no I/O and is not safe for concurrent
// use; its owner serializes access.
type State struct {
	entries map[string]Entry
	index   uint64
}

// NewState returns an empty state.
func NewState() *State { return &State{entries: map[string]Entry{}} }

// Index is the index of the last applied write.
func (s *State) Index() uint64 { return s.index }

// Get returns a key's entry.
func (s *State) Get(key string) (Entry, bool) {
	e, ok := s.entries[key]
	return e, ok
}

// List returns the entries under prefix, sorted by key.
func (s *State) List(prefix string) []Entry {
	var out []Entry
	for k, e := range s.entries {
		if strings.HasPrefix(k, prefix) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Apply applies a transaction committed at index: every IfVersion is
// checked first, and on a mismatch nothing is written and ErrConflict is
// returned. The index advances either way (a refused write is still an
// entry of the log). Indexes must increase.
func (s *State) Apply(index uint64, ops []Op) error {
	if index <= s.index {
		return fmt.Errorf("cluster: apply index %d after %d", index, s.index)
	}
	s.index = index
	for _, op := range ops {
		if op.Key == "" {
			return fmt.Errorf("cluster: empty key")
		}
		if op.IfHash != nil {
			e, ok := s.entries[op.Key]
			if h := sha256.Sum256(e.Value); !ok || !bytes.Equal(h[:], op.IfHash) {
				return fmt.Errorf("%w: %s (version %d) is not the value expected", ErrConflict, op.Key, e.Version)
			}
		}
		if op.IfVersion == nil {
			continue
		}
		if have := s.entries[op.Key].Version; have != *op.IfVersion {
			return fmt.Errorf("%w: %s is at version %d, not %d", ErrConflict, op.Key, have, *op.IfVersion)
		}
	}
	for _, op := range ops {
		if op.Delete {
			delete(s.entries, op.Key)
			continue
		}
		s.entries[op.Key] = Entry{Key: op.Key, Value: slices.Clone(op.Value), Version: index}
	}
	return nil
}

// Entries returns every entry, sorted by key (for snapshots).
func (s *State) Entries() []Entry { return s.List("") }

// Restore replaces the state with entries at index (from a snapshot).
func (s *State) Restore(index uint64, entries []Entry) {
	s.entries = make(map[string]Entry, len(entries))
	for _, e := range entries {
		s.entries[e.Key] = e
	}
	s.index = index
}
