//go:build linux

package kvs

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loops serve the common case (small requests and replies) the
// way memcached does: a few threads wait in epoll and run every complete
// request in a connection's buffer, then write the replies in one write.
// That saves the Go netpoller's extra read (which fails with EAGAIN) and a
// goroutine wake-up per request. A connection that needs blocking I/O (a
// request or reply too big for its buffers, a client that does not read)
// is handed to a goroutine running the same session code on a net.Conn.

const (
	evInitBuf = 16 << 10 // initial input buffer
	evMaxIn   = 64 << 10 // input buffered before handing off
	evOutSoft = 256 << 10
)

// errNeedMore reports a request that is not complete in the buffer.
var errNeedMore = errors.New("kvs: need more input")

// evPool is the set of event loops shared by a Tier's tenants.
type evPool struct {
	loops []*evLoop
	wg    sync.WaitGroup
	// cpuLoop maps a CPU to the loop pinned to it; nil when the loops
	// are not pinned.
	cpuLoop map[int]int
}

// size returns the number of event loops (0 for no pool).
func (p *evPool) size() int {
	if p == nil {
		return 0
	}
	return len(p.loops)
}

type evLoop struct {
	epfd     int
	wakefd   int
	stopping atomic.Bool
	idx      int // in the pool
	// holdP makes the loop block in epoll_wait without telling the
	// scheduler (see wait); set only while the process has a P to spare
	// for every loop.
	holdP bool
	// tid is the loop's thread once the loop is locked to it and has set
	// its mask and policy (pinned or under SCHED_BATCH); 0 before, and for
	// a loop that is neither.
	tid   atomic.Int32
	mu    sync.Mutex
	conns map[int32]*evConn
	// la is lookAhead's buffer.
	la []lookahead
	// posted are parked connections whose replies are all in (see park);
	// busy: the loop takes them before it waits again, no need to wake
	// it (see post).
	postMu sync.Mutex
	posted []*evConn
	busy   bool
	// pconns are the loop's forwarding connections (see peerConn), by
	// socket, as conns.
	pconns map[int32]*peerConn
	// peers are the peer connections with forwarded requests queued in
	// this turn of the loop: sent together at its end (see park), before
	// the replies of the connections in later are written.
	peers []*peerConn
	later []*evConn
}

// evConn is a connection served by an event loop.
type evConn struct {
	fd   int
	srv  *server
	sess *session
	in   evReader
	out  evWriter
	// A clustered tenant's connection is parked while replies from other
	// nodes are awaited (see park); inOff: its input is not watched.
	parked  bool
	inOff   bool
	waiting atomic.Int32
	onReply func() // counts a reply in (see park)
	// A protocol's connection (ps set; sess is nil): its state, the input
	// its next request wants, and the answer of a Slow step (see Step).
	ps        *ProtoServer
	pc        ProtoConn
	act       *activity
	want      int
	slow      []byte
	slowClose bool
	// closeAfter: close once the answers handed to a goroutine are out.
	closeAfter bool
	// quitting: it sent "quit" behind forwarded requests and is parked
	// until their replies are in; resumed, it writes them and closes.
	quitting bool
	// A TLS connection (another node's, see clusterNode.loopPeer): the
	// loop reads and writes through tc, over fc, the socket.
	tc *tls.Conn
	fc *fdConn
}

// newEvPool starts the event loops opts asks for: opts.EventLoops of them
// (if <= 0, one per CPU the process may use, at most GOMAXPROCS). Unless
// opts.NoCPUAffinity, each loop is pinned to its share of those CPUs (see
// cpuShares), and a new connection goes to the loop of the CPU that
// received it. Unless opts.NoBatchScheduling, each loop's thread runs
// under SCHED_BATCH (see setBatchPolicy).
func newEvPool(opts Options, log *slog.Logger) (*evPool, error) {
	p := &evPool{}
	n := opts.EventLoops
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
		var mask unix.CPUSet
		if unix.SchedGetaffinity(0, &mask) == nil && mask.Count() > 0 {
			n = min(n, mask.Count())
		}
	}
	var shares []unix.CPUSet
	if !opts.NoCPUAffinity {
		var err error
		if shares, p.cpuLoop, err = cpuShares(n); err != nil {
			log.Info("kvs: event loops not pinned to CPUs", "reason", err)
		}
	}
	batch := !opts.NoBatchScheduling
	holdP := n < runtime.GOMAXPROCS(0)
	for i := range n {
		l, err := newEvLoop()
		if err != nil {
			p.close()
			return nil, err
		}
		l.holdP, l.idx = holdP, i
		p.loops = append(p.loops, l)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if shares != nil || batch {
				var share *unix.CPUSet
				if shares != nil {
					share = &shares[i]
				}
				l.lockThread(share, batch, log.With("loop", i))
			}
			l.run()
		}()
	}
	return p, nil
}

