//go:build linux

package kvs

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// TLS connections on the event loops. crypto/tls reads and writes through
// a net.Conn; a TLS connection that moves to a loop does so over an fdConn:
// it handshakes over Go's TCP connection (blocking, with deadlines), and
// once the loop has taken the socket (onLoop) it reads and writes the raw
// non-blocking socket. A read that would block returns errWouldBlock, a
// temporary net.Error: crypto/tls keeps the connection usable after one
// (readRecordOrCCS leaves its input error unset and a partial record in
// its buffer), so the loop calls Read again at the next EPOLLIN. A write
// never fails for want of room (a tls.Conn write error is fatal): what the
// socket does not take waits in pend, which the loop writes on EPOLLOUT.
type fdConn struct {
	net.Conn // the TCP connection, until the loop takes it

	mu    sync.Mutex
	fd    int // the loop's socket; -1 before onLoop
	pend  []byte
	armed bool
	err   error
	// arm has the loop watch the socket for room to write, or stop
	// (called with mu held).
	arm func(out bool)
}

// errWouldBlock is a read of an fdConn on a loop that has nothing to read.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "kvs: would block" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// readAllTLS appends to buf what tc has for the loop, growing buf as it
// must: it reads until crypto/tls would block, since crypto/tls may hold
// records read already, which no EPOLLIN announces, and it handles the
// post-handshake messages (session tickets, key updates) on the way. ok is
// false if the connection failed.
func readAllTLS(tc *tls.Conn, buf []byte) (out []byte, ok bool) {
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(cap(buf), evInitBuf))
		}
		n, err := tc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return buf, errors.Is(err, errWouldBlock)
		}
	}
}

// loopConn wraps c, a new TCP connection that TLS will run over, so that
// it can move to a loop after its handshake.
func loopConn(c net.Conn) net.Conn { return &fdConn{Conn: c, fd: -1} }

// loopTLS returns c's fdConn if c is a TLS connection over one, still off
// the loops.
func loopTLS(c net.Conn) (*tls.Conn, *fdConn) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil
	}
	fc, ok := tc.NetConn().(*fdConn)
	if !ok || fc.onLoop() {
		return nil, nil
	}
	if !tc.ConnectionState().HandshakeComplete {
		return nil, nil
	}
	return tc, fc
}

func (c *fdConn) onLoop() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fd >= 0
}

// setFD moves c onto the loop's socket fd (Go's connection is closed).
func (c *fdConn) setFD(fd int, arm func(bool)) {
	c.mu.Lock()
	c.fd, c.arm = fd, arm
	c.mu.Unlock()
}

func (c *fdConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	fd := c.fd
	c.mu.Unlock()
	if fd < 0 {
		return c.Conn.Read(b)
	}
	for {
		n, err := rawRead(fd, b)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, errWouldBlock
		case err != nil:
			return 0, err
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Write writes b, or what the socket takes of it now and queues the rest:
// on a loop it never blocks, and fails only if the connection did.
func (c *fdConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return c.Conn.Write(b)
	}
	if c.err != nil {
		return 0, c.err
	}
	all := len(b)
	if len(c.pend) == 0 {
		for len(b) > 0 {
			n, err := rawWrite(c.fd, b)
			if n > 0 {
				b = b[n:]
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			if err != nil {
				c.err = err
				return 0, err
			}
		}
	}
	if len(b) > 0 {
		c.pend = append(c.pend, b...)
		if !c.armed {
			c.armed = true
			c.arm(true)
		}
	}
	return all, nil
}

// flushPending writes what Write queued (on the loop, at EPOLLOUT).
func (c *fdConn) flushPending() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	for len(c.pend) > 0 {
		n, err := rawWrite(c.fd, c.pend)
		if n > 0 {
			c.pend = c.pend[n:]
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return nil
		}
		if err != nil {
			c.err = err
			return err
		}
	}
	c.pend = nil
	if c.armed {
		c.armed = false
		c.arm(false)
	}
	return nil
}

// pending is how many bytes wait for room in the socket.
func (c *fdConn) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pend)
}

// Close closes Go's connection; on a loop the loop closes its socket.
func (c *fdConn) Close() error {
	if c.onLoop() {
		return nil
	}
	return c.Conn.Close()
}

// The deadlines apply before the loop takes the connection; on a loop
// nothing blocks (a forwarding connection's watch times its replies out).
func (c *fdConn) SetDeadline(t time.Time) error {
	if c.onLoop() {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

func (c *fdConn) SetReadDeadline(t time.Time) error {
	if c.onLoop() {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *fdConn) SetWriteDeadline(t time.Time) error {
	if c.onLoop() {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// toGo moves c off the loop, onto nc, Go's connection of the same socket
// (a connection handed to a goroutine); what waits to be written is
// written by flushGo.
func (c *fdConn) toGo(nc net.Conn) {
	c.mu.Lock()
	c.Conn, c.fd = nc, -1
	c.mu.Unlock()
}

// flushGo writes, blocking, what the loop's socket did not take.
func (c *fdConn) flushGo() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if len(c.pend) == 0 {
		return nil
	}
	c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.Conn.Write(c.pend)
	c.Conn.SetWriteDeadline(time.Time{})
	c.pend = nil
	return err
}
