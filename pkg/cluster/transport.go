package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ALPN protocols of the node's one TLS listener.
const (
	// ProtoRaft is the ALPN protocol of raft's stream layer.
	ProtoRaft = "lbd-raft"
	// protoHTTP is the node-to-node RPC over HTTP/1.1 (any other ALPN,
	// or none, also goes there).
	protoHTTP = "http/1.1"
)

// handshakeTimeout bounds a TLS handshake; dialTimeout a TCP connect of
// the RPC client.
const (
	handshakeTimeout = 10 * time.Second
	dialTimeout      = 2 * time.Second
)

// mux accepts TLS connections on one listener and hands each to raft or to
// the RPC HTTP server by its negotiated ALPN protocol. Both sides must
// present a certificate of the cluster CA (the server's tls.Config says so).
type mux struct {
	ln        net.Listener // raw TCP
	tls       *tls.Config  // server side
	advertise net.Addr
	log       *slog.Logger

	raft *chanListener
	http *chanListener

	// conns are the raft connections handed out, closed by close (raft's
	// transport does not close the ones it accepted).
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool

	wg sync.WaitGroup
}

// trackedConn leaves the mux's set when closed.
type trackedConn struct {
	net.Conn
	m    *mux
	once sync.Once
}

// Close implements net.Conn.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		delete(c.m.conns, c)
		c.m.mu.Unlock()
	})
	return c.Conn.Close()
}

func newMux(ln net.Listener, serverTLS *tls.Config, advertise net.Addr, log *slog.Logger) *mux {
	return &mux{
		ln: ln, tls: serverTLS, advertise: advertise, log: log,
		raft: newChanListener(advertise), http: newChanListener(advertise),
		conns: map[*trackedConn]struct{}{},
	}
}

// serve accepts until the listener is closed.
func (m *mux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Warn("cluster: accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.handshake(c)
		}()
	}
}

func (m *mux) handshake(c net.Conn) {
	tc := tls.Server(c, m.tls)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		m.log.Debug("cluster: refused a peer", "peer", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	if tc.ConnectionState().NegotiatedProtocol != ProtoRaft {
		if !m.http.push(tc) {
			tc.Close()
		}
		return
	}
	rc := &trackedConn{Conn: tc, m: m}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		tc.Close()
		return
	}
	m.conns[rc] = struct{}{}
	m.mu.Unlock()
	if !m.raft.push(rc) {
		rc.Close()
	}
}

// close stops accepting and closes both sides.
func (m *mux) close() {
	m.ln.Close()
	m.raft.Close()
	m.http.Close()
	m.wg.Wait()
	m.mu.Lock()
	m.closed = true
	conns := m.conns
	m.conns = map[*trackedConn]struct{}{}
	m.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

// chanListener is a net.Listener fed by the mux.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// Accept implements net.Listener.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener: the advertised address.
func (l *chanListener) Addr() net.Addr { return l.addr }

// streamLayer is raft's transport over the mux: it accepts the "lbd-raft"
// connections and dials peers with the cluster TLS, as Consul's RaftLayer.
type streamLayer struct {
	*chanListener
	clientTLS *tls.Config
	// stop ends the dials under way (the node shuts down).
	stop <-chan struct{}
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// patientDial bounds how long Dial keeps trying a peer that does not
// answer; dialRetry spaces the tries.
const (
	patientDial = 30 * time.Second
	dialRetry   = 100 * time.Millisecond
)

// Dial implements raft.StreamLayer. A peer that is down (refused, no
// route, no answer) is dialled again every dialRetry for up to
// patientDial, or until the node shuts down, rather than failing at once:
// raft's replication backs off exponentially after each failed call (up
// to 10.24 s; hashicorp/raft#73), so a follower that was down for a while
// would otherwise wait up to that long, once back, before the leader
// sends it anything. Waiting here keeps the failures few: the follower is
// served within dialRetry of its return. A TLS failure (wrong
// certificate) fails at once.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	cfg, err := dialConfig(s.clientTLS, string(address), ProtoRaft)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(timeout, patientDial))
	defer cancel()
	if s.stop != nil {
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	var raw net.Conn
	for {
		attempt, acancel := context.WithTimeout(ctx, min(timeout, time.Second))
		raw, err = (&net.Dialer{}).DialContext(attempt, "tcp", string(address))
		acancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: dial raft %s: %w", address, err)
		case <-time.After(dialRetry):
		}
	}
	hctx, hcancel := context.WithTimeout(ctx, timeout)
	defer hcancel()
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("cluster: dial raft %s: %w", address, err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != ProtoRaft {
		c.Close()
		return nil, fmt.Errorf("cluster: dial raft %s: peer speaks %q, not %s", address, p, ProtoRaft)
	}
	return c, nil
}

// dialConfig is the client TLS for one peer address: ALPN proto, and the
// address's host as the name the peer's certificate must carry.
func dialConfig(base *tls.Config, address, proto string) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("cluster: peer address %q: %w", address, err)
	}
	cfg := base.Clone()
	cfg.NextProtos = []string{proto}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return cfg, nil
}

// newRPCClient is an HTTP client that dials peers with the cluster TLS.
func newRPCClient(base *tls.Config) *http.Client {
	cfg := base.Clone()
	cfg.NextProtos = []string{protoHTTP}
	return &http.Client{
		Transport: &http.Transport{
			// A peer cut off by a partition drops the SYN: fail the dial
			// soon, so callers look for the leader again (Propose retries
			// dial errors within LeaderWait).
			DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     cfg,
			ForceAttemptHTTP2:   false,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: handshakeTimeout,
		},
	}
}

// advertiseAddr is the net.Addr raft announces to its peers.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }
