package kvs

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// writeTimeout drops a client that stops reading its replies, so a slow
// reader cannot hold a goroutine and its buffers forever.
const writeTimeout = 60 * time.Second

// server accepts connections for one tenant's service on one listener.
type server struct {
	svc     *service
	ln      net.Listener
	pool    *evPool // nil: a goroutine per connection
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	evconns map[*evConn]struct{}
	done    bool
	// peer: the server of a clustered node's peer listener for one
	// tenant (see clusterNode.loopPeer); no listener, and its
	// connections are the other nodes' forwarded requests, not clients.
	peer bool
}

// startServer serves svc on ln until close is called. Connections go to
// the event loops of pool when it is not nil.
func startServer(svc *service, ln net.Listener, pool *evPool) *server {
	srv := newServer(svc, ln, pool)
	srv.wg.Add(1)
	go srv.acceptLoop()
	return srv
}

// newServer returns a server of svc on ln (nil: no listener of its own),
// its connections on pool's event loops if pool is not nil.
func newServer(svc *service, ln net.Listener, pool *evPool) *server {
	return &server{svc: svc, ln: ln, pool: pool, conns: make(map[net.Conn]struct{}), evconns: make(map[*evConn]struct{})}
}

// addr is the bound address.
func (srv *server) addr() net.Addr { return srv.ln.Addr() }

func (srv *server) acceptLoop() {
	defer srv.wg.Done()
	var backoff time.Duration
	for {
		c, err := srv.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep going.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			srv.svc.log.Warn("kvs: accept", "tenant", srv.svc.name, "err", err)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if srv.svc.curConns.Load() >= int64(srv.svc.cfg().MaxConns) {
			srv.svc.rejected.Add(1)
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, "ERROR Too many open connections\r\n")
			c.Close()
			continue
		}
		srv.svc.curConns.Add(1)
		srv.svc.totConns.Add(1)
		srv.wg.Add(1)
		// Idle timeouts need per-connection deadlines: goroutine mode.
		if srv.pool != nil && srv.svc.cfg().IdleTimeout == 0 && srv.pool.add(srv, c) {
			continue
		}
		if !srv.track(c) {
			c.Close()
			srv.release()
			return
		}
		go srv.handle(c, nil)
	}
}

// release accounts for the end of a connection.
func (srv *server) release() {
	if !srv.peer {
		srv.svc.curConns.Add(-1)
	}
	srv.wg.Done()
}

// enter accounts for a new connection of a peer server; false once the
// server is closed.
func (srv *server) enter() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.done {
		return false
	}
	srv.wg.Add(1)
	return true
}

// hangUp closes every connection of srv, leaving it open to new ones.
func (srv *server) hangUp() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.hangUpLocked()
}

// hangUpLocked is hangUp with srv.mu held.
func (srv *server) hangUpLocked() {
	for c := range srv.conns {
		c.Close()
	}
	for c := range srv.evconns {
		// The loop sees the hang-up and closes the descriptor.
		shutdownFD(c.fd)
	}
}

// serveHandedOff continues a connection an event loop handed over: it
// writes the replies still pending, drops input still to be swallowed and
// serves the buffered input first.
func (srv *server) serveHandedOff(c net.Conn, in []byte, skip int, out []byte) {
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.Write(out); err != nil {
		srv.untrack(c)
		c.Close()
		srv.release()
		return
	}
	var r io.Reader = c
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, c, int64(skip)); err != nil {
			srv.untrack(c)
			c.Close()
			srv.release()
			return
		}
	}
	if len(in) > 0 {
		r = io.MultiReader(bytes.NewReader(in), c)
	}
	srv.handle(c, r)
}

func (srv *server) untrack(c net.Conn) {
	srv.mu.Lock()
	delete(srv.conns, c)
	srv.mu.Unlock()
}

func (srv *server) track(c net.Conn) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.done {
		return false
	}
	srv.conns[c] = struct{}{}
	return true
}

// handle serves c in this goroutine; input comes from r (c if nil).
func (srv *server) handle(c net.Conn, r io.Reader) {
	defer srv.release()
	svc := srv.svc
	defer func() {
		srv.untrack(c)
		c.Close()
	}()
	if r == nil {
		r = c
	}
	if srv.peer {
		sess := newPeerSession(svc, bufio.NewReaderSize(r, readBufSize), c)
		if err := sess.serve(); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			svc.log.Debug("kvs: peer connection", "tenant", svc.name, "remote", c.RemoteAddr().String(), "err", err)
		}
		return
	}
	bw := bufio.NewWriterSize(&deadlineWriter{c: c}, 16<<10)
	var sess *session
	if svc.router != nil {
		ow := &orderedWriter{w: bw}
		sess = newSession(svc, bufio.NewReaderSize(r, readBufSize), ow)
		sess.ow, sess.sid = ow, svc.router.sessID.Add(1)
	} else {
		sess = newSession(svc, bufio.NewReaderSize(r, readBufSize), bw)
	}
	var armedAt time.Time
	sess.beforeRead = func() {
		// Read the live setting: a reload may change it. Re-arming costs
		// a runtime timer update, so it is done only when a tenth of the
		// timeout has passed: a connection is closed after between 0.9
		// and 1 times the idle timeout.
		if d := svc.cfg().IdleTimeout; d > 0 {
			if now := time.Now(); now.Sub(armedAt) > d/10 {
				c.SetReadDeadline(now.Add(d))
				armedAt = now
			}
		} else if !armedAt.IsZero() {
			c.SetReadDeadline(time.Time{})
			armedAt = time.Time{}
		}
	}
	err := sess.serve()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, errQuit) && !errors.Is(err, net.ErrClosed) {
		svc.log.Debug("kvs: connection closed", "tenant", svc.name, "remote", c.RemoteAddr().String(), "err", err)
	}
}

// deadlineWriter keeps a write deadline armed ahead of every write to the
// socket, re-arming it at most once a second (a timer update per write
// would cost more than the write's bookkeeping).
type deadlineWriter struct {
	c       net.Conn
	armedAt time.Time
}

// Write writes p to the connection.
func (w *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(w.armedAt) > time.Second {
		w.c.SetWriteDeadline(now.Add(writeTimeout))
		w.armedAt = now
	}
	return w.c.Write(p)
}

// close stops accepting, closes every connection and waits for them.
func (srv *server) close() {
	srv.mu.Lock()
	srv.done = true
	if srv.ln != nil {
		srv.ln.Close()
	}
	srv.hangUpLocked()
	srv.mu.Unlock()
	srv.wg.Wait()
}
