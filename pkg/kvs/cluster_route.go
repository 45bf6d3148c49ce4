package kvs

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// maxForwardData bounds the data block of a forwarded storage command;
// a bigger one is answered here (it is too large for any tenant).
const maxForwardData = 64 << 20

// routed runs the request on line at the node that serves its keys when
// that is not this one: it forwards the request and queues its reply (see
// orderedWriter), or answers SERVER_ERROR when the node cannot be reached.
// "SERVER_ERROR lbd: unavailable: ..." means the request was not run
// anywhere (a client may retry it); any other SERVER_ERROR after it was
// sent leaves its outcome unknown.
// It reports false when the request must run here: its keys are this
// node's, it names no key, or it is malformed (its error reply is the same
// anywhere and touches no store). On a peer connection nothing is forwarded:
// a key this node does not serve gets SERVER_ERROR.
func (s *session) routed(line []byte, n int, rest []byte) (bool, error) {
	switch string(s.toks[0]) {
	case "get", "gets", "bget":
		return s.routeGet(line, n, rest, 1), nil
	case "gat", "gats":
		if n < 3 {
			return false, nil
		}
		if _, ok := parseInt32(s.toks[1]); !ok {
			return false, nil
		}
		return s.routeGet(line, n, rest, 2), nil
	case "set", "add", "replace", "append", "prepend":
		if n != 5 && n != 6 {
			return false, nil
		}
		return s.routeOne(line, s.toks[1], 4)
	case "cas":
		if n != 6 && n != 7 {
			return false, nil
		}
		return s.routeOne(line, s.toks[1], 4)
	case "incr", "decr", "delete", "touch":
		if n < 2 {
			return false, nil
		}
		return s.routeOne(line, s.toks[1], -1)
	case "mg", "md", "ma", "me":
		if n < 2 {
			return false, nil
		}
		key, ok := s.metaKey(n)
		if !ok {
			return false, nil
		}
		return s.routeOne(line, key, -1)
	case "ms":
		if n < 3 {
			return false, nil
		}
		key, ok := s.metaKey(n)
		if !ok {
			return false, nil
		}
		return s.routeOne(line, key, 2)
	case "flush_all":
		if s.peer {
			return false, nil
		}
		return s.routeFlushAll(line), nil
	case "stats":
		if s.peer || n != 1 {
			return false, nil
		}
		return s.routeStats(line), nil
	}
	return false, nil
}

// routeStats answers a plain "stats" with the cluster's figures: this
// node's, with every counter the other nodes also report added up (items,
// bytes, hits, connections...); pid, uptime, time, version and the
// settings-like figures stay this node's. A node that does not answer is
// left out.
func (s *session) routeStats(line []byte) bool {
	return s.broadcast(line, false, mergeStats)
}

// broadcast runs line here and on every other node of the tenant's map,
// and answers with merge of the replies (this node's first). It reports
// false, running nothing, while the tenant has no map. A node that did
// not run it (see unrun) is asked again once this node's map changes
// (see retryBroadcast): within moveWait if wait, else only if it changed
// already. Behind requests of the session still in flight, it runs once
// they are done (see broadcastBehind).
func (s *session) broadcast(line []byte, wait bool, merge func(parts [][]byte) []byte) bool {
	r := s.svc.router
	m := r.m.Load()
	if m == nil {
		return false
	}
	ver := r.ver.Load()
	req := append(bytes.Clone(line), '\r', '\n')
	if preds := s.allInFlight(); len(preds) > 0 {
		s.broadcastBehind(req, preds, ver, wait, merge)
		return true
	}
	local := s.runLocal(req).data
	var nodes []string
	var fs []*future
	for _, node := range m.Nodes {
		if node == r.n.opts.Node {
			continue
		}
		f, pc := s.forward(node, req)
		s.ow.sent(pc)
		nodes, fs = append(nodes, node), append(fs, f)
	}
	s.ow.await(s.retryBroadcast(req, local, nodes, fs, ver, wait, merge), nil)
	return true
}

// broadcastBehind runs the broadcast of req (see broadcast) once preds,
// the final replies of the session's requests in flight, are in: a
// flush_all or stats touches every slot, so it runs after the session's
// requests before it, also those sent again while their slot moves (a set
// pipelined before a flush_all is flushed), and the session's requests
// after it are sent after it (see inFlight). It runs on a goroutine,
// here through this node's own peer listener, as a request sent again
// does.
func (s *session) broadcastBehind(req []byte, preds []*future, ver uint64, wait bool, merge func(parts [][]byte) []byte) {
	r, sid := s.svc.router, s.sid
	self := r.n.opts.Node
	out := newFuture()
	go func() {
		for _, p := range preds {
			p.wait()
		}
		m, v := r.m.Load(), r.ver.Load()
		if m == nil {
			out.complete([]byte(unavailablePrefix + "tenant " + r.tenant + " has no slot map\r\n"))
			return
		}
		local := r.send(self, sid, req)
		var nodes []string
		var fs []*future
		for _, node := range m.Nodes {
			if node != self {
				nodes, fs = append(nodes, node), append(fs, r.send(node, sid, req))
			}
		}
		local.wait()
		f := s.retryBroadcast(req, local.data, nodes, fs, v, wait, merge)
		f.wait()
		out.complete(f.data)
	}()
	s.stickAll(out, ver)
	s.ow.await(out, nil)
}

// unrun reports whether a node's reply to a broadcast says the request
// did not run there (unreachable), or may not have (its connection lost):
// flush_all and stats may run twice.
func unrun(reply []byte) bool {
	return ranNowhere(reply) || bytes.HasPrefix(reply, []byte("SERVER_ERROR lbd: node "))
}

// retryBroadcast returns the merged reply of a broadcast of req, routed by
// the map of version ver: local is this node's reply, fs the replies of
// nodes. While a node's reply says it did not run there, req is sent again
// under each newer map of this node (see waitVer) to those nodes and to
// the nodes the newer map adds; a node it leaves out is left out. The
// attempts run on a goroutine.
func (s *session) retryBroadcast(req, local []byte, nodes []string, fs []*future, ver uint64, wait bool, merge func(parts [][]byte) []byte) *future {
	r, sid := s.svc.router, s.sid
	self := r.n.opts.Node
	out := newFuture()
	deadline := time.Now().Add(moveWait)
	answers := make(map[string][]byte, len(nodes))
	missing := func() bool {
		for _, a := range answers {
			if unrun(a) {
				return true
			}
		}
		return false
	}
	finish := func() {
		parts := [][]byte{local}
		for _, n := range nodes {
			if a, ok := answers[n]; ok {
				parts = append(parts, a)
			}
		}
		out.complete(merge(parts))
	}
	whenAll(fs, func() {
		for j, n := range nodes {
			answers[n] = fs[j].data
		}
		if !missing() || !time.Now().Before(deadline) || (!wait && r.ver.Load() == ver) {
			finish()
			return
		}
		go func() {
			v := ver
			for missing() && time.Now().Before(deadline) && (wait || r.ver.Load() != v) {
				m, nv := r.waitVer(v, deadline)
				if m == nil {
					break
				}
				v = nv
				var ask []string
				for n, a := range answers {
					if !containsStr(m.Nodes, n) {
						delete(answers, n)
					} else if unrun(a) {
						ask = append(ask, n)
					}
				}
				for _, n := range m.Nodes {
					if _, ok := answers[n]; !ok && n != self {
						ask = append(ask, n)
						if !containsStr(nodes, n) {
							nodes = append(nodes, n)
						}
					}
				}
				afs := make([]*future, len(ask))
				for j, n := range ask {
					afs[j] = r.send(n, sid, req)
				}
				for j, n := range ask {
					afs[j].wait()
					answers[n] = afs[j].data
				}
			}
			finish()
		}()
	})
	return out
}

// whenAll runs fn once every future of fs is complete.
func whenAll(fs []*future, fn func()) {
	left := atomic.Int32{}
	left.Store(int32(len(fs)) + 1)
	done := func() {
		if left.Add(-1) == 0 {
			fn()
		}
	}
	for _, f := range fs {
		f.attach(done)
	}
	done()
}

// notSummed are the general stats that are not added up across nodes.
var notSummed = map[string]bool{
	"pid": true, "uptime": true, "time": true, "pointer_size": true, "max_connections": true,
	"threads": true, "version": true, "libevent": true, "rusage_user": true, "rusage_system": true,
}

