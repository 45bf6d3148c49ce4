package acl

import (
	"context"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// nsThread runs functions on one OS thread that has entered a network
// namespace. Processes started from it (iptables, iptables-restore) are
// forked from that thread and so inherit its namespace.
//
// The goroutine never calls runtime.UnlockOSThread: when it returns, the
// runtime terminates the locked thread instead of handing a thread that is
// in a foreign namespace to other goroutines. The Go runtime also never
// clones new threads from a locked thread, so the namespace cannot leak.
type nsThread struct {
	reqs chan func()
	done chan struct{}
}

func startNSThread(ns netns.NsHandle) (*nsThread, error) {
	t := &nsThread{reqs: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(t.done)
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for f := range t.reqs {
			f()
		}
	}()
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("acl: enter network namespace: %w", err)
	}
	return t, nil
}

// run calls f on the namespace thread and waits for it. ctx bounds the
// wait for the thread to be free, not f itself: a started iptables run is
// allowed to finish so that nothing is left half done.
func (t *nsThread) run(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	select {
	case t.reqs <- func() { done <- f() }:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-done
}

func (t *nsThread) close() {
	close(t.reqs)
	<-t.done
}
