package kvs

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Node-to-node connections. A connection opens with one hello line:
//
//	lbd-peer TENANT\r\n        forwarded requests of TENANT's clients
//	lbd-repl TENANT FROM [SEQ]\r\n   replication records from FROM (see repl);
//	                             SEQ orders FROM's streams (see streamSource)
//
// after which a peer connection is a memcached text stream served at this
// node as the slots' primary (never forwarded again): each forwarded
// request is followed by "mn\r\n", so that its reply, whatever it is (none
// for noreply, values, an error), ends at the "MN\r\n".

// peerConnsPerNode is how many pipelined connections a node keeps at most
// to each other node per tenant; a client session always uses the same
// one, so its forwarded requests stay in order. A replicated tenant uses
// them all: the primary's session serving a connection waits for the
// backups on each write, holding up the requests behind it. A tenant with
// no backups never waits there, and uses one per event loop (see
// clusterNode.peerSet): fewer connections carry more requests per write,
// and wake fewer goroutines on either side.
const peerConnsPerNode = 4

// future is a reply that arrives later. Most are awaited by a callback
// (see attach) on an event loop, not by a goroutine: the channel a
// goroutine waits on is made only for one that does (see wait).
type future struct {
	mu   sync.Mutex
	fin  bool
	data []byte
	cb   func()        // called once complete (see attach)
	ch   chan struct{} // closed once complete; made by doneCh
}

func newFuture() *future { return &future{} }

func (f *future) complete(b []byte) {
	f.mu.Lock()
	f.data, f.fin = b, true
	cb, ch := f.cb, f.ch
	f.mu.Unlock()
	if ch != nil {
		close(ch)
	}
	if cb != nil {
		cb()
	}
}

// attach makes cb run once f is complete: now, if it is.
func (f *future) attach(cb func()) {
	f.mu.Lock()
	if f.fin {
		f.mu.Unlock()
		cb()
		return
	}
	f.cb = cb
	f.mu.Unlock()
}

// isDone reports whether f is complete.
func (f *future) isDone() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fin
}

// wait blocks until f is complete; f.data is its reply then.
func (f *future) wait() {
	if !f.isDone() {
		<-f.doneCh()
	}
}

// doneCh returns a channel closed once f is complete.
func (f *future) doneCh() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch == nil {
		f.ch = make(chan struct{})
		if f.fin {
			close(f.ch)
		}
	}
	return f.ch
}

// failed returns a future completed with a SERVER_ERROR line.
func failed(msg string) *future {
	f := newFuture()
	f.complete([]byte("SERVER_ERROR lbd: unavailable: " + msg + "\r\n"))
	return f
}

// peerSet is the connections to one node for one tenant.
type peerSet struct {
	n      *clusterNode
	node   string
	tenant string
	mu     sync.Mutex
	conns  [peerConnsPerNode]*peerConn
	size   int // the connections used, 1 to peerConnsPerNode
	// downUntil: a dial failed; fail fast until then.
	downUntil time.Time
	lastErr   string
}

// connFor returns the connection of session sid (see conn).
func (ps *peerSet) connFor(sid uint64) (*peerConn, string) {
	return ps.conn(int(sid % uint64(ps.size)))
}

// conn returns connection i, dialing it if needed; nil and the reason if
// the node cannot be reached.
func (ps *peerSet) conn(i int) (*peerConn, string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if pc := ps.conns[i]; pc != nil && !pc.isDead() {
		return pc, ""
	}
	if time.Now().Before(ps.downUntil) {
		return nil, ps.lastErr
	}
	c, err := ps.n.dial(ps.node, "lbd-peer "+ps.tenant+"\r\n")
	if err != nil {
		ps.downUntil = time.Now().Add(100 * time.Millisecond)
		ps.lastErr = err.Error()
		return nil, ps.lastErr
	}
	var pc *peerConn
	if ps.n.tier != nil {
		pc = ps.n.tier.pool.peerConn(c, i, ps.node, ps.n.opts.RequestTimeout)
	}
	if pc == nil {
		pc = newPeerConn(c, ps.node, ps.n.opts.RequestTimeout, "mn\r\n", readPeerReply, false)
	}
	ps.conns[i] = pc
	return pc, ""
}

func (ps *peerSet) close() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, pc := range ps.conns {
		if pc != nil {
			pc.fail("closing")
		}
	}
}