// mergeStats adds up the numeric STAT lines of parts into the first's.
func mergeStats(parts [][]byte) []byte {
	sums := map[string]uint64{}
	ok := map[string]bool{}
	for _, p := range parts[1:] {
		if !bytes.HasSuffix(p, []byte("END\r\n")) {
			continue
		}
		for _, l := range bytes.Split(p, []byte("\r\n")) {
			f := bytes.Fields(l)
			if len(f) != 3 || string(f[0]) != "STAT" || notSummed[string(f[1])] {
				continue
			}
			if v, err := strconv.ParseUint(string(f[2]), 10, 64); err == nil {
				sums[string(f[1])] += v
				ok[string(f[1])] = true
			}
		}
	}
	var out []byte
	for _, l := range bytes.SplitAfter(parts[0], []byte("\r\n")) {
		f := bytes.Fields(l)
		if len(f) == 3 && string(f[0]) == "STAT" && ok[string(f[1])] {
			if v, err := strconv.ParseUint(string(f[2]), 10, 64); err == nil {
				out = fmt.Appendf(out, "STAT %s %d\r\n", f[1], v+sums[string(f[1])])
				continue
			}
		}
		out = append(out, l...)
	}
	return out
}

// metaKey returns a meta command's key, decoded if the request has the b
// flag; false if it is not a key (the command errs the same anywhere).
func (s *session) metaKey(n int) ([]byte, bool) {
	key := s.toks[1]
	for i := 2; i < n; i++ {
		if t := s.toks[i]; len(t) > 0 && t[0] == 'b' {
			dst := make([]byte, base64.StdEncoding.DecodedLen(len(key)))
			m, err := base64.StdEncoding.Decode(dst, key)
			if err != nil || m == 0 {
				return nil, false
			}
			return dst[:m], len(key) <= KeyMaxLength
		}
	}
	return key, len(key) <= KeyMaxLength
}

// routeOne routes a single-key request; dataTok is the token holding the
// length of its data block, -1 if it has none.
func (s *session) routeOne(line, key []byte, dataTok int) (bool, error) {
	if len(key) > KeyMaxLength {
		return false, nil
	}
	vlen := -1
	if dataTok >= 0 {
		v, ok := parseInt32(s.toks[dataTok])
		if !ok || v < 0 || v > maxForwardData {
			return false, nil
		}
		vlen = int(v)
	}
	r := s.svc.router
	node, slot, ok := r.owner(key)
	if ok && node == r.n.opts.Node && r.servingSlot(slot) {
		if _, busy := s.inFlight(slot); !busy && !s.loopWaits(slot) {
			return false, nil
		}
		// On an event loop, a write to a replicated slot would wait
		// for the backups: it goes to this node's own peer listener,
		// whose session may wait, and the loop parks the connection.
		// A request behind one of its slot still in flight goes where
		// that one went (see inFlight).
	}
	// Build the request before reading the data: line lives in the read
	// buffer.
	req := make([]byte, 0, len(line)+2+max(vlen+2, 0))
	req = append(append(req, line...), '\r', '\n')
	if vlen >= 0 {
		start := len(req)
		req = req[:start+vlen+2]
		if _, err := io.ReadFull(s.r, req[start:]); err != nil {
			return true, err
		}
		s.ctr[cBytesRead] += uint64(vlen + 2)
	}
	_, busy := s.inFlight(slot)
	switch {
	case !ok:
		s.outErr("SERVER_ERROR lbd: unavailable: tenant " + r.tenant + " has no slot map")
	case busy || node == r.n.opts.Node && !s.peer && r.servingSlot(slot):
		f, pc := s.forwardSlot(slot, node, req)
		s.ow.await(f, pc)
	case s.peer:
		s.outErr("SERVER_ERROR lbd: unavailable: node " + r.n.opts.Node + " is not serving slot " + strconv.Itoa(slot))
	case node == r.n.opts.Node:
		s.unavailableSlot(slot, req, "node "+r.n.opts.Node+" is not serving slot "+strconv.Itoa(slot))
	case node == "":
		s.unavailableSlot(slot, req, "slot "+strconv.Itoa(slot)+" has no primary")
	default:
		f, pc := s.forwardSlot(slot, node, req)
		s.ow.await(f, pc)
	}
	return true, nil
}