// lockThread locks the loop's goroutine to its thread for good (a goroutine
// that exits locked takes its thread with it, so the thread's mask and
// policy end with the loop), pins the thread to share unless it is nil,
// and puts it under SCHED_BATCH if batch.
func (l *evLoop) lockThread(share *unix.CPUSet, batch bool, log *slog.Logger) {
	runtime.LockOSThread()
	if share != nil {
		if err := unix.SchedSetaffinity(0, share); err != nil {
			log.Warn("kvs: pinning an event loop", "err", err)
		}
	}
	if batch {
		if err := setBatchPolicy(); err != nil {
			log.Warn("kvs: event loop scheduling policy", "err", err)
		}
	}
	l.tid.Store(int32(unix.Gettid()))
}

// setBatchPolicy moves the calling thread from SCHED_OTHER to SCHED_BATCH,
// keeping its nice value; a thread under another policy (set by the
// operator, say with chrt) keeps it. A SCHED_BATCH thread that wakes never
// preempts the thread running on its CPU: it runs when that one sleeps or
// its time slice ends, and gets its fair share of the CPU as before. A loop
// wakes when a request arrives; when its client runs on the same CPU (a
// client on the node itself, or a benchmark on loopback), preempting the
// client at once stops it in the middle of sending its next requests, and
// both then pay a context switch per request. The cost: a loop that wakes
// beside a CPU-bound thread of another program waits for that thread's
// slice to end (see docs/benchmarks.md).
func setBatchPolicy() error {
	cur, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return fmt.Errorf("sched_getattr: %w", err)
	}
	attr, ok := batchAttr(*cur)
	if !ok {
		return nil
	}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Errorf("sched_setattr SCHED_BATCH: %w", err)
	}
	return nil
}

// batchAttr returns the attributes that put a thread whose attributes are
// cur under SCHED_BATCH with the same nice value and reset-on-fork flag, or
// false if cur's policy is not SCHED_OTHER.
func batchAttr(cur unix.SchedAttr) (unix.SchedAttr, bool) {
	if cur.Policy != unix.SCHED_NORMAL {
		return unix.SchedAttr{}, false
	}
	return unix.SchedAttr{
		Size:   unix.SizeofSchedAttr,
		Policy: unix.SCHED_BATCH,
		Flags:  cur.Flags & unix.SCHED_FLAG_RESET_ON_FORK,
		Nice:   cur.Nice,
	}, true
}

// cpuShares deals the CPUs in the process's affinity mask to n loops in
// turn (loop i gets the i-th, the (i+n)-th, ... CPU), and maps every CPU
// to its loop. With one loop per CPU, as by default, each loop has a CPU
// of its own.
func cpuShares(n int) ([]unix.CPUSet, map[int]int, error) {
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		return nil, nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	shares := make([]unix.CPUSet, n)
	cpuLoop := make(map[int]int)
	j := 0
	for cpu := 0; cpu < len(mask)*64; cpu++ {
		if mask.IsSet(cpu) {
			shares[j%n].Set(cpu)
			cpuLoop[cpu] = j % n
			j++
		}
	}
	if j < n {
		return nil, nil, fmt.Errorf("more event loops (%d) than CPUs (%d)", n, j)
	}
	return shares, cpuLoop, nil
}

// pickSlack is how many connections more than the least loaded loop the
// loop of a connection's CPU may serve and still take it.
const pickSlack = 2

