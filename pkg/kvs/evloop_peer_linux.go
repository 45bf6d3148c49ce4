//go:build linux

package kvs

import (
	"bytes"
	"errors"
	"net"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Forwarding connections on the event loops. A clustered tenant's client
// connection on a loop forwards requests over peer connections; were their
// replies read by a goroutine per connection, each reply would wake that
// goroutine (through Go's poller), which would wake the loop (through its
// eventfd): two thread wake-ups per batch of replies, on both CPUs. So a
// peer connection (plain TCP, or TLS: see fdConn) is a socket of an event
// loop, as its clients' are: the loop reads the replies, completes their futures (which posts
// the parked connections to the loop itself, without waking anything, see
// post), and resumes the connections in the same turn.
//
// Connection i of every peer set (see peerSet.conn) goes to loop i (modulo
// the loops), and a client connection on loop i forwards over connection
// i of each set (see evPool.add): with no more loops than peerConnsPerNode
// a loop reads the replies of its own connections only.
//
// A TLS connection (the daemon's mutual TLS), dialed over an fdConn, goes
// to its loop too once its handshake is done: the loop reads and writes it
// through crypto/tls (see fdConn).

// peerConn makes c, a new forwarding connection (index i of its set) to
// node, a socket of an event loop; nil (c untouched) if it cannot be: no
// loops, or neither plain TCP nor TLS over an fdConn.
func (p *evPool) peerConn(c net.Conn, i int, node string, timeout time.Duration) *peerConn {
	if p.size() == 0 {
		return nil
	}
	raw := c
	tc, fc := loopTLS(c)
	if fc != nil {
		raw = fc.Conn
	}
	if _, ok := raw.(*net.TCPConn); !ok {
		return nil
	}
	fd, ok := p.takeFD(raw)
	if !ok {
		return nil
	}
	l := p.loops[i%len(p.loops)]
	pc := &peerConn{node: node, timeout: timeout, suffix: "mn\r\n", loop: l, fd: fd, in: make([]byte, 0, evInitBuf), tc: tc, fc: fc}
	if fc != nil {
		fc.setFD(fd, func(out bool) { l.watchPeer(pc, out) })
		// What crypto/tls read already (a session ticket), no EPOLLIN
		// announces.
		if !pc.readTLS() {
			pc.fdClosed, pc.dead = true, true
			unix.Close(fd)
			return pc // dead: its requests fail, and the set dials again
		}
	}
	l.mu.Lock()
	l.pconns[int32(fd)] = pc
	l.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.mu.Lock()
		delete(l.pconns, int32(fd))
		l.mu.Unlock()
		pc.fdClosed, pc.dead = true, true
		unix.Close(fd)
		return pc // dead: its requests fail, and the set dials again
	}
	go pc.watch()
	return pc
}

// watch fails pc once its oldest awaited reply is late by its timeout
// (the loop does not keep time); it ends with pc.
func (pc *peerConn) watch() {
	t := time.NewTicker(max(pc.timeout/4, time.Millisecond))
	defer t.Stop()
	for range t.C {
		pc.mu.Lock()
		dead := pc.dead
		late := pc.awaited() > 0 && time.Since(pc.sentAt) >= pc.timeout
		pc.mu.Unlock()
		if dead {
			return
		}
		if late {
			pc.fail("timed out")
			return
		}
	}
}

