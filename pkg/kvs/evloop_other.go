//go:build !linux

package kvs

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"
)

var errNeedMore = errors.New("kvs: need more input")

// evPool is only implemented on Linux; elsewhere every connection runs in
// its own goroutine.
type evPool struct{}

func newEvPool(Options, *slog.Logger) (*evPool, error) { return nil, nil }
func (p *evPool) close()                               {}
func (p *evPool) size() int                            { return 0 }
func (p *evPool) add(*server, net.Conn) bool           { return false }

// evConn is never created off Linux.
type evConn struct{ fd int }

func shutdownFD(int) {}

func (p *evPool) addProto(*ProtoServer, net.Conn, ProtoConn) bool { return false }

func (p *evPool) peerConn(net.Conn, int, string, time.Duration) *peerConn { return nil }

// evLoop is never created off Linux.
type evLoop struct{}

func (pc *peerConn) flushLoop() {}

func loopConn(c net.Conn) net.Conn { return c }

// fdConn is never created off Linux.
type fdConn struct{}

func loopTLS(net.Conn) (*tls.Conn, *fdConn) { return nil, nil }

func (p *evPool) addConn(*server, net.Conn, []byte) bool { return false }