// pick chooses the loop for a new connection on fd: the one pinned to
// the CPU that received its last packet (for a new connection, the
// handshake's), so that the kernel's network processing for it, its
// loop, and on loopback its client, share a CPU and wake each other
// without crossing CPUs; but not if that loop already serves more than
// pickSlack connections more than the least loaded one (a client that
// opens its whole pool from one thread must not land on one loop).
// Otherwise, the least loaded loop.
func (p *evPool) pick(fd int) *evLoop {
	least, min := p.loops[0], p.loops[0].load()
	for _, l := range p.loops[1:] {
		if n := l.load(); n < min {
			least, min = l, n
		}
	}
	if p.cpuLoop != nil {
		if cpu, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_INCOMING_CPU); err == nil {
			if i, ok := p.cpuLoop[cpu]; ok && p.loops[i].load() <= min+pickSlack {
				return p.loops[i]
			}
		}
	}
	return least
}

// load is the number of connections l serves.
func (l *evLoop) load() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

func newEvLoop() (*evLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("kvs: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("kvs: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("kvs: epoll_ctl: %w", err)
	}
	return &evLoop{epfd: epfd, wakefd: wakefd, conns: make(map[int32]*evConn), pconns: make(map[int32]*peerConn)}, nil
}

// close stops the loops; their connections must be gone already.
func (p *evPool) close() {
	if p == nil {
		return
	}
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for _, l := range p.loops {
		l.stopping.Store(true)
		unix.Write(l.wakefd, one)
	}
	p.wg.Wait()
	for _, l := range p.loops {
		for _, pc := range l.pconns {
			l.closePeer(pc, "closing")
		}
		unix.Close(l.epfd)
		unix.Close(l.wakefd)
	}
	p.loops = nil
}

// add takes nc out of Go's poller and serves it on a loop. It reports
// false if the connection could not be moved (the caller serves it).
func (p *evPool) add(srv *server, nc net.Conn) bool {
	return p.addConn(srv, nc, nil)
}

// addConn is add for a connection whose first input, in, was read
// already: the loop runs it first. A peer server's connection (see
// clusterNode.loopPeer) gets a peer session.
func (p *evPool) addConn(srv *server, nc net.Conn, in []byte) bool {
	raw := nc
	tc, fc := loopTLS(nc)
	if fc != nil {
		raw = fc.Conn
	}
	fd, ok := p.takeFD(raw)
	if !ok {
		return false
	}
	cfg := srv.svc.cfg()
	c := &evConn{fd: fd, srv: srv, tc: tc, fc: fc}
	l := p.pick(fd)
	c.in.buf = make([]byte, len(in), max(evInitBuf, len(in)))
	copy(c.in.buf, in)
	if fc != nil {
		// Nothing waits for room to write on the loop: a reply the
		// socket does not take hands c to a goroutine (see writeOut).
		fc.setFD(fd, func(bool) {})
		// What crypto/tls read already, no EPOLLIN announces.
		if !c.readTLS() {
			unix.Close(fd)
			srv.release()
			return true
		}
		in = c.in.buf
	}
	c.in.maxGetLine = cfg.MaxGetLine
	c.sess = newSession(srv.svc, &c.in, &c.out)
	c.sess.outPending = c.out.pending
	c.sess.outLimit = cfg.MaxItemSize + evOutSoft
	if srv.peer {
		c.sess.peer = true
	} else if r := srv.svc.router; r != nil {
		ow := &orderedWriter{w: &c.out, async: true}
		// sid modulo the loops is the loop's index: the session
		// forwards over its loop's peer connections (see peerConn).
		sid := r.sessID.Add(1)*uint64(len(p.loops)) + uint64(l.idx)
		c.sess.w, c.sess.ow, c.sess.sid = ow, ow, sid
	}

	srv.mu.Lock()
	if srv.done {
		srv.mu.Unlock()
		unix.Close(fd)
		srv.release()
		return true
	}
	srv.evconns[c] = struct{}{}
	srv.mu.Unlock()

	if len(in) > 0 {
		// Run at the loop's next turn, as a connection whose replies
		// are in (see resumePosted).
		c.parked = true
	}
	if err := l.attach(c); err != nil {
		srv.svc.log.Warn("kvs: connection not served", "tenant", srv.svc.name, "err", err)
		return true
	}
	if len(in) > 0 {
		l.post(c)
	}
	return true
}

