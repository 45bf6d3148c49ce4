package vrrp

import "sync"

// mailbox is an unbounded queue with a wake-up channel. Putting never
// blocks, so instances of a sync group can message each other from their
// own loops without deadlock.
type mailbox[T any] struct {
	mu   sync.Mutex
	q    []T
	wake chan struct{}
}

func newMailbox[T any]() *mailbox[T] {
	return &mailbox[T]{wake: make(chan struct{}, 1)}
}

func (m *mailbox[T]) put(v T) {
	m.mu.Lock()
	m.q = append(m.q, v)
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *mailbox[T]) take() []T {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.q
	m.q = nil
	return q
}