// loopWaits reports whether a write to slot, run here, would wait for
// backups on an event loop (a session on a goroutine may wait).
func (s *session) loopWaits(slot int) bool {
	if s.peer || s.ow == nil || !s.ow.async {
		return false
	}
	m := s.svc.router.m.Load()
	return m != nil && len(m.Slots[slot].Backups) > 0
}

// forward sends req to node on this session's connection to it.
func (s *session) forward(node string, req []byte) (*future, *peerConn) {
	r := s.svc.router
	ps := r.n.peerSet(node, r.tenant)
	pc, why := ps.connFor(s.sid)
	if pc == nil {
		return failed(why), nil
	}
	return pc.send(req), pc
}

// routeGet routes a retrieval of the keys from token first on (and rest):
// all at one node, it runs there (or here); spread over nodes, one request
// per node, and the replies merged in the order of the keys. A request
// that runs nowhere while a slot moves is sent again, split by the new map
// (see retryGet).
func (s *session) routeGet(line []byte, n int, rest []byte, first int) bool {
	r := s.svc.router
	m := r.m.Load()
	ver := r.ver.Load()
	// The keys, their slots and owners, and the nodes, in the session's
	// buffers: most retrievals run here, and allocate nothing for it. The
	// part run here (see runLocal) routes again, with the next buffers.
	sc := &routeScratch{}
	if s.routeDepth < len(s.route) {
		sc = &s.route[s.routeDepth]
	}
	s.routeDepth++
	defer func() { s.routeDepth-- }()
	keys := sc.keys[:0]
	for i := first; i < n; i++ {
		keys = append(keys, s.toks[i])
	}
	eachField(rest, func(k []byte) bool {
		keys = append(keys, k)
		return true
	})
	sc.keys = keys
	defer sc.clear()
	if len(keys) == 0 {
		return false // ERROR, here as anywhere
	}
	for _, k := range keys {
		if len(k) > KeyMaxLength {
			return false // CLIENT_ERROR, here as anywhere
		}
	}
	self := r.n.opts.Node
	if m == nil {
		s.outErr("SERVER_ERROR lbd: unavailable: tenant " + r.tenant + " has no slot map")
		return true
	}
	owners, nodes, sls := sc.owners[:0], sc.nodes[:0], sc.slots[:0]
	serving := r.serving()
	// behind: a key goes where the session's request in flight for its
	// slot went; queued: that one is being sent again.
	behind, queued := false, false
	prims := r.primariesOf(m)
	for _, k := range keys {
		sl := slots.Of(k)
		var o string
		var epoch uint64
		if prims != nil {
			o, epoch = prims.names[prims.idx[sl]], prims.epoch[sl]
		} else {
			o, epoch = m.Slots[sl].Primary, m.Slots[sl].Epoch
		}
		if st, ok := s.inFlight(sl); ok {
			o, behind = st.node, true
			ver = min(ver, st.ver)
			queued = queued || st.queued.Load()
		}
		owners, sls = append(owners, o), append(sls, sl)
		if !containsStr(nodes, o) {
			nodes = append(nodes, o)
		}
		if o == self && serving && r.repl.isFenced(sl, epoch) {
			serving = false
		}
	}
	sc.owners, sc.nodes, sc.slots = owners, nodes, sls
	// gat and gats write: on an event loop, a replicated tenant's run at
	// this node's own peer listener (see loopWaits), and so do reads
	// behind requests still in flight there, to stay behind them.
	selfPeer := !s.peer && s.ow != nil && (behind || s.ow.async && m.Replicas > 0 && (first == 2 || s.ow.pending() || r.repl.anyPending(keys)))
	if len(nodes) == 1 && nodes[0] == self && serving && !selfPeer {
		return false
	}
	if !s.peer && len(keys) == 1 && nodes[0] == self && !serving && !behind {
		s.unavailableSlot(slots.Of(keys[0]), append(bytes.Clone(line), '\r', '\n'), "node "+self+" is not serving every key")
		return true
	}
	if s.peer {
		s.outErr("SERVER_ERROR lbd: unavailable: node " + self + " is not serving every key")
		return true
	}
	// The keys are slices of the connection's input buffer, which the
	// loop refills while the other nodes' parts are awaited: the merge and
	// the retries keep a copy.
	keys = ownKeys(keys)
	prefix := append([]byte(nil), s.toks[0]...)
	if first == 2 {
		prefix = append(append(prefix, ' '), s.toks[1]...)
	}
	switch {
	case queued:
		s.retryGetAll(prefix, keys, behindRetry, ver)
		return true
	case containsStr(nodes, self) && !serving && !behind:
		s.retryGetAll(prefix, keys, "node "+self+" is not serving every key", ver)
		return true
	case containsStr(nodes, ""):
		s.retryGetAll(prefix, keys, "a slot has no primary", ver)
		return true
	case len(nodes) == 1 && len(keys) == 1:
		f, pc := s.forwardSlot(sls[0], nodes[0], append(bytes.Clone(line), '\r', '\n'))
		s.ow.await(f, pc)
		return true
	}
	// One request per node, with its keys in order: the parts, and their
	// keys' slots, are pieces of one slice each.
	fs := make([]*future, len(nodes))
	byNode := make([][]byte, 0, len(keys))
	slotsByNode := sc.partSlots[:0]
	for j, node := range nodes {
		start := len(byNode)
		for i, o := range owners {
			if o == node {
				byNode, slotsByNode = append(byNode, keys[i]), append(slotsByNode, sls[i])
			}
		}
		part, partSlots := byNode[start:len(byNode):len(byNode)], slotsByNode[start:]
		req := getRequest(prefix, part)
		if node == self && !selfPeer {
			fs[j] = s.runLocal(req)
			continue
		}
		var pc *peerConn
		fs[j], pc = s.forward(node, req)
		s.ow.sent(pc)
		var q *atomic.Bool
		fs[j], q = s.retryGet(prefix, part, partSlots, fs[j], ver)
		for _, sl := range partSlots {
			s.stick(sl, node, fs[j], ver, q)
		}
	}
	sc.partSlots = slotsByNode
	if len(nodes) == 1 {
		s.ow.await(fs[0], nil)
		return true
	}
	s.ow.awaitMerged(fs, func(dst []byte, parts [][]byte) []byte { return mergeGets(dst, keys, parts) })
	return true
}