// attach puts c on its loop and has the loop watch its socket; if the
// loop cannot, c is closed and the error returned.
func (p *evPool) attach(c *evConn) error {
	return p.pick(c.fd).attach(c)
}

// attach puts c on l (see evPool.attach).
func (l *evLoop) attach(c *evConn) error {
	l.mu.Lock()
	l.conns[int32(c.fd)] = c
	l.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		l.closeConn(c)
		return fmt.Errorf("kvs: epoll_ctl add: %w", err)
	}
	return nil
}

// takeFD takes nc's socket out of Go's poller: it returns a duplicate of
// its descriptor and closes nc; false if nc cannot be moved to the loops.
func (p *evPool) takeFD(nc net.Conn) (int, bool) {
	tc, ok := nc.(*net.TCPConn)
	if !ok || len(p.loops) == 0 {
		return -1, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd := -1
	raw.Control(func(s uintptr) {
		fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	})
	if err != nil || fd < 0 {
		return -1, false
	}
	// The duplicate shares the socket (and its O_NONBLOCK); closing the
	// original only removes it from Go's poller.
	nc.Close()
	return fd, true
}

func (l *evLoop) run() {
	events := make([]unix.EpollEvent, 256)
	var ready []*evConn
	for {
		n, err := l.wait(events)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		l.setBusy()
		ready = ready[:0]
		for i := range n {
			fd := events[i].Fd
			if int(fd) == l.wakefd {
				if l.stopping.Load() {
					return
				}
				l.readWake()
				continue
			}
			l.mu.Lock()
			c := l.conns[fd]
			var pc *peerConn
			if c == nil {
				pc = l.pconns[fd]
			}
			l.mu.Unlock()
			if pc != nil {
				l.peerEvent(pc, events[i].Events)
				continue
			}
			if c != nil && l.fill(c) && !c.parked {
				ready = append(ready, c)
			}
		}
		if len(ready) > 1 {
			l.lookAhead(ready)
		}
		for _, c := range ready {
			l.process(c)
		}
		clear(ready) // holds no connection, and so no store, past its turn
		// Resumed connections forward more: send, and resume those
		// whose replies are in, until none is left.
		for {
			l.sendPeers()
			l.writeLater()
			if !l.resumePosted() {
				break
			}
		}
	}
}

// prefetcher is a store that can start loading what a lookup will read.
type prefetcher interface {
	prefetchSlot(key []byte) lookahead
}

// lookAhead starts loading, for the first request buffered on each of cs,
// the index slot and then the block its lookup reads. Served one after the
// other, each request would wait for those two cache misses in turn (under
// load, the kernel's network stack evicts them between two requests);
// started together, the misses of a whole batch overlap.
func (l *evLoop) lookAhead(cs []*evConn) {
	la := l.la[:0]
	for _, c := range cs {
		var a lookahead
		if c.sess == nil {
			// A protocol's connection: nothing to guess.
		} else if st, ok := c.sess.svc.store.(prefetcher); ok {
			if key := requestKey(c.in.buf); key != nil {
				a = st.prefetchSlot(key)
			}
		}
		la = append(la, a)
	}
	for _, a := range la {
		a.prefetchBlock()
	}
	clear(la) // holds no store past its turn
	l.la = la[:0]
}

// requestKey returns the key of the request at the start of buf if its
// command takes a key as its first argument (get, set, delete, mg, ...),
// nil if not or if the key is not all in buf. It only guesses: the
// request is parsed when it runs.
func requestKey(buf []byte) []byte {
	sp := bytes.IndexByte(buf[:min(len(buf), 8)], ' ')
	if sp < 0 {
		return nil
	}
	switch string(buf[:sp]) {
	case "get", "gets", "set", "add", "replace", "append", "prepend", "cas",
		"delete", "incr", "decr", "touch", "mg", "ms", "md", "ma":
	default:
		return nil
	}
	key := buf[sp+1:]
	for i, ch := range key {
		if ch == ' ' || ch == '\r' || ch == '\n' {
			if i == 0 {
				return nil
			}
			return key[:i]
		}
	}
	return nil
}

// wait returns the loop's ready descriptors, blocking until there are some.
//
// It polls first without blocking: under load there usually is work. To
// block, a Go program tells the scheduler it enters a system call; if the
// call lasts beyond 20µs, sysmon hands its P to another thread, and the
// loop must win a P back when epoll_wait returns. For a loop that blocks
// thousands of times a second that costs context switches, and keeps
// sysmon itself waking every 20µs. So while the process has a P to spare
// for every loop (GOMAXPROCS above the loop count, as lbd sets it), the
// loop first blocks for up to holdWait without telling the scheduler,
// keeping its P. Only a loop idle that long blocks the usual way: sysmon
// preempts a P held for 10ms, and an idle daemon must not be woken for
// that. The runtime can stop a loop holding its P whenever it must
// (garbage collection): it signals the thread, which interrupts
// epoll_wait (never restarted after a signal), and the loop yields.
func (l *evLoop) wait(events []unix.EpollEvent) (int, error) {
	n, err := rawEpollWait(l.epfd, events, 0)
	if err != nil || n > 0 {
		return n, err
	}
	if l.holdP {
		n, err = rawEpollWait(l.epfd, events, holdWait)
		if err == unix.EINTR {
			runtime.Gosched()
		}
		if err != nil || n > 0 {
			return n, err
		}
	}
	return unix.EpollWait(l.epfd, events, -1)
}

// holdWait is how long, in milliseconds, a loop waits for work holding
// its P (see wait): half the time after which sysmon preempts a P.
const holdWait = 5

// fill reads what c's socket has into its input buffer. It reports whether
// there is input to process; if not, c may have been closed or handed off.
func (l *evLoop) fill(c *evConn) bool {
	in := &c.in
	limit := evMaxIn
	if c.pc != nil {
		limit = protoLimit(c.want)
	}
	if len(in.buf) == cap(in.buf) {
		if c.parked && cap(in.buf) >= limit {
			l.watchInput(c, false)
			return false
		}
		if cap(in.buf) >= limit {
			if c.pc != nil {
				l.closeConn(c) // a request over the protocol's limits
				return false
			}
			// A request bigger than the buffer: let a goroutine stream it.
			l.handoff(c)
			return false
		}
		nb := make([]byte, len(in.buf), min(2*cap(in.buf), limit))
		copy(nb, in.buf)
		in.buf = nb
	}
	if c.tc != nil {
		n := len(in.buf)
		if !c.readTLS() {
			l.closeConn(c)
			return false
		}
		if c.act != nil && len(in.buf) > n {
			c.act.touched.Store(true)
		}
		return len(in.buf) > n
	}
	n, err := rawRead(c.fd, in.buf[len(in.buf):cap(in.buf)])
	if err != nil {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return false
		}
		l.closeConn(c)
		return false
	}
	if n == 0 { // EOF
		l.closeConn(c)
		return false
	}
	in.buf = in.buf[:len(in.buf)+n]
	if c.act != nil {
		c.act.touched.Store(true)
	}
	return true
}

