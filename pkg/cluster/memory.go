package cluster

import (
	"context"
	"sync"
)

// Memory is a Store of one node that keeps its state in memory: for tests
// of the code above the Store, and the shape every Store follows.
type Memory struct {
	mu       sync.Mutex
	st       *State
	watchers map[chan uint64]struct{}
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{st: NewState(), watchers: map[chan uint64]struct{}{}}
}

var _ Store = (*Memory)(nil)

// Get implements Store.
func (m *Memory) Get(key string) (Entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Get(key)
}

// List implements Store.
func (m *Memory) List(prefix string) []Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.List(prefix)
}

// AppliedIndex implements Store.
func (m *Memory) AppliedIndex() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Index()
}

// Propose implements Store: the write is applied at once.
func (m *Memory) Propose(ctx context.Context, ops ...Op) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	idx := m.st.Index() + 1
	err := m.st.Apply(idx, ops)
	notify(m.watchers, idx)
	return idx, err
}

// Watch implements Store.
func (m *Memory) Watch(ctx context.Context) <-chan uint64 {
	ch := make(chan uint64, 1)
	m.mu.Lock()
	m.watchers[ch] = struct{}{}
	m.mu.Unlock()
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		delete(m.watchers, ch)
		close(ch)
		m.mu.Unlock()
	}()
	return ch
}

// notify hands idx to every watcher, replacing an index it has not read
// yet. The caller holds the lock that guards watchers.
func notify(watchers map[chan uint64]struct{}, idx uint64) {
	for ch := range watchers {
		select {
		case <-ch:
		default:
		}
		ch <- idx
	}
}