// flushLoop writes what pc has queued without blocking: what the socket
// does not take now, the loop writes once it can (see peerEvent).
func (pc *peerConn) flushLoop() {
	pc.mu.Lock()
	if pc.dead || pc.fdClosed {
		pc.mu.Unlock()
		return
	}
	if pc.tc != nil {
		// Sealed into records; what the socket does not take waits in
		// pc.fc for EPOLLOUT.
		var err error
		if len(pc.out) > 0 {
			_, err = pc.tc.Write(pc.out)
		}
		pc.out = pc.out[:0]
		if cap(pc.out) > evOutSoft {
			pc.out = nil
		}
		pc.mu.Unlock()
		if err != nil {
			pc.fail("connection lost")
		}
		return
	}
	var err error
	for pc.outOff < len(pc.out) {
		var n int
		n, err = rawWrite(pc.fd, pc.out[pc.outOff:])
		if n > 0 {
			pc.outOff += n
		}
		if errors.Is(err, unix.EINTR) {
			err = nil
			continue
		}
		if err != nil {
			break
		}
	}
	if errors.Is(err, unix.EAGAIN) {
		err = nil
		if !pc.outArmed {
			pc.outArmed = true
			pc.loop.watchPeer(pc, true)
		}
	} else if err == nil {
		pc.out, pc.outOff = pc.out[:0], 0
		if cap(pc.out) > evOutSoft {
			pc.out = nil
		}
		if pc.outArmed {
			pc.outArmed = false
			pc.loop.watchPeer(pc, false)
		}
	}
	pc.mu.Unlock()
	if err != nil {
		pc.fail("connection lost")
	}
}

// watchPeer turns the watching of pc's socket for room to write on or off
// (pc.mu held, its socket open).
func (l *evLoop) watchPeer(pc *peerConn, out bool) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(pc.fd)}
	if out {
		ev.Events |= unix.EPOLLOUT
	}
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, pc.fd, &ev)
}

// peerEvent serves an event of one of the loop's peer connections: it
// writes what waits to be written and reads the replies in, completing
// their futures.
func (l *evLoop) peerEvent(pc *peerConn, events uint32) {
	if events&unix.EPOLLOUT != 0 {
		if pc.fc != nil {
			if err := pc.fc.flushPending(); err != nil {
				l.closePeer(pc, "connection lost")
				return
			}
		} else {
			pc.flushLoop()
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	if pc.tc != nil {
		if !pc.readTLS() {
			l.closePeer(pc, "connection lost")
			return
		}
	} else {
		if len(pc.in) == cap(pc.in) {
			pc.in = slices.Grow(pc.in, cap(pc.in))
		}
		n, err := rawRead(pc.fd, pc.in[len(pc.in):cap(pc.in)])
		if err != nil && (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) {
			return
		}
		if err != nil || n == 0 {
			l.closePeer(pc, "connection lost")
			return
		}
		pc.in = pc.in[:len(pc.in)+n]
	}
	// The replies complete in one piece: their bytes share one copy.
	var done []byte
	off := 0
	for {
		rn, end, ok := peerReplyEnd(pc.in[off:])
		if !ok {
			break
		}
		if done == nil {
			done = bytes.Clone(pc.in[off:])
		}
		d := off - (len(pc.in) - len(done))
		reply := done[d : d+rn : d+rn]
		off += end
		pc.mu.Lock()
		if pc.dead {
			pc.mu.Unlock()
			break // failed meanwhile: its futures are complete
		}
		f, ok := pc.pop()
		pc.mu.Unlock()
		if !ok {
			l.closePeer(pc, "unexpected reply")
			return
		}
		f.complete(reply)
	}
	if rest := len(pc.in) - off; rest == 0 {
		pc.in = pc.in[:0]
		if cap(pc.in) > evMaxIn {
			pc.in = make([]byte, 0, evInitBuf)
		}
	} else if off > 0 {
		copy(pc.in, pc.in[off:])
		pc.in = pc.in[:rest]
	}
}

// readTLS reads what pc's TLS connection has into pc.in (see readAllTLS).
// It reports false if the connection failed.
func (pc *peerConn) readTLS() bool {
	var ok bool
	pc.in, ok = readAllTLS(pc.tc, pc.in)
	return ok
}

// closePeer fails pc and closes its socket (on the loop).
func (l *evLoop) closePeer(pc *peerConn, why string) {
	l.mu.Lock()
	delete(l.pconns, int32(pc.fd))
	l.mu.Unlock()
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, pc.fd, nil)
	pc.fail(why)
	pc.mu.Lock()
	if !pc.fdClosed {
		pc.fdClosed = true
		unix.Close(pc.fd)
	}
	pc.mu.Unlock()
}