// process runs every complete request in c's input buffer and writes the
// replies.
func (l *evLoop) process(c *evConn) {
	if c.pc != nil {
		l.processProto(c)
		return
	}
	if c.srv.peer && !c.srv.svc.router.loopSafe() {
		// A write would wait for backups (see loopPeer).
		l.handoff(c)
		return
	}
	in := &c.in
	for {
		var quit, handoff, full bool
		if c.quitting {
			quit = true // resumed: its replies are in
		} else {
			quit, handoff, full = runBuffered(c.sess, in, &c.out)
		}
		if ow := c.sess.ow; ow != nil && ow.pending() && l.park(c) {
			// Even a connection that quits, or that a goroutine must
			// take, waits parked for the replies to its forwarded
			// requests: the loop never blocks for them, since it may be
			// the one to read them (see peerEvent). Resumed, it quits,
			// or runs again the request a goroutine must run.
			c.quitting = quit
			return
		}
		if !quit && !handoff && !full && len(l.peers) > 0 {
			// Requests wait to be forwarded: they go first, and the
			// other nodes run them while the loop writes replies.
			l.later = append(l.later, c)
			return
		}
		blocked, err := writeOut(c)
		switch {
		case err != nil || quit:
			l.closeConn(c)
			return
		case handoff || blocked:
			// The next request, or a client that reads slowly, needs a
			// goroutine that can block.
			l.handoff(c)
			return
		case !full:
			return
		}
		// The replies filled the output budget before every buffered
		// request ran, and they are written: run the rest now (no new
		// input may come to wake us).
	}
}

