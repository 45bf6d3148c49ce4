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
// on Redis Cluster's MOVED or Couchbase's NOT_MY_VBUCKET: once its own map
// is a newer one than the request was routed by, it sends the request to
// the slot's primary in that map, at most moveWait after it first sent
// it, and the client sees only the final answer. Only a new map sends a
// request again (never a timer: a node cut off from the cluster state,
// whose map is old, keeps answering the error). A session's requests for a
// slot go to the node its request still in flight for that slot went to
// (see forwardSlot), so they fail and are retried in order behind it, one
// at a time per session (retryQueue).

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
	ver := s.svc.router.ver.Load()
	if st, ok := s.ow.sticky[slot]; ok && !st.f.isDone() {
		node = st.node
	}
	f, pc := s.forward(node, req)
	return s.retrySlot(slot, node, req, f, ver), pc
}

// unavailableSlot answers req, a request of slot's keys that this node
// cannot serve now (its lease ran out, or it fenced the slot while its
// primary moves), with msg, unless the slot's primary moves within
// moveWait: then the request runs there.
func (s *session) unavailableSlot(slot int, req []byte, msg string) {
	r := s.svc.router
	s.ow.await(s.retrySlot(slot, r.n.opts.Node, req, failed(msg), r.ver.Load()), nil)
}

// retrySlot returns the final reply of req, routed by the map of version
// ver and sent to node with reply f: f, or while f says the request ran
// nowhere, the reply of req sent again once it may run (see waitMap).
func (s *session) retrySlot(slot int, node string, req []byte, f *future, ver uint64) *future {
	o := s.ow
	r := s.svc.router
	sid := s.sid
	out := newFuture()
	deadline := time.Now().Add(moveWait)
	var watch func(f *future, ver uint64)
	watch = func(f *future, ver uint64) {
		f.attach(func() {
			m := r.m.Load()
			if m == nil || !ranNowhere(f.data, len(m.Slots[slot].Backups)) || !time.Now().Before(deadline) {
				out.complete(f.data)
				return
			}
			o.retries.push(func() {
				next, nver := r.waitMap(slot, ver, f.data, deadline)
				if next == "" {
					out.complete(f.data)
					return
				}
				pc, why := r.n.peerSet(next, r.tenant).conn(int(sid % peerConnsPerNode))
				if pc == nil {
					watch(failed(why), nver)
					return
				}
				f2 := pc.send(req)
				pc.flush()
				watch(f2, nver)
			})
		})
	}
	watch(f, ver)
	if o.sticky == nil {
		o.sticky = map[int]stickyFwd{} // at most one entry per slot
	}
	o.sticky[slot] = stickyFwd{node: node, f: out}
	return out
}

// refusalPoll is how soon a request that the slot's primary in this
// node's map refused is sent to it again (see waitMap).
const refusalPoll = 20 * time.Millisecond

// waitMap waits until a request of slot that ran nowhere (its reply),
// routed by this node's map of version ver, may run, and returns the node
// to send it to and the map version; "" at deadline, or if the slot has no
// primary. It may run:
//   - at the slot's primary in this node's map once that map is another
//     than version ver (a move, a failover, a fence lifted). A node cut
//     off, whose map is old, keeps failing rather than serve from a map it
//     has not refreshed;
//   - here, once this node is the slot's primary and serves it again (its
//     lease granted again after a leader change);
//   - at the slot's primary, another node, that refused it: after
//     refusalPoll, for its own map may be behind this one, or its lease
//     being granted again, which this node does not see. (A node that
//     could not be reached is not tried again before the map changes.)
//
// It waits on the node's changes (see clusterNode.changes): a request is
// sent again as soon as the map or the lease that lets it run is here.
func (r *router) waitMap(slot int, ver uint64, reply []byte, deadline time.Time) (string, uint64) {
	self := r.n.opts.Node
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	var poll <-chan time.Time
	wait := time.NewTimer(time.Until(deadline))
	defer wait.Stop()
	for {
		ch := r.n.changes()
		v, m := r.ver.Load(), r.m.Load()
		primary := ""
		if m != nil {
			primary = m.Slots[slot].Primary
		}
		switch {
		case v != ver:
			return primary, v
		case primary == self && r.servingSlot(slot):
			return self, v
		case primary != "" && primary != self && poll == nil &&
			bytes.HasPrefix(reply, []byte("SERVER_ERROR lbd: unavailable: node "+primary+" is not serving")):
			t := time.NewTimer(refusalPoll)
			defer t.Stop()
			poll = t.C
		}
		if !time.Now().Before(deadline) {
			return "", ver
		}
		select {
		case <-r.n.ctx.Done():
			return "", ver
		case <-wait.C:
			return "", ver
		case <-poll:
			return primary, v
		case <-ch:
		}
	}
}