// ownKeys returns a copy of keys, each a slice of one new copy of them
// all.
func ownKeys(keys [][]byte) [][]byte {
	n := 0
	for _, k := range keys {
		n += len(k)
	}
	buf := make([]byte, 0, n)
	out := make([][]byte, len(keys))
	for i, k := range keys {
		buf = append(buf, k...)
		out[i] = buf[len(buf)-len(k) : len(buf) : len(buf)]
	}
	return out
}

// routeScratch is a session's buffers for routing a retrieval (see
// routeGet); nothing in them outlives the request's routing.
type routeScratch struct {
	keys      [][]byte
	slots     []int
	owners    []string
	nodes     []string
	partSlots []int
}

// clear drops what the buffers point to (the input buffer, the map's
// node names), keeping their room.
func (sc *routeScratch) clear() {
	clear(sc.keys)
	clear(sc.owners)
	clear(sc.nodes)
	sc.keys, sc.owners, sc.nodes = sc.keys[:0], sc.owners[:0], sc.nodes[:0]
	sc.slots, sc.partSlots = sc.slots[:0], sc.partSlots[:0]
}

// partKeys returns the keys whose owner is node, in order.
func partKeys(keys [][]byte, owners []string, node string) [][]byte {
	var part [][]byte
	for i, k := range keys {
		if owners[i] == node {
			part = append(part, k)
		}
	}
	return part
}

// getRequest builds a retrieval of keys ("get k1 k2\r\n"; prefix is the
// command, and gat's exptime).
func getRequest(prefix []byte, keys [][]byte) []byte {
	n := len(prefix) + len(keys) + 2
	for _, k := range keys {
		n += len(k)
	}
	req := append(make([]byte, 0, n), prefix...)
	for _, k := range keys {
		req = append(append(req, ' '), k...)
	}
	return append(req, '\r', '\n')
}