// writeLater writes the replies process left for after the turn's
// forwarded requests were sent.
func (l *evLoop) writeLater() {
	for i, c := range l.later {
		l.later[i] = nil
		blocked, err := writeOut(c)
		switch {
		case err != nil:
			l.closeConn(c)
		case blocked:
			l.handoff(c)
		}
	}
	l.later = l.later[:0]
}

// writeOut writes c's replies; blocked means the socket took only part of
// them (EAGAIN), err that the connection failed.
func writeOut(c *evConn) (blocked bool, err error) {
	if c.tc != nil {
		if c.out.off < len(c.out.buf) {
			if _, err := c.tc.Write(c.out.buf[c.out.off:]); err != nil {
				return false, err
			}
		}
		c.out.buf, c.out.off = c.out.buf[:0], 0
		if cap(c.out.buf) > evOutSoft {
			c.out.buf = nil
		}
		return c.fc.pending() > 0, nil
	}
	for c.out.off < len(c.out.buf) {
		n, err := rawWrite(c.fd, c.out.buf[c.out.off:])
		if n > 0 {
			c.out.off += n
		}
		if errors.Is(err, unix.EAGAIN) {
			return true, nil
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false, err
		}
	}
	c.out.buf, c.out.off = c.out.buf[:0], 0
	if cap(c.out.buf) > evOutSoft {
		c.out.buf = nil
	}
	return false, nil
}

func (l *evLoop) forget(c *evConn) {
	l.mu.Lock()
	delete(l.conns, int32(c.fd))
	l.mu.Unlock()
}

// closeConn closes an event-loop connection.
func (l *evLoop) closeConn(c *evConn) {
	l.forget(c)
	if c.ps != nil {
		c.ps.mu.Lock()
		delete(c.ps.evfds, c.fd)
		unix.Close(c.fd)
		c.ps.mu.Unlock()
		c.ps.release()
		return
	}
	srv := c.srv
	srv.mu.Lock()
	delete(srv.evconns, c)
	unix.Close(c.fd) // also leaves the epoll set
	srv.mu.Unlock()
	c.sess.flush()
	srv.release()
}

// handoff moves c to a goroutine with what it has buffered either way.
func (l *evLoop) handoff(c *evConn) {
	l.forget(c)
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	if c.ps != nil {
		l.handoffProto(c)
		return
	}
	srv := c.srv
	f := os.NewFile(uintptr(c.fd), "kvs")
	nc, err := net.FileConn(f)
	raw := nc
	if err == nil && c.tc != nil {
		// The TLS connection goes on over Go's connection.
		c.fc.toGo(nc)
		nc = c.tc
	}
	srv.mu.Lock()
	delete(srv.evconns, c)
	f.Close()
	if err == nil && !srv.done {
		srv.conns[nc] = struct{}{}
	} else if err == nil {
		raw.Close() // not nc: a TLS goodbye would write on the loop
		err = net.ErrClosed
	}
	srv.mu.Unlock()
	c.sess.flush()
	if err != nil {
		srv.release()
		return
	}
	in := bytes.Clone(c.in.buf[c.in.pos:])
	out := bytes.Clone(c.out.buf[c.out.off:])
	if c.tc != nil {
		fc, skip := c.fc, c.in.skip
		go func() {
			// What the loop's socket did not take goes first.
			if err := fc.flushGo(); err != nil {
				srv.untrack(nc)
				nc.Close()
				srv.release()
				return
			}
			srv.serveHandedOff(nc, in, skip, out)
		}()
		return
	}
	go srv.serveHandedOff(nc, in, c.in.skip, out)
}