// peerConn is one pipelined connection to another node: requests are
// queued with send and sent by flush (or at once by its own goroutine, if
// it was made with autoFlush); replies complete their futures in order.
//
// A forwarding connection of a tenant served by event loops, over plain
// TCP or TLS, is instead one of an event loop's sockets (loop set, c nil; see
// evPool.peerConn): the loop reads its replies and completes their futures
// itself, and send queues in out, which flush writes without blocking.
type peerConn struct {
	c       net.Conn
	node    string
	timeout time.Duration
	suffix  string // appended to every request
	read    func(*bufio.Reader) ([]byte, error)
	kick    chan struct{}
	mu      sync.Mutex
	bw      *bufio.Writer
	q       []*future // awaited replies from q[qh] on (see pop)
	qh      int
	dirty   bool
	dead    bool
	sentAt  time.Time
	// On an event loop: its socket (closed, by the loop only, once
	// fdClosed), the requests not written yet (out from outOff), whether
	// the loop watches for the socket to take more (outArmed), and the
	// replies read and not yet complete (in, the loop's alone).
	loop     *evLoop
	fd       int
	fdClosed bool
	out      []byte
	outOff   int
	outArmed bool
	in       []byte
	// A TLS connection on a loop: the loop reads and writes through tc,
	// over fc, the socket (see fdConn); out holds plaintext.
	tc *tls.Conn
	fc *fdConn
}

func newPeerConn(c net.Conn, node string, timeout time.Duration, suffix string, read func(*bufio.Reader) ([]byte, error), autoFlush bool) *peerConn {
	pc := &peerConn{c: c, node: node, timeout: timeout, suffix: suffix, read: read, bw: bufio.NewWriterSize(c, 32<<10)}
	if autoFlush {
		pc.kick = make(chan struct{}, 1)
		go func() {
			for range pc.kick {
				pc.flush()
				if pc.isDead() {
					return
				}
			}
		}()
	}
	// After kick is set: a connection that fails at once closes it (fail).
	go pc.readLoop()
	return pc
}

func (pc *peerConn) isDead() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.dead
}

// send queues req (which must end with its "\r\n", data included) and
// returns its reply; flush sends what is queued.
func (pc *peerConn) send(req []byte) *future {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.dead {
		return failed("node " + pc.node + ": connection lost")
	}
	f := newFuture()
	if pc.awaited() == 0 {
		pc.sentAt = time.Now()
	}
	pc.q = append(pc.q, f)
	if pc.loop != nil {
		pc.out = append(append(pc.out, req...), pc.suffix...)
	} else {
		pc.bw.Write(req)
		pc.bw.WriteString(pc.suffix)
	}
	pc.dirty = true
	if pc.kick != nil {
		select {
		case pc.kick <- struct{}{}:
		default:
		}
	}
	return f
}

func (pc *peerConn) flush() {
	if pc.loop != nil {
		pc.flushLoop()
		return
	}
	pc.mu.Lock()
	if !pc.dirty || pc.dead {
		pc.mu.Unlock()
		return
	}
	pc.dirty = false
	pc.c.SetWriteDeadline(time.Now().Add(pc.timeout))
	err := pc.bw.Flush()
	pc.mu.Unlock()
	if err != nil {
		pc.fail(err.Error())
	}
}

// pop takes the future of the oldest request awaiting its reply; ok is
// false if none awaits one (a reply nobody asked for). pc.mu is held.
func (pc *peerConn) pop() (f *future, ok bool) {
	if pc.awaited() == 0 {
		return nil, false
	}
	f = pc.q[pc.qh]
	pc.q[pc.qh] = nil
	pc.qh++
	switch {
	case pc.qh == len(pc.q):
		// Empty: the queue starts again at the front of its array, which
		// the next requests reuse rather than grow a new one.
		pc.q, pc.qh = pc.q[:0], 0
	case pc.qh > len(pc.q)/2:
		n := copy(pc.q, pc.q[pc.qh:])
		clear(pc.q[n:])
		pc.q, pc.qh = pc.q[:n], 0
	}
	if pc.awaited() > 0 {
		pc.sentAt = time.Now()
	}
	return f, true
}

// awaited is the number of replies awaited (pc.mu held).
func (pc *peerConn) awaited() int { return len(pc.q) - pc.qh }

