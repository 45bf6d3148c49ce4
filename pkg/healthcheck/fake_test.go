package healthcheck

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock: time moves only in Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	t.arm(d)
	return t
}

// Advance moves time forward and fires the timers that come due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if t.active && !t.at.After(c.now) {
			t.fire()
		}
	}
}

// armedBy reports whether a timer is waiting to fire at or before at.
func (c *fakeClock) armedBy(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if t.active && !t.at.After(at) {
			return true
		}
	}
	return false
}

type fakeTimer struct {
	c      *fakeClock
	ch     chan time.Time
	at     time.Time
	active bool
}

// arm and fire are called with c.mu held.
func (t *fakeTimer) arm(d time.Duration) {
	t.at, t.active = t.c.now.Add(d), true
	if d <= 0 {
		t.fire()
	}
}

func (t *fakeTimer) fire() {
	t.active = false
	select {
	case t.ch <- t.c.now:
	default:
	}
}

func (t *fakeTimer) drain() {
	select {
	case <-t.ch:
	default:
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.drain()
	t.arm(d)
}

func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.active = false
	t.drain()
}

// fakeDialer succeeds or fails per address, at once, and counts dials.
type fakeDialer struct {
	mu    sync.Mutex
	down  map[string]bool
	dials map[string]int
}

func newFakeDialer() *fakeDialer {
	return &fakeDialer{down: map[string]bool{}, dials: map[string]int{}}
}

var errRefused = errors.New("connection refused")

func (d *fakeDialer) DialContext(_ context.Context, _, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials[addr]++
	if d.down[addr] {
		return nil, errRefused
	}
	return fakeConn{}, nil
}

func (d *fakeDialer) setDown(addr string, down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down[addr] = down
}

// fakeConn is an established connection that does nothing.
type fakeConn struct{ net.Conn }

func (fakeConn) Close() error { return nil }

// waitFor polls cond until it holds; the deadline is generous because
// it only guards against hangs, it does not measure anything.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
