//go:build linux

package kvs

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// A protocol's connection on an event loop (see Proto): the loop runs the
// complete requests in its buffer through the protocol's Serve and writes
// the answers in one write, as for memcached. A request Serve gives a Slow
// step runs on a goroutine while the connection is parked (its input still
// read, up to its buffer); the goroutine posts it back to its loop, which
// writes the answer and runs what came meanwhile. A client that does not
// read its answers is handed to a goroutine (ProtoServer.serveConn).

// addProto serves nc on a loop with pc; false if it cannot be moved there
// (the caller serves it).
func (p *evPool) addProto(s *ProtoServer, nc net.Conn, pc ProtoConn) bool {
	fd, ok := p.takeFD(nc)
	if !ok {
		return false
	}
	c := &evConn{fd: fd, ps: s, pc: pc, act: &activity{}}
	c.in.buf = make([]byte, 0, protoInitBuf)
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		unix.Close(fd)
		s.release()
		return true
	}
	s.evfds[fd] = c.act
	s.mu.Unlock()
	if err := p.attach(c); err != nil {
		s.log.Warn("kvs: connection not served", "err", err)
	}
	return true
}

// processProto runs the complete requests in c's buffer and writes the
// answers, or parks c while a Slow step runs.
func (l *evLoop) processProto(c *evConn) {
	st := c.pc.Serve(c.in.buf, c.out.buf)
	c.out.buf = st.Out
	c.in.buf = c.in.buf[:copy(c.in.buf, c.in.buf[st.N:])]
	c.want = st.Want
	if st.Slow != nil {
		c.parked = true
		c.ps.wg.Add(1)
		go func() {
			defer c.ps.wg.Done()
			c.slow, c.slowClose = st.Slow()
			l.post(c)
		}()
		return
	}
	l.writeProto(c, st.Close)
}

// writeProto writes c's answers, then closes c if closing. A socket that
// takes only part of them hands c to a goroutine that may block.
func (l *evLoop) writeProto(c *evConn, closing bool) {
	blocked, err := writeOut(c)
	switch {
	case err != nil:
		l.closeConn(c)
	case blocked:
		c.closeAfter = closing
		l.handoff(c)
	case closing:
		l.closeConn(c)
	}
}

// resumeProto takes back a parked connection whose Slow step is done (on
// the loop).
func (l *evLoop) resumeProto(c *evConn) {
	c.out.buf = append(c.out.buf, c.slow...)
	c.slow = nil
	if c.slowClose {
		l.writeProto(c, true)
		return
	}
	if c.inOff {
		l.watchInput(c, true)
	}
	l.processProto(c)
}

// handoffProto moves c (out of the loop already) to a goroutine.
func (l *evLoop) handoffProto(c *evConn) {
	s := c.ps
	f := os.NewFile(uintptr(c.fd), "kvs")
	nc, err := net.FileConn(f)
	s.mu.Lock()
	delete(s.evfds, c.fd)
	f.Close()
	if err == nil && !s.done {
		s.conns[nc] = struct{}{}
	} else if err == nil {
		nc.Close()
		err = net.ErrClosed
	}
	s.mu.Unlock()
	if err != nil {
		s.release()
		return
	}
	go s.serveConn(nc, c.pc, c.in.buf, c.out.buf[c.out.off:], c.closeAfter)
}