// fail closes the connection and fails every reply still awaited.
func (pc *peerConn) fail(why string) {
	pc.mu.Lock()
	q := pc.q[pc.qh:]
	pc.q, pc.qh = nil, 0
	wasDead := pc.dead
	pc.dead = true
	pc.mu.Unlock()
	if pc.kick != nil && !wasDead {
		close(pc.kick)
	}
	if pc.loop != nil {
		// The loop sees the hang-up and closes the socket.
		pc.mu.Lock()
		if !pc.fdClosed {
			shutdownFD(pc.fd)
		}
		pc.mu.Unlock()
	} else {
		pc.c.Close()
	}
	for _, f := range q {
		f.complete([]byte("SERVER_ERROR lbd: node " + pc.node + ": " + why + "\r\n"))
	}
}

// readLoop completes the awaited replies in order.
func (pc *peerConn) readLoop() {
	br := bufio.NewReaderSize(pc.c, 64<<10)
	for {
		pc.c.SetReadDeadline(time.Now().Add(pc.timeout))
		reply, err := pc.read(br)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				pc.mu.Lock()
				idle := pc.awaited() == 0 || time.Since(pc.sentAt) < pc.timeout
				pc.mu.Unlock()
				if idle && len(reply) == 0 {
					continue
				}
				pc.fail("timed out")
				return
			}
			pc.fail("connection lost")
			return
		}
		pc.mu.Lock()
		f, ok := pc.pop()
		pc.mu.Unlock()
		if !ok {
			pc.fail("unexpected reply")
			return
		}
		f.complete(reply)
	}
}

// readPeerReply reads one reply up to its "MN\r\n" (not included): lines,
// and after a VALUE or VA line its data block.
func readPeerReply(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: what ReadSlice returned is
			// the buffer, which the next read overwrites.
			line = bytes.Clone(line)
			var rest []byte
			rest, err = br.ReadBytes('\n')
			line = append(line, rest...)
		}
		if err != nil {
			return out, err
		}
		if string(line) == "MN\r\n" {
			if out == nil {
				out = []byte{}
			}
			return out, nil
		}
		out = append(out, line...)
		if n, ok := dataLen(line); ok {
			start := len(out)
			out = append(out, make([]byte, n+2)...)
			if _, err := io.ReadFull(br, out[start:]); err != nil {
				return out, err
			}
		}
	}
}

// peerReplyEnd finds the first complete reply in buf, as readPeerReply
// reads it: its bytes are buf[:n] and it ends (its "MN\r\n" included) at
// end; ok is false while it is not all in buf.
func peerReplyEnd(buf []byte) (n, end int, ok bool) {
	i := 0
	for {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return 0, 0, false
		}
		line := buf[i : i+j+1]
		if string(line) == "MN\r\n" {
			return i, i + j + 1, true
		}
		i += j + 1
		if d, ok := dataLen(line); ok {
			if d+2 > len(buf)-i {
				return 0, 0, false
			}
			i += d + 2
		}
	}
}

// dataLen returns the length of the data block that follows a VALUE or VA
// reply line (tokens separated by spaces, as this node writes them). It
// allocates nothing: it runs for every value a forwarded get returns.
func dataLen(line []byte) (int, bool) {
	var tok int // the token holding the length
	switch {
	case bytes.HasPrefix(line, []byte("VALUE ")):
		tok = 3
	case bytes.HasPrefix(line, []byte("VA ")):
		tok = 1
	default:
		return 0, false
	}
	line = bytes.TrimRight(line, "\r\n")
	for i := 0; i < tok; i++ {
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 {
			return 0, false
		}
		line = bytes.TrimLeft(line[sp:], " ")
	}
	if sp := bytes.IndexByte(line, ' '); sp >= 0 {
		line = line[:sp]
	}
	if len(line) == 0 {
		return 0, false
	}
	n := 0
	for _, ch := range line {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int(ch-'0')
		if n > maxForwardData {
			return 0, false
		}
	}
	return n, true
}

