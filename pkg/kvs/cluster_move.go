package kvs

import (
	"bytes"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// Moves without client errors. When a slot's primary moves (a node added
// or drained, a rebalance, a failover), the nodes learn the new map at
// slightly different times: a request forwarded to the old primary meanwhile
// comes back "SERVER_ERROR lbd: unavailable: ..." (it ran nowhere), and a
// write the old primary ran is refused by its backups under the newer
// epoch (and undone there; if some backup applied it, the new primary's
// copy decides, see cluster_settle.go). The forwarding node does what a smart client would
// on Redis Cluster's MOVED or Couchbase's NOT_MY_VBUCKET: once its own map
// is a newer one than the request was routed by, it sends the request to
// the slot's primary in that map, at most moveWait after it first sent
// it, and the client sees only the final answer. Since that primary may
// learn the map a little later than this node, a request it refuses is
// sent again after a short backoff (see lagRetry). A node cut off from the
// cluster state sends it to the primary of its old map, which refuses it
// again: it answers the error after moveWait, never from a map it has not
// refreshed (the node that serves decides). A session's requests for a
// slot go to the node its request still in flight for that slot went to
// (see inFlight), so they fail behind it, and each is sent again only once
// the one before it has its final reply (see retried): a pipelined write
// and read of a key stay in order, and the read reads the write.
//
// Every command is sent again so, not only single-key ones: a multi-get's
// part for a node is split again by the new map (see retryGet), a gat's
// keys after a touch that failed half way too (see touchRest), and
// flush_all and stats ask again the nodes they could not reach (see
// retryBroadcast); they touch every slot, so they wait for every request
// of the session in flight, and the requests after them for them (see
// broadcastBehind). A write is sent again only when it is certain it ran
// nowhere (see ranNowhere): never twice.

// lagRetry and maxLagRetry: a request that ran nowhere is sent again at
// once under a newer map of this node, or after lagRetry (doubled on each
// try, up to maxLagRetry) under the same one: the slot's primary in it may
// learn it a little later than this node.
const (
	lagRetry    = 10 * time.Millisecond
	maxLagRetry = 160 * time.Millisecond
)

// moveWait bounds how long a request that ran nowhere waits for its slot's
// primary to move before its error goes to the client.
const moveWait = 2 * time.Second

// stickyFwd is a session's last forward for a slot.
type stickyFwd struct {
	node string
	f    *future
	ver  uint64 // the map version it was routed by
	// queued: it ran nowhere and is being sent again.
	queued *atomic.Bool
}

// inFlight returns the session's last forward for slot whose final reply
// is not in yet: a later request of the slot goes where it went (and
// never runs here before it), so that it fails, if it does, behind it and
// is sent again after it; once that one is being sent again, the later one
// is sent only after it (see before). Without one, a flush_all or stats
// still waiting for the session's requests before it (see broadcast) is
// every slot's: the later request is sent after it.
func (s *session) inFlight(slot int) (stickyFwd, bool) {
	if s.ow == nil || len(s.ow.sticky) == 0 {
		return stickyFwd{}, false
	}
	if st, ok := s.ow.sticky[slot]; ok && !st.f.isDone() {
		return st, true
	}
	if st, ok := s.ow.sticky[allSlots]; ok && !st.f.isDone() {
		return st, true
	}
	return stickyFwd{}, false
}

// allSlots is the key in a session's sticky forwards of a request of every
// slot (a flush_all or stats sent behind the requests in flight, see
// broadcastBehind). It replaces the entries before it: it is sent after
// them, so a request after it, sent after it, is after them too.
const allSlots = -1

// allInFlight returns the final replies of every request of the session
// still in flight (see inFlight), of any slot.
func (s *session) allInFlight() []*future {
	if s.ow == nil {
		return nil
	}
	var fs []*future
	for _, st := range s.ow.sticky {
		if !st.f.isDone() && !slices.Contains(fs, st.f) {
			fs = append(fs, st.f)
		}
	}
	return fs
}

// stickAll records out, the final reply of a request of every slot sent
// once preds are in (see broadcastBehind), as the session's last forward
// for every slot.
func (s *session) stickAll(out *future, ver uint64) {
	clear(s.ow.sticky)
	queued := new(atomic.Bool)
	queued.Store(true) // a later request waits for it, then goes to its slot's primary
	s.stick(allSlots, s.svc.router.n.opts.Node, out, ver, queued)
}

// stick records out, the final reply of a request for slot sent to node
// by the map of version ver, as the session's last forward for slot.
func (s *session) stick(slot int, node string, out *future, ver uint64, queued *atomic.Bool) {
	o := s.ow
	if o.sticky == nil {
		o.sticky = map[int]stickyFwd{} // at most one entry per slot
	}
	o.sticky[slot] = stickyFwd{node: node, f: out, ver: ver, queued: queued}
}

// behindRetry is the first reply of a request that waits to be sent
// behind an earlier one of its slot (see inFlight).
const behindRetry = "behind a request sent again"

// behindReply is the reply of failed(behindRetry).
const behindReply = unavailablePrefix + behindRetry + "\r\n"

// ranNowhere reports whether a forwarded request's reply says it ran
// nowhere and may run at the slot's new primary: "unavailable". A write
// refused by a backup under a newer epoch says so only when the primary
// knows that no backup applied it (see replicator.await): an incr, an
// append or a cas run again must never count twice.
func ranNowhere(reply []byte) bool {
	return bytes.HasPrefix(reply, []byte(unavailablePrefix))
}

// unavailablePrefix starts the reply of a request that ran nowhere.
const unavailablePrefix = "SERVER_ERROR lbd: unavailable: "

// forwardSlot forwards req, a request of slot's keys, to node (or to the
// node of the session's request for slot still in flight), and retries it
// at the slot's new primary while its reply says it ran nowhere (see
// ranNowhere), for at most moveWait.
func (s *session) forwardSlot(slot int, node string, req []byte) (*future, *peerConn) {
	ver := s.svc.router.ver.Load()
	if st, ok := s.inFlight(slot); ok {
		// Routed by the older map: once it fails there, this request is
		// sent again under the current one at once.
		node, ver = st.node, st.ver
		if st.queued.Load() {
			return s.retrySlot(slot, node, req, failed(behindRetry), ver), nil
		}
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

// retrySlot returns the final reply of req, a request of slot's keys
// routed by the map of version ver and sent to node with reply f: f, or
// while f says the request ran nowhere, the reply of req sent again to the
// slot's primary once this node's map changed (see retried).
func (s *session) retrySlot(slot int, node string, req []byte, f *future, ver uint64) *future {
	r, sid := s.svc.router, s.sid
	out, queued := s.retried(f, ver, s.before([]int{slot}), func(m *slots.Map) []byte {
		p := m.Slots[slot].Primary
		if p == "" {
			return []byte(unavailablePrefix + "slot " + strconv.Itoa(slot) + " has no primary\r\n")
		}
		return r.sendWait(p, sid, req)
	})
	s.stick(slot, node, out, ver, queued)
	return out
}

// retried returns the final reply of a request routed by the map of
// version ver whose first reply is f: f's, or while it says the request
// ran nowhere, attempt's under each newer map of this node (see waitVer)
// or, without one, under the same map after a backoff (see lagRetry), for
// at most moveWait. The attempts run on a goroutine, after the final
// replies of preds, the session's requests before it for the same slots
// (see before), so that they run in order at the new primaries too;
// queued is set once the first reply said "ran nowhere".
func (s *session) retried(f *future, ver uint64, preds []*future, attempt func(m *slots.Map) []byte) (out *future, queued *atomic.Bool) {
	return s.retriedUntil(f, ver, preds, time.Now().Add(moveWait), attempt)
}

// retriedUntil is retried with its deadline. It reads no session state
// but the router (a request's part is sent again so from a goroutine).
func (s *session) retriedUntil(f *future, ver uint64, preds []*future, deadline time.Time, attempt func(m *slots.Map) []byte) (out *future, queued *atomic.Bool) {
	return s.startRetry(&retry{f: f, ver: ver, preds: preds, deadline: deadline, attempt: attempt})
}

// retriedGet is retriedUntil of a retrieval of keys (see getAttempt):
// the attempt is made only once the request must be sent again.
func (s *session) retriedGet(f *future, ver uint64, preds []*future, deadline time.Time, prefix []byte, keys [][]byte) (out *future, queued *atomic.Bool) {
	return s.startRetry(&retry{f: f, ver: ver, preds: preds, deadline: deadline, sid: s.sid, prefix: prefix, keys: keys})
}

// startRetry has rt wait for its first reply.
func (s *session) startRetry(rt *retry) (*future, *atomic.Bool) {
	rt.r = s.svc.router
	rt.f.attach(rt.first)
	return &rt.out, &rt.queued
}

// retry is a request sent again while it ran nowhere (see retriedUntil):
// its final reply, and what sending it again takes, in one allocation per
// forwarded request.
type retry struct {
	out      future
	queued   atomic.Bool
	r        *router
	f        *future // the first reply
	ver      uint64
	preds    []*future
	deadline time.Time
	attempt  func(m *slots.Map) []byte
	// Without attempt, a retrieval of keys (see getAttempt) by session
	// sid.
	sid    uint64
	prefix []byte
	keys   [][]byte
}

// first takes the first reply in: the final one, unless it ran nowhere.
func (rt *retry) first() {
	f := rt.f
	if !ranNowhere(f.data) || !time.Now().Before(rt.deadline) {
		rt.out.complete(f.data)
		return
	}
	rt.queued.Store(true)
	go rt.again()
}

// again sends the request again until it runs, or until its deadline.
func (rt *retry) again() {
	r, f, deadline, attempt := rt.r, rt.f, rt.deadline, rt.attempt
	if attempt == nil {
		attempt = getAttempt(r, rt.sid, rt.prefix, rt.keys)
	}
	for _, p := range rt.preds {
		p.wait()
	}
	data, v, backoff := f.data, rt.ver, lagRetry
	if string(data) == behindReply {
		// Never sent: it waited for preds only, and goes now to
		// its primary in this node's map.
		if m := r.m.Load(); m != nil {
			data, v = attempt(m), r.ver.Load()
		}
	}
	for ranNowhere(data) && time.Now().Before(deadline) {
		until := time.Now().Add(backoff)
		if until.After(deadline) {
			until = deadline
		}
		m, nv := r.waitVer(v, until)
		if m == nil {
			// No newer map: the same again (its primary may not
			// have learned it yet).
			if m, nv = r.m.Load(), r.ver.Load(); m == nil || !time.Now().Before(deadline) {
				break
			}
			backoff = min(2*backoff, maxLagRetry)
		}
		data, v = attempt(m), nv
	}
	rt.out.complete(data)
}

// before returns the final replies of the session's requests still in
// flight for slots (see inFlight).
func (s *session) before(slots []int) []*future {
	var fs []*future
	for _, sl := range slots {
		if st, ok := s.inFlight(sl); ok && !slices.Contains(fs, st.f) {
			fs = append(fs, st.f)
		}
	}
	return fs
}

// sendWait sends req to node on the connection of session sid and waits
// for its reply (on a retry's goroutine, never on an event loop).
func (r *router) sendWait(node string, sid uint64, req []byte) []byte {
	f := r.send(node, sid, req)
	f.wait()
	return f.data
}

// send sends req to node at once on the connection of session sid.
func (r *router) send(node string, sid uint64, req []byte) *future {
	pc, why := r.n.peerSet(node, r.tenant).connFor(sid)
	if pc == nil {
		return failed(why)
	}
	f := pc.send(req)
	pc.flush()
	return f
}

// waitVer waits until something that decides where a request may run
// changes here (see clusterNode.changes): this node's map is another than
// version ver (the one a request that ran nowhere was routed by: a move, a
// failover, a fence lifted), or its lease is granted again (it may be the
// slot's primary); it returns the map and its version, nil at deadline.
// The requests waiting are woken by the change itself, not by a poll.
// Only a change sends a request again at once: a node cut off keeps
// failing rather than serve from a map it has not refreshed.
func (r *router) waitVer(ver uint64, deadline time.Time) (*slots.Map, uint64) {
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	wait := time.NewTimer(time.Until(deadline))
	defer wait.Stop()
	for {
		ch := r.n.changes()
		if v, m := r.ver.Load(), r.m.Load(); v != ver && m != nil {
			return m, v
		}
		select {
		case <-r.n.ctx.Done():
			return nil, ver
		case <-wait.C:
			return nil, ver
		case <-ch:
			if m := r.m.Load(); m != nil && r.ver.Load() == ver {
				return m, ver // the lease granted again, or another tenant's map
			}
		}
	}
}
