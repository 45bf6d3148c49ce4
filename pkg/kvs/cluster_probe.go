package kvs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// probeDialer is the storage monitor's Dialer (healthcheck's memcached
// check sends "version" on each connection it dials): it keeps one
// connection per storage node open across probes, so that an idle
// cluster's leader does not make a TCP connection and a TLS handshake per
// probe of each node (every kvs_monitor_interval). Each probe still has
// its deadline (healthcheck sets it from the probe's timeout). A
// connection goes back to the pool only after a probe read exactly one
// "VERSION" line on it with no error; one the node closed (a restart) is
// found before it is used and dialled anew, and any error drops it, so a
// node that died or is cut off fails its probe as with a new connection
// each time.
type probeDialer struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	mu   sync.Mutex
	idle map[string]net.Conn // addr → a connection no probe uses
	done bool
}

// newProbeDialer returns a probeDialer over the cluster's TLS (cfg; plain
// TCP if nil) whose connections close when ctx ends.
func newProbeDialer(ctx context.Context, cfg *tls.Config) *probeDialer {
	d := &probeDialer{idle: map[string]net.Conn{}}
	if cfg != nil {
		td := &tls.Dialer{Config: cfg}
		d.dial = td.DialContext
	} else {
		d.dial = (&net.Dialer{}).DialContext
	}
	context.AfterFunc(ctx, d.close)
	return d
}

// DialContext returns the pooled connection to addr if it is still open,
// else a new one.
func (d *probeDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	c := d.idle[addr]
	delete(d.idle, addr)
	d.mu.Unlock()
	if c != nil && open(c) {
		return &probeConn{Conn: c, d: d, addr: addr}, nil
	}
	if c != nil {
		c.Close()
	}
	c, err := d.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &probeConn{Conn: c, d: d, addr: addr}, nil
}

// open reports whether c, idle, is still open: a read that would block
// (nothing sent, no end of stream) says so.
func open(c net.Conn) bool {
	if err := c.SetReadDeadline(time.Now()); err != nil {
		return false
	}
	var b [1]byte
	_, err := c.Read(b[:])
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// put pools c for addr, or closes it if the pool is closed or has one.
func (d *probeDialer) put(addr string, c net.Conn) {
	d.mu.Lock()
	if d.done || d.idle[addr] != nil {
		d.mu.Unlock()
		c.Close()
		return
	}
	d.idle[addr] = c
	d.mu.Unlock()
}

// close closes the pooled connections; later ones are not pooled.
func (d *probeDialer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = true
	for a, c := range d.idle {
		c.Close()
		delete(d.idle, a)
	}
}

// probeConn is one probe's use of a pooled connection.
type probeConn struct {
	net.Conn
	d      *probeDialer
	addr   string
	read   []byte // what the probe read
	failed bool
}

func (c *probeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read = append(c.read, b[:n]...)
	if err != nil || len(c.read) > 256 {
		c.failed = true
	}
	return n, err
}

func (c *probeConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil {
		c.failed = true
	}
	return n, err
}

// Close pools the connection after a probe that read exactly one VERSION
// line, and closes it otherwise.
func (c *probeConn) Close() error {
	if c.failed || !bytes.HasPrefix(c.read, []byte("VERSION ")) || bytes.IndexByte(c.read, '\n') != len(c.read)-1 {
		return c.Conn.Close()
	}
	if err := c.Conn.SetDeadline(time.Time{}); err != nil {
		return c.Conn.Close()
	}
	c.d.put(c.addr, c.Conn)
	return nil
}