// acceptLoop serves the peer listener.
func (n *clusterNode) acceptLoop() {
	defer n.wg.Done()
	for {
		c, err := n.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			c.Close()
			return
		}
		if n.cut.Load() || !n.admit(c) {
			n.mu.Unlock()
			c.Close()
			continue
		}
		n.pconns[c] = struct{}{}
		n.mu.Unlock()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			err := n.servePeer(c)
			n.mu.Lock()
			delete(n.pconns, c)
			n.mu.Unlock()
			if err == errOnLoop {
				return // the loop's now: closing a TLS one would say goodbye
			}
			c.Close()
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				n.log.Debug("kvs: peer connection", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// admit applies ClusterOptions.AllowPeer to a new peer connection.
func (n *clusterNode) admit(c net.Conn) bool {
	if n.opts.AllowPeer == nil {
		return true
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil || !n.opts.AllowPeer(ap.Addr().Unmap()) {
		n.log.Warn("kvs: peer connection refused", "remote", c.RemoteAddr().String())
		return false
	}
	return true
}

// newPeerSession returns the session of c, another node's forwarding
// connection, reading from r: it runs the requests here, never forwards.
func newPeerSession(svc *service, r *bufio.Reader, c net.Conn) *session {
	sess := newSession(svc, r, bufio.NewWriterSize(&deadlineWriter{c: c}, 32<<10))
	sess.peer = true
	return sess
}

// errOnLoop: servePeer left the connection to an event loop.
var errOnLoop = errors.New("kvs: peer connection on a loop")

// probeIdle is how long a connection of the leader's health checks stays
// open with no probe (the leader probes every kvs_monitor_interval).
const probeIdle = 30 * time.Second

// serveProbes answers the leader's health checks on c, whose first line
// was a "version": each renews this node's lease and answers VERSION, on
// the one connection the monitor keeps (see probeDialer), until a line
// that is not a "version", an error or probeIdle without a probe.
func (n *clusterNode) serveProbes(c net.Conn, br *bufio.Reader) error {
	for {
		n.renewLease()
		if _, err := io.WriteString(c, "VERSION "+Version+"\r\n"); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(probeIdle))
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) != "version" {
			return fmt.Errorf("a probe connection sent %q", line)
		}
	}
}

// servePeer reads a peer connection's hello and serves it.
func (n *clusterNode) servePeer(c net.Conn) error {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	br := bufio.NewReaderSize(c, readBufSize)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hello, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	c.SetReadDeadline(time.Time{})
	if strings.TrimSpace(hello) == "version" {
		return n.serveProbes(c, br)
	}
	f := strings.Fields(hello)
	if len(f) < 2 {
		return fmt.Errorf("bad hello %q", hello)
	}
	svc := n.service(f[1])
	if svc == nil {
		io.WriteString(c, "SERVER_ERROR lbd: no tenant "+f[1]+" here\r\n")
		return fmt.Errorf("hello for unknown tenant %q", f[1])
	}
	switch {
	case f[0] == "lbd-peer":
		if n.loopPeer(svc, c, br) {
			return errOnLoop
		}
		return newPeerSession(svc, br, c).serve()
	case f[0] == "lbd-repl" && (len(f) == 3 || len(f) == 4):
		var seq uint64
		if len(f) == 4 {
			if seq, err = strconv.ParseUint(f[3], 10, 64); err != nil || seq == 0 {
				return fmt.Errorf("bad hello %q", hello)
			}
		}
		return svc.router.repl.serveBackup(f[2], seq, br, c)
	}
	return fmt.Errorf("bad hello %q", hello)
}

// loopPeer serves a peer connection of svc (c, its input buffered in br
// past the hello) on an event loop, as the loops serve clients: the loop
// runs the forwarded requests with the clients' and writes their replies
// in the same turn, with no goroutine to wake. A plain TCP connection, or
// a TLS one over an fdConn (see loopTLSListener), of a tenant whose slots
// have no backups (see router.loopSafe): a write that must wait for
// backups stays on a goroutine.
// It reports false if c was left to the caller.
func (n *clusterNode) loopPeer(svc *service, c net.Conn, br *bufio.Reader) bool {
	if n.tier == nil || n.tier.pool.size() == 0 || svc.router == nil || !svc.router.loopSafe() {
		return false
	}
	if _, ok := c.(*net.TCPConn); !ok {
		if _, fc := loopTLS(c); fc == nil {
			return false
		}
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return false
	}
	srv := n.psrvs[svc]
	if srv == nil {
		srv = newServer(svc, nil, n.tier.pool)
		srv.peer = true
		if n.psrvs == nil {
			n.psrvs = map[*service]*server{}
		}
		n.psrvs[svc] = srv
	}
	n.mu.Unlock()
	if !srv.enter() {
		return false
	}
	in, _ := br.Peek(br.Buffered())
	if !n.tier.pool.addConn(srv, c, in) {
		srv.release()
		return false
	}
	if n.cut.Load() {
		srv.hangUp() // a partition that began meanwhile missed c
	}
	return true
}

// orderedWriter is a clustered client session's reply writer: replies
// written now and replies that arrive later (forwarded requests) go out in
// request order. Flush sends the session's forwarded requests, waits for
// their replies in order, and writes everything; in an event loop (async),
// Flush only sends, and the loop parks the connection until the replies
// are in (see evLoop.park).
type orderedWriter struct {
	w     respWriter
	async bool
	segs  []segment
	peers []*peerConn // with requests queued since the last Flush
	// sticky: see inFlight.
	sticky map[int]stickyFwd
	// parts is drain's buffer.
	parts [][]byte
}

// segment is bytes written, or a reply to wait for.
type segment struct {
	b []byte
	f *future
	// merge, if set, appends the segment's bytes, made from the replies
	// of fs, to its first argument.
	fs    []*future
	merge func(dst []byte, parts [][]byte) []byte
}

func (o *orderedWriter) Write(p []byte) (int, error) {
	if len(o.segs) == 0 {
		return o.w.Write(p)
	}
	if last := &o.segs[len(o.segs)-1]; last.f == nil && last.merge == nil {
		last.b = append(last.b, p...)
	} else {
		o.segs = append(o.segs, segment{b: bytes.Clone(p)})
	}
	return len(p), nil
}

func (o *orderedWriter) WriteString(s string) (int, error) {
	if len(o.segs) == 0 {
		return o.w.WriteString(s)
	}
	return o.Write([]byte(s))
}

// await adds a reply to wait for, sent on pc.
func (o *orderedWriter) await(f *future, pc *peerConn) {
	o.segs = append(o.segs, segment{f: f})
	o.sent(pc)
}

func (o *orderedWriter) sent(pc *peerConn) {
	if pc != nil && !containsConn(o.peers, pc) {
		o.peers = append(o.peers, pc)
	}
}

func containsConn(pcs []*peerConn, pc *peerConn) bool {
	for _, p := range pcs {
		if p == pc {
			return true
		}
	}
	return false
}

// awaitMerged adds replies to wait for whose bytes merge makes into one.
func (o *orderedWriter) awaitMerged(fs []*future, merge func(dst []byte, parts [][]byte) []byte) {
	o.segs = append(o.segs, segment{fs: fs, merge: merge})
}

// Flush implements respWriter.
func (o *orderedWriter) Flush() error {
	o.sendPeers()
	if o.async {
		return nil
	}
	o.drain()
	return o.w.Flush()
}

// sendPeers sends the requests queued on the session's peer connections.
func (o *orderedWriter) sendPeers() {
	for _, pc := range o.peers {
		pc.flush()
	}
	clear(o.peers)
	o.peers = o.peers[:0]
}

// pending reports whether replies are held back.
func (o *orderedWriter) pending() bool { return len(o.segs) > 0 }

// eachFuture calls fn with every reply held back.
func (o *orderedWriter) eachFuture(fn func(*future)) {
	for _, s := range o.segs {
		if s.f != nil {
			fn(s.f)
		}
		for _, f := range s.fs {
			fn(f)
		}
	}
}

// writerMark is a position in an orderedWriter (see mark).
type writerMark struct{ segs, last int }

// mark returns the current end of the held-back replies.
func (o *orderedWriter) mark() writerMark {
	m := writerMark{segs: len(o.segs)}
	if m.segs > 0 {
		m.last = len(o.segs[m.segs-1].b)
	}
	return m
}

// rollback forgets what was written after m (a request undone).
func (o *orderedWriter) rollback(m writerMark) {
	if m.segs == 0 {
		clear(o.segs)
		o.segs = o.segs[:0]
		return
	}
	o.segs = o.segs[:m.segs]
	o.segs[m.segs-1].b = o.segs[m.segs-1].b[:m.last]
}

// drain waits for the held-back replies in order and writes them to w.
func (o *orderedWriter) drain() {
	for i := range o.segs {
		s := &o.segs[i]
		switch {
		case s.f != nil:
			s.f.wait()
			o.w.Write(s.f.data)
		case s.merge != nil:
			parts := o.parts[:0]
			for _, f := range s.fs {
				f.wait()
				parts = append(parts, f.data)
			}
			if ew, ok := o.w.(*evWriter); ok {
				ew.buf = s.merge(ew.buf, parts) // straight into the output
			} else {
				o.w.Write(s.merge(nil, parts))
			}
			clear(parts)
			o.parts = parts[:0]
		default:
			o.w.Write(s.b)
		}
		o.segs[i] = segment{}
	}
	o.segs = o.segs[:0]
	// Every forward recorded in sticky was awaited above: none is in
	// flight. Emptied, the map stays as small as one batch of requests
	// (rather than one entry per slot the session ever used), and the
	// lookups of the next requests are cheap.
	clear(o.sticky)
}