// retryGetAll answers a retrieval of keys that cannot be sent now (msg
// says why) once it ran at the primaries of a newer map (see retryGet).
func (s *session) retryGetAll(prefix []byte, keys [][]byte, msg string, ver uint64) {
	sls := make([]int, len(keys))
	for i, k := range keys {
		sls[i] = slots.Of(k)
	}
	f, q := s.retryGet(prefix, keys, sls, failed(msg), ver)
	for _, sl := range sls {
		s.stick(sl, s.svc.router.n.opts.Node, f, ver, q)
	}
	s.ow.await(f, nil)
}

// retryGet returns the final reply of a retrieval of keys routed by the map
// of version ver (sls their slots) whose first reply is f: while it says it ran nowhere,
// the keys are sent again split by this node's newer map, one request per
// node, and the replies merged in the order of the keys. A gat or gats
// whose touch failed half way (see touchRest) has the keys it did not
// reach sent again so too.
func (s *session) retryGet(prefix []byte, keys [][]byte, sls []int, f *future, ver uint64) (*future, *atomic.Bool) {
	deadline := time.Now().Add(moveWait)
	out, queued := s.retriedGet(f, ver, s.before(sls), deadline, prefix, keys)
	if bytes.HasPrefix(prefix, []byte("gat")) {
		out = s.touchRest(prefix, keys, out, ver, deadline)
	}
	return out, queued
}

// getAttempt returns the attempt of a retrieval of keys under a map (see
// retried): one request per node, the replies merged in the order of the
// keys.
// r and sid are the session's router and id.
func getAttempt(r *router, sid uint64, prefix []byte, keys [][]byte) func(m *slots.Map) []byte {
	return func(m *slots.Map) []byte {
		owners := make([]string, len(keys))
		var nodes []string
		for i, k := range keys {
			o := m.Slots[slots.Of(k)].Primary
			if o == "" {
				return []byte(unavailablePrefix + "a slot has no primary\r\n")
			}
			owners[i] = o
			if !containsStr(nodes, o) {
				nodes = append(nodes, o)
			}
		}
		fs := make([]*future, len(nodes))
		for j, node := range nodes {
			fs[j] = r.send(node, sid, getRequest(prefix, partKeys(keys, owners, node)))
		}
		parts := make([][]byte, len(nodes))
		for j, f := range fs {
			f.wait()
			parts[j] = f.data
		}
		if len(nodes) == 1 {
			return parts[0]
		}
		return mergeGets(nil, keys, parts)
	}
}

// touchRest returns the final reply of a gat or gats of keys whose reply
// is f: f's, unless its touch failed half way with an error that says it
// ran nowhere (values, then "SERVER_ERROR lbd: unavailable: ...": the
// node stops at the key it could not touch, as memcached stops a get it
// cannot complete). Then the keys after the last value are sent again as
// a retrieval of their own (see retried), until deadline, and the reply
// is the values before them and its reply. (A key before the failed one
// that missed is asked again: it misses or hits as if asked then.)
func (s *session) touchRest(prefix []byte, keys [][]byte, f *future, ver uint64, deadline time.Time) *future {
	r, sid := s.svc.router, s.sid
	out := newFuture()
	f.attach(func() {
		done, rest, ok := touchedPart(keys, f.data)
		if !ok || !time.Now().Before(deadline) {
			out.complete(f.data)
			return
		}
		fail := newFuture()
		fail.complete(f.data[len(done):])
		g, _ := s.retriedUntil(fail, ver, nil, deadline, getAttempt(r, sid, prefix, rest))
		g = s.touchRest(prefix, rest, g, ver, deadline)
		g.attach(func() { out.complete(append(bytes.Clone(done), g.data...)) })
	})
	return out
}