// readTLS reads what c's TLS connection has into its input buffer (see
// readAllTLS), past the loop's limits if it must (the other node's
// pipelined requests). It reports false if the connection failed.
func (c *evConn) readTLS() bool {
	var ok bool
	c.in.buf, ok = readAllTLS(c.tc, c.in.buf)
	return ok
}

// runBuffered runs every complete request buffered in in, appending the
// replies to out. quit means the connection must close after writing out;
// handoff means the next request must run in a goroutine (the input from
// in.pos on is unprocessed); full means it stopped with requests left
// because out reached evOutSoft.
func runBuffered(s *session, in *evReader, out *evWriter) (quit, handoff, full bool) {
	if in.skip > 0 {
		d := min(in.skip, len(in.buf)-in.pos)
		in.pos += d
		in.skip -= d
	}
	for in.pos < len(in.buf) && out.pending() < evOutSoft {
		mark, outMark := in.pos, len(out.buf)
		var owMark writerMark
		if s.ow != nil {
			owMark = s.ow.mark()
		}
		line, err := s.readLine()
		if err == nil {
			s.ctr[cCommands]++
			err = s.dispatch(line)
		}
		if s.overflow || err == errNeedMore {
			// Not run: undo, and retry with more input or in a goroutine.
			in.pos, in.skip = mark, 0
			out.buf = out.buf[:outMark]
			if s.ow != nil {
				s.ow.rollback(owMark)
			}
			handoff = s.overflow
			s.overflow = false
			break
		}
		if err != nil {
			quit = true
			break
		}
	}
	full = !quit && !handoff && in.pos < len(in.buf) && out.pending() >= evOutSoft
	s.svc.ctr.merge(&s.ctr)
	if rest := len(in.buf) - in.pos; rest == 0 {
		in.buf = in.buf[:0]
	} else if in.pos > 0 {
		copy(in.buf, in.buf[in.pos:])
		in.buf = in.buf[:rest]
	}
	in.pos = 0
	return quit, handoff, full
}

// evReader is a connection's input buffer with memcached's line limits.
// It never blocks: an incomplete request yields errNeedMore, and the loop
// rewinds to the request's start.
type evReader struct {
	buf        []byte
	pos        int
	skip       int
	maxGetLine int
}

// ReadSlice returns the next line, errNeedMore if it is incomplete.
func (r *evReader) ReadSlice(delim byte) ([]byte, error) {
	avail := r.buf[r.pos:]
	if i := bytes.IndexByte(avail, delim); i >= 0 {
		r.pos += i + 1
		return avail[:i+1], nil
	}
	if len(avail) > r.maxGetLine || (len(avail) > maxLineNoGet && !isGetPrefix(avail)) {
		return nil, errLineTooLong
	}
	return nil, errNeedMore
}

// Buffered is the number of unread bytes.
func (r *evReader) Buffered() int { return len(r.buf) - r.pos }

// Discard drops n bytes; what is not buffered yet is dropped as it comes.
func (r *evReader) Discard(n int) (int, error) {
	avail := len(r.buf) - r.pos
	if n > avail {
		r.skip = n - avail
		r.pos = len(r.buf)
		return n, nil
	}
	r.pos += n
	return n, nil
}

// Read copies buffered bytes, errNeedMore if there are none.
func (r *evReader) Read(p []byte) (int, error) {
	if r.pos == len(r.buf) {
		return 0, errNeedMore
	}
	n := copy(p, r.buf[r.pos:])
	r.pos += n
	return n, nil
}

// shutdownFD hangs up a connection's socket.
func shutdownFD(fd int) { unix.Shutdown(fd, unix.SHUT_RDWR) }

// rawRead and rawWrite skip the scheduler's syscall bookkeeping: the
// socket is non-blocking, so the calls return at once.
func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// rawEpollWait is epoll_pwait (no signal mask) made without the scheduler's
// system call bookkeeping; timeout is in milliseconds, -1 to block.
func rawEpollWait(epfd int, events []unix.EpollEvent, timeout int) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(timeout), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
