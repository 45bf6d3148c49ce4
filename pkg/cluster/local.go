package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/lbd-project/lbd/internal/statefile"
)

// LocalFile is the name of a Local store's file under its directory.
const LocalFile = "local-state.json"

// Local is the Store of a node without a cluster section: one node, its
// own leader, the State kept in one file (written atomically and synced
// before Propose returns), so that such a node reads its desired state
// from a Store like every other.
type Local struct {
	path string

	mu       sync.Mutex
	st       *State
	watchers map[chan uint64]struct{}
}

var _ Store = (*Local)(nil)

// localFile is the file's content.
type localFile struct {
	Index   uint64  `json:"index"`
	Entries []Entry `json:"entries"`
}

// OpenLocal opens (or creates, empty) the store kept under dir.
func OpenLocal(dir string) (*Local, error) {
	l := &Local{path: filepath.Join(dir, LocalFile), st: NewState(), watchers: map[chan uint64]struct{}{}}
	data, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: local state: %w", err)
	}
	f, err := decodeLocal(data)
	if err != nil {
		return nil, fmt.Errorf("cluster: local state %s: %w", l.path, err)
	}
	l.st.Restore(f.Index, f.Entries)
	return l, nil
}

// decodeLocal decodes and checks a Local store's file.
func decodeLocal(data []byte) (localFile, error) {
	var f localFile
	if err := json.Unmarshal(data, &f); err != nil {
		return f, err
	}
	seen := map[string]bool{}
	for _, e := range f.Entries {
		switch {
		case e.Key == "":
			return f, fmt.Errorf("entry without a key")
		case seen[e.Key]:
			return f, fmt.Errorf("key %q twice", e.Key)
		case e.Version == 0 || e.Version > f.Index:
			return f, fmt.Errorf("key %q at version %d, index %d", e.Key, e.Version, f.Index)
		}
		seen[e.Key] = true
	}
	return f, nil
}

// Get implements Store.
func (l *Local) Get(key string) (Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.Get(key)
}

// List implements Store.
func (l *Local) List(prefix string) []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.List(prefix)
}

// AppliedIndex implements Store.
func (l *Local) AppliedIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.Index()
}

// Propose implements Store: the transaction is applied to a copy of the
// state, the copy is written and synced, then it becomes the state. A
// write that fails leaves state and file as they were.
func (l *Local) Propose(ctx context.Context, ops ...Op) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	next := NewState()
	next.Restore(l.st.Index(), l.st.Entries())
	idx := next.Index() + 1
	applyErr := next.Apply(idx, ops)
	if applyErr != nil && !errors.Is(applyErr, ErrConflict) {
		return 0, applyErr
	}
	data, err := json.Marshal(localFile{Index: idx, Entries: next.Entries()})
	if err != nil {
		return 0, fmt.Errorf("cluster: local state: %w", err)
	}
	if err := statefile.WriteAtomic(l.path, data); err != nil {
		return 0, fmt.Errorf("cluster: local state: %w", err)
	}
	l.st = next
	notify(l.watchers, idx)
	return idx, applyErr
}

// Watch implements Store.
func (l *Local) Watch(ctx context.Context) <-chan uint64 {
	ch := make(chan uint64, 1)
	l.mu.Lock()
	l.watchers[ch] = struct{}{}
	l.mu.Unlock()
	go func() {
		<-ctx.Done()
		l.mu.Lock()
		delete(l.watchers, ch)
		close(ch)
		l.mu.Unlock()
	}()
	return ch
}
