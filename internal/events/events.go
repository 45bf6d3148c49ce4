// Package events is lbd's in-process event stream: health transitions, VRRP
// state changes, reconciles and reloads, for logs, `lbctl events` and
// metrics. Publishing never blocks: a subscriber that cannot keep up loses
// events and is told how many.
package events

import (
	"sync"
	"time"
)

// Kind classifies an event.
type Kind string

// The kinds of event lbd publishes.
const (
	Health    Kind = "health"
	VRRP      Kind = "vrrp"
	Reconcile Kind = "reconcile"
	Config    Kind = "config"
	ACL       Kind = "acl"
	KVS       Kind = "kvs"
)

// Event is one thing that happened.
type Event struct {
	Time    time.Time         `json:"time"`
	Kind    Kind              `json:"kind"`
	Message string            `json:"message"`
	Attrs   map[string]string `json:"attrs,omitempty"`
	// Dropped counts events this subscriber lost before this one.
	Dropped int `json:"dropped,omitempty"`
}

// Bus fans events out to subscribers and keeps the most recent ones.
type Bus struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
	// recent is a ring of keep events, allocated at the first publish. It
	// fills by append; once full, each event overwrites the oldest, at next.
	recent  []Event
	next    int
	keep    int
	nowFunc func() time.Time
}

// NewBus returns a bus that remembers the last keep events.
func NewBus(keep int) *Bus {
	return &Bus{subs: map[*Subscription]struct{}{}, keep: keep, nowFunc: time.Now}
}

// Subscription receives events until Close.
type Subscription struct {
	bus     *Bus
	c       chan Event
	dropped int
}

// C is the channel of events; it is closed by Close.
func (s *Subscription) C() <-chan Event { return s.c }

// Close stops the subscription.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	if _, ok := s.bus.subs[s]; ok {
		delete(s.bus.subs, s)
		close(s.c)
	}
}

// Subscribe returns a subscription with room for buf pending events.
func (b *Bus) Subscribe(buf int) *Subscription {
	s := &Subscription{bus: b, c: make(chan Event, buf)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish sends an event to every subscriber without blocking. attrs are
// key, value pairs.
func (b *Bus) Publish(kind Kind, msg string, attrs ...string) {
	ev := Event{Kind: kind, Message: msg}
	if len(attrs) > 1 {
		ev.Attrs = make(map[string]string, len(attrs)/2)
		for i := 0; i+1 < len(attrs); i += 2 {
			ev.Attrs[attrs[i]] = attrs[i+1]
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ev.Time = b.nowFunc()
	b.remember(ev)
	for s := range b.subs {
		e := ev
		e.Dropped = s.dropped
		select {
		case s.c <- e:
			s.dropped = 0
		default:
			s.dropped++
		}
	}
}

// remember adds ev to the recent events, dropping the oldest if there are
// keep already. The caller holds b.mu.
func (b *Bus) remember(ev Event) {
	switch {
	case b.keep <= 0:
	case len(b.recent) < b.keep:
		if b.recent == nil {
			b.recent = make([]Event, 0, b.keep)
		}
		b.recent = append(b.recent, ev)
	default:
		b.recent[b.next] = ev
		b.next = (b.next + 1) % b.keep
	}
}

// Recent returns a copy of the most recent events, oldest first.
func (b *Bus) Recent() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.recent) == 0 {
		return nil
	}
	out := make([]Event, 0, len(b.recent))
	out = append(out, b.recent[b.next:]...)
	return append(out, b.recent[:b.next]...)
}