// touchedPart splits a retrieval reply of keys that ends with an error
// saying it ran nowhere after one value or more: done are its values, rest
// the keys after the last value's. ok is false for any other reply.
func touchedPart(keys [][]byte, reply []byte) (done []byte, rest [][]byte, ok bool) {
	p, next := reply, 0
	for bytes.HasPrefix(p, []byte("VALUE ")) {
		i := bytes.IndexByte(p, '\n')
		n, lok := dataLen(p[:i+1])
		if i < 0 || !lok || len(p) < i+1+n+2 {
			return nil, nil, false
		}
		// The key this value is of: the next one in order with its name.
		for next < len(keys) && !(bytes.HasPrefix(p[6:], keys[next]) && p[6+len(keys[next])] == ' ') {
			next++
		}
		if next == len(keys) {
			return nil, nil, false
		}
		next++
		p = p[i+1+n+2:]
	}
	if len(p) == len(reply) || next == len(keys) || !ranNowhere(p) || bytes.IndexByte(p, '\n') != len(p)-1 {
		return nil, nil, false
	}
	return reply[:len(reply)-len(p)], keys[next:], true
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runLocal runs one request line (with its "\r\n", no data block) in this
// session and returns its reply.
// The reply is built in one buffer the size of the last one.
func (s *session) runLocal(req []byte) *future {
	lw := &s.local
	if lw.buf != nil {
		lw = &evWriter{} // runLocal within runLocal
	}
	lw.buf = make([]byte, 0, max(s.localSize, 64))
	w, noreply := s.w, s.noreply
	s.w = lw
	s.dispatchLocal(req[:len(req)-2])
	s.w, s.noreply = w, noreply
	f := newFuture()
	f.complete(lw.buf)
	s.localSize = min(len(lw.buf), 256<<10)
	lw.buf = nil
	return f
}

// dispatchLocal runs a request line here, never routing it.
func (s *session) dispatchLocal(line []byte) {
	peer := s.peer
	s.peer = true
	s.dispatch(line)
	s.peer = peer
}

// bufWriter is a respWriter into a buffer.
type bufWriter struct{ *bytes.Buffer }

func (bufWriter) Flush() error { return nil }

// mergeGets appends to dst the VALUE blocks of the nodes' replies (parts)
// in the order of keys. A reply that is not a list of values ended by END
// (an error) is the whole answer. Each key's block is in one part only
// (its owner's), in the order that part's keys were asked in, so the
// merge takes, for each key, the next block of the part whose next block
// is that key's. It allocates nothing but dst's growth: it runs for every
// forwarded multi-get, on the loop.
func mergeGets(dst []byte, keys [][]byte, parts [][]byte) []byte {
	size := len("END\r\n")
	for _, p := range parts {
		if !valueList(p) {
			return append(dst, p...)
		}
		size += len(p)
	}
	dst = slices.Grow(dst, size) // one allocation, not one per doubling
	var offs [8]int
	off := offs[:0]
	if len(parts) > len(offs) {
		off = make([]int, 0, len(parts))
	}
	off = off[:len(parts)]
	for _, k := range keys {
		for j, p := range parts {
			b := p[off[j]:]
			if len(b) > 6+len(k) && string(b[:6]) == "VALUE " && bytes.HasPrefix(b[6:], k) && b[6+len(k)] == ' ' {
				n := valueBlockLen(b)
				dst = append(dst, b[:n]...)
				off[j] += n
				break
			}
		}
	}
	return append(dst, "END\r\n"...)
}

// valueList reports whether p is a retrieval reply: VALUE blocks ended by
// END.
func valueList(p []byte) bool {
	for len(p) > 0 {
		if string(p) == "END\r\n" {
			return true
		}
		if !bytes.HasPrefix(p, []byte("VALUE ")) {
			return false
		}
		n := valueBlockLen(p)
		if n == 0 {
			return false
		}
		p = p[n:]
	}
	return false
}

// valueBlockLen returns the length of the VALUE block at the start of p
// (its line and data block), 0 if p does not start with a whole one.
func valueBlockLen(p []byte) int {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		return 0
	}
	n, ok := dataLen(p[:i+1])
	if !ok || len(p) < i+1+n+2 {
		return 0
	}
	return i + 1 + n + 2
}

// routeFlushAll runs flush_all here and on every other node of the
// tenant's map; the reply is this node's unless another node's differs.
func (s *session) routeFlushAll(line []byte) bool {
	return s.broadcast(line, true, func(parts [][]byte) []byte {
		for _, p := range parts[1:] {
			if !bytes.Equal(p, parts[0]) {
				return p
			}
		}
		return parts[0]
	})
}
