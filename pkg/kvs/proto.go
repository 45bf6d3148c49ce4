package kvs

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Proto is a request/response protocol other than memcached that a Tier
// serves on its event loops (the tenants' REST API): the loops read a
// connection's input into its buffer and let the protocol run every
// complete request there, as they do for memcached's.
type Proto interface {
	// NewConn returns the state of a new connection from remote.
	NewConn(remote netip.AddrPort) ProtoConn
}

// ProtoConn is one connection's protocol state. Serve is never called
// concurrently with itself or with a Step's Slow.
type ProtoConn interface {
	// Serve runs the complete requests at the start of in and appends
	// their answers to out, stopping at a request that must run on a
	// goroutine (see Step.Slow). It must not keep in or out.
	Serve(in, out []byte) Step
}

// Step is what Serve did and what comes next.
type Step struct {
	// Out is out with the answers appended.
	Out []byte
	// N is the input consumed (the requests run, and one given to Slow).
	N int
	// Want, when the request at in[N:] is incomplete, is the input it
	// takes in all if known (the buffer grows to it); 0 if not known.
	Want int
	// Close: close the connection once Out is written.
	Close bool
	// Slow, if set, answers a request whose work may block (a secret to
	// hash, a key on another node): it runs on a goroutine while the
	// connection waits, its answer goes out after Out, and Serve then runs
	// again. close: close the connection after the answer. Slow must not
	// refer to in.
	Slow func() (answer []byte, close bool)
}

// A protocol connection's input buffer starts at protoInitBuf and grows to
// protoMinBuf, or to what a request takes (Step.Want) up to protoMaxBuf: a
// request the protocol lets grow beyond closes the connection. Answers
// past protoOutSoft are not kept buffered between requests.
const (
	protoInitBuf = 16 << 10
	protoMinBuf  = 128 << 10
	protoMaxBuf  = 64 << 20
	protoOutSoft = 256 << 10
)

// protoLimit is how far a protocol connection's input buffer may grow
// while the request at its start wants want bytes.
func protoLimit(want int) int { return max(protoMinBuf, min(want, protoMaxBuf)) }

// ProtoOptions tune a ProtoServer.
type ProtoOptions struct {
	// MaxConns bounds the open connections; 1024 (memcached's -c) if 0.
	MaxConns int
	// IdleTimeout, if set, closes a connection that sent nothing for
	// that long (after between 3/4 and all of it on the loops).
	IdleTimeout time.Duration
}

// activity is what the idle sweep knows of a connection on the loops: the
// loop sets touched when it reads input.
type activity struct {
	touched atomic.Bool
	idle    int // sweeps without input
}

// ProtoServer serves a Proto on a listener.
type ProtoServer struct {
	t     *Tier
	ln    net.Listener
	proto Proto
	pool  *evPool
	log   *slog.Logger
	max   int
	wg    sync.WaitGroup
	mu    sync.Mutex
	n     int
	conns map[net.Conn]struct{}
	evfds map[int]*activity
	done  bool
	idle  time.Duration
	stop  chan struct{}
}

// ServeProto serves proto on ln's connections from the tier's event loops
// (from a goroutine per connection if it has none) until Close.
func (t *Tier) ServeProto(ln net.Listener, proto Proto, opts ProtoOptions) *ProtoServer {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 1024
	}
	s := &ProtoServer{t: t, ln: ln, proto: proto, pool: t.pool, log: t.log, max: opts.MaxConns, idle: opts.IdleTimeout,
		conns: map[net.Conn]struct{}{}, evfds: map[int]*activity{}, stop: make(chan struct{})}
	t.mu.Lock()
	if t.closed {
		s.done = true // serves nothing: the loops are gone
		close(s.stop)
		ln.Close()
	} else {
		if t.protos == nil {
			t.protos = map[*ProtoServer]struct{}{}
		}
		t.protos[s] = struct{}{}
	}
	t.mu.Unlock()
	s.wg.Add(1)
	go s.acceptLoop()
	if s.idle > 0 {
		s.wg.Add(1)
		go s.sweep()
	}
	return s
}

// idleSweeps is how many sweeps without input close a connection.
const idleSweeps = 4

// sweep closes the loops' connections idle for IdleTimeout, looking every
// quarter of it.
func (s *ProtoServer) sweep() {
	defer s.wg.Done()
	tick := time.NewTicker(s.idle / idleSweeps)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		for fd, a := range s.evfds {
			if a.touched.Swap(false) {
				a.idle = 0
			} else if a.idle++; a.idle >= idleSweeps {
				shutdownFD(fd) // the loop sees the hang-up and closes it
			}
		}
		s.mu.Unlock()
	}
}

// Addr is the bound address.
func (s *ProtoServer) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, closes every connection and waits for them.
// Closing the tier closes its ProtoServers.
func (s *ProtoServer) Close() {
	s.t.mu.Lock()
	delete(s.t.protos, s)
	s.t.mu.Unlock()
	s.mu.Lock()
	if !s.done {
		close(s.stop)
	}
	s.done = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	for fd := range s.evfds {
		shutdownFD(fd) // the loop sees the hang-up and closes it
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *ProtoServer) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("kvs: accept", "listen", s.ln.Addr().String(), "err", err)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		remote, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		s.mu.Lock()
		if s.done || s.n >= s.max {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.n++
		s.wg.Add(1)
		s.mu.Unlock()
		pc := s.proto.NewConn(remote)
		if s.pool != nil && s.pool.addProto(s, c, pc) {
			continue
		}
		if !s.track(c) {
			c.Close()
			s.release()
			continue
		}
		go s.serveConn(c, pc, nil, nil, false)
	}
}

// release accounts for the end of a connection.
func (s *ProtoServer) release() {
	s.mu.Lock()
	s.n--
	s.mu.Unlock()
	s.wg.Done()
}

func (s *ProtoServer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// serveConn serves c on this goroutine: first the answers already in out
// (then it closes c if closing), then the input already in in, then what c
// sends.
func (s *ProtoServer) serveConn(c net.Conn, pc ProtoConn, in, out []byte, closing bool) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
		s.release()
	}()
	if closing {
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		c.Write(out)
		return
	}
	if cap(in) < protoInitBuf {
		in = append(make([]byte, 0, protoInitBuf), in...)
	}
	out = append([]byte(nil), out...)
	for {
		st := pc.Serve(in, out)
		out = st.Out
		in = in[:copy(in, in[st.N:])]
		if st.Slow != nil {
			a, cl := st.Slow()
			out = append(out, a...)
			st.Close = st.Close || cl
		}
		if len(out) > 0 {
			c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.Write(out); err != nil {
				return
			}
			if cap(out) > protoOutSoft {
				out = nil
			}
			out = out[:0]
		}
		if st.Close {
			return
		}
		if st.Slow != nil {
			continue // run what is buffered behind it
		}
		if len(in) == cap(in) {
			limit := protoLimit(st.Want)
			if cap(in) >= limit {
				return
			}
			in = append(make([]byte, 0, min(2*cap(in), limit)), in...)
		}
		if s.idle > 0 {
			c.SetReadDeadline(time.Now().Add(s.idle))
		}
		n, err := c.Read(in[len(in):cap(in)])
		if n == 0 && err != nil {
			return
		}
		in = in[:len(in)+n]
	}
}
