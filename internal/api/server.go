package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// MaxBodySize bounds the body of a request other than a configuration
// file (a service, a tenant, an allow-list change).
const MaxBodySize = 1 << 20

// MaxConfigSize bounds a posted configuration file, as config.Load bounds
// a file on disk.
const MaxConfigSize = config.MaxFileSize

// ServerOptions configures a Server.
type ServerOptions struct {
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Socket is the unix socket path; empty disables the socket.
	Socket string
	// SocketGroup, if set, is a group name (or numeric gid) granted access
	// to the socket (mode 0660); otherwise the socket is root-only (0600).
	SocketGroup string
	// TCPAddr, if set, also serves on TCP; every request there needs Token.
	TCPAddr string
	// Token is the bearer token required on TCP.
	Token string
	// TLSCert and TLSKey, if both set, serve TCP with TLS.
	TLSCert, TLSKey string
	// Registry receives lbd's collector; nil means a new registry with the
	// Go and process collectors too. /metrics serves it.
	Registry *prometheus.Registry
}

// Server serves the control API for a Backend.
type Server struct {
	backend Backend
	opts    ServerOptions
	log     *slog.Logger
	reg     *prometheus.Registry
	handler http.Handler
	tls     *tls.Config
	unixLn  net.Listener
	tcpLn   net.Listener
}

// NewServer checks the options and builds the server; nothing listens
// until Serve.
func NewServer(backend Backend, opts ServerOptions) (*Server, error) {
	if backend == nil {
		return nil, errors.New("api: nil backend")
	}
	if opts.Socket == "" && opts.TCPAddr == "" {
		return nil, errors.New("api: neither a socket nor a TCP address to serve on")
	}
	if opts.TCPAddr != "" && opts.Token == "" {
		return nil, errors.New("api: serving on TCP needs a token")
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return nil, errors.New("api: TLS needs both a certificate and a key")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{backend: backend, opts: opts, log: opts.Logger, reg: opts.Registry}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
		s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if err := s.reg.Register(NewCollector(backend)); err != nil {
		return nil, fmt.Errorf("api: register metrics: %w", err)
	}
	if cb, ok := backend.(ClusterBackend); ok {
		if err := s.reg.Register(newClusterCollector(backend, cb)); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	if opts.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("api: load TLS key pair: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the API without authentication, as served on the unix socket
// (whose file mode is the access control).
func (s *Server) Handler() http.Handler { return s.handler }

// TCPHandler is the API behind the bearer token, as served on TCP.
func (s *Server) TCPHandler() http.Handler { return requireToken(s.opts.Token, s.handler) }

// Listen opens the socket and the TCP listener, so that a daemon can fail
// at start rather than later; Serve calls it if needed.
func (s *Server) Listen() error {
	if s.unixLn != nil || s.tcpLn != nil {
		return errors.New("api: already listening")
	}
	if s.opts.Socket != "" {
		ln, err := listenUnix(s.opts.Socket, s.opts.SocketGroup)
		if err != nil {
			return err
		}
		s.unixLn = ln
	}
	if s.opts.TCPAddr != "" {
		ln, err := net.Listen("tcp", s.opts.TCPAddr)
		if err != nil {
			if s.unixLn != nil {
				s.unixLn.Close()
				removeSocket(s.opts.Socket, s.log)
				s.unixLn = nil
			}
			return fmt.Errorf("api: listen %s: %w", s.opts.TCPAddr, err)
		}
		if s.tls != nil {
			ln = tls.NewListener(ln, s.tls)
		}
		s.tcpLn = ln
	}
	return nil
}

// TCPAddr is the TCP address being listened on (nil before Listen or
// without TCP), e.g. to learn the port of "127.0.0.1:0".
func (s *Server) TCPAddr() net.Addr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// Serve serves on the socket and the TCP address (listening first if Listen
// was not called) until ctx is done; in-flight requests get a few seconds
// to finish and the socket is removed.
func (s *Server) Serve(ctx context.Context) error {
	if s.unixLn == nil && s.tcpLn == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	type srv struct {
		hs *http.Server
		ln net.Listener
	}
	var servers []srv
	base := func(net.Listener) context.Context { return ctx }
	if s.unixLn != nil {
		defer removeSocket(s.opts.Socket, s.log)
		servers = append(servers, srv{newHTTPServer(s.handler, base, s.log), s.unixLn})
	}
	if s.tcpLn != nil {
		servers = append(servers, srv{newHTTPServer(s.TCPHandler(), base, s.log), s.tcpLn})
	}
	errc := make(chan error, len(servers))
	for _, x := range servers {
		s.log.Info("control API listening", "addr", x.ln.Addr().String())
		go func() { errc <- x.hs.Serve(x.ln) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("api: serve: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, x := range servers {
		if e := x.hs.Shutdown(shutdownCtx); e != nil {
			x.hs.Close()
		}
	}
	return err
}

func newHTTPServer(h http.Handler, base func(net.Listener) context.Context, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		BaseContext:       base,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
