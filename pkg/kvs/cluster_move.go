package kvs

import (
	"bytes"
	"sync"
	"time"
)

// Moves without client errors. When a slot's primary moves (a node added
// or drained, a rebalance, a failover), the nodes learn the new map at
// slightly different times: a request forwarded to the old primary meanwhile
// comes back "SERVER_ERROR lbd: unavailable: ..." (it ran nowhere), and a
// write the old primary ran is refused by its backup under the newer epoch
// (and undone there). The forwarding node does what a smart client would
// on Redis Cluster's MOVED or Couchbase's NOT_MY_VBUCKET: it waits for its
// own map to name another primary (or retryEvery, as the same primary may
// serve the slot again once its map changed) and sends the request there,
// at most moveWait after it first sent it, and the client sees only the
// final answer. A session's requests for a slot go to the node its request still
// in flight for that slot went to (see forwardSlot), so they fail and are
// retried in order behind it, one at a time per session (retryQueue).

// moveWait bounds how long a request that ran nowhere waits for its slot's
// primary to move before its error goes to the client.
const moveWait = 2 * time.Second

// stickyFwd is a session's last forward for a slot.
type stickyFwd struct {
	node string
	f    *future
}

// retryQueue runs a session's retries one at a time, in order, on a
// goroutine of its own (never on the event loop or a reader).
type retryQueue struct {
	mu      sync.Mutex
	q       []func()
	running bool
}

func (rq *retryQueue) push(fn func()) {
	rq.mu.Lock()
	rq.q = append(rq.q, fn)
	if rq.running {
		rq.mu.Unlock()
		return
	}
	rq.running = true
	rq.mu.Unlock()
	go rq.run()
}

func (rq *retryQueue) run() {
	for {
		rq.mu.Lock()
		if len(rq.q) == 0 {
			rq.running = false
			rq.mu.Unlock()
			return
		}
		fn := rq.q[0]
		rq.q = rq.q[1:]
		rq.mu.Unlock()
		fn()
	}
}

// ranNowhere reports whether a forwarded request's reply says it ran
// nowhere and may run at the slot's new primary: unavailable, or a write
// refused by a backup under a newer epoch (undone at the old primary) when
// the slot has at most one backup (with two, the other may have applied
// it, and an incr run again would count twice).
func ranNowhere(reply []byte, backups int) bool {
	if bytes.HasPrefix(reply, []byte("SERVER_ERROR lbd: unavailable: ")) {
		return true
	}
	return backups <= 1 && bytes.HasPrefix(reply, []byte("SERVER_ERROR lbd: slot ")) && bytes.Contains(reply, []byte(" is stale at "))
}

// forwardSlot forwards req, a request of slot's keys, to node (or to the
// node of the session's request for slot still in flight), and retries it
// at the slot's new primary while its reply says it ran nowhere (see
// ranNowhere), for at most moveWait.
func (s *session) forwardSlot(slot int, node string, req []byte) (*future, *peerConn) {
	if st, ok := s.ow.sticky[slot]; ok && !st.f.isDone() {
		node = st.node
	}
	f, pc := s.forward(node, req)
	return s.retrySlot(slot, node, req, f), pc
}

// unavailableSlot answers req, a request of slot's keys that this node
// cannot serve now (its lease ran out, or it fenced the slot while its
// primary moves), with msg, unless the slot's primary moves within
// moveWait: then the request runs there.
func (s *session) unavailableSlot(slot int, req []byte, msg string) {
	s.ow.await(s.retrySlot(slot, s.svc.router.n.opts.Node, req, failed(msg)), nil)
}

// retrySlot returns the final reply of req, sent to node with reply f: f,
// or while f says the request ran nowhere, the reply of req sent again to
// the slot's new primary.
func (s *session) retrySlot(slot int, node string, req []byte, f *future) *future {
	o := s.ow
	r := s.svc.router
	sid := s.sid
	out := newFuture()
	deadline := time.Now().Add(moveWait)
	var watch func(f *future, node string)
	watch = func(f *future, node string) {
		f.attach(func() {
			m := r.m.Load()
			if m == nil || !ranNowhere(f.data, len(m.Slots[slot].Backups)) || !time.Now().Before(deadline) {
				out.complete(f.data)
				return
			}
			o.retries.push(func() {
				next := r.waitMoved(slot, node, deadline)
				if next == "" {
					out.complete(f.data)
					return
				}
				pc, why := r.n.peerSet(next, r.tenant).conn(int(sid % peerConnsPerNode))
				if pc == nil {
					watch(failed(why), next)
					return
				}
				f2 := pc.send(req)
				pc.flush()
				watch(f2, next)
			})
		})
	}
	watch(f, node)
	if o.sticky == nil {
		o.sticky = map[int]stickyFwd{} // at most one entry per slot
	}
	o.sticky[slot] = stickyFwd{node: node, f: out}
	return out
}

// waitMoved waits until the map names a primary of slot other than node,
// or retryEvery passed, and returns the slot's primary then (the same node
// may serve it by now: it fenced the slot until its map changed); "" at
// deadline or without a primary.
func (r *router) waitMoved(slot int, node string, deadline time.Time) string {
	until := time.Now().Add(retryEvery)
	for {
		var p string
		if m := r.m.Load(); m != nil {
			p = m.Slots[slot].Primary
		}
		now := time.Now()
		if !now.Before(deadline) {
			return ""
		}
		if p != "" && (p != node || !now.Before(until)) {
			return p
		}
		select {
		case <-r.n.ctx.Done():
			return ""
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// retryEvery spaces the retries of a request at a primary that did not
// move.
const retryEvery = 100 * time.Millisecond
