package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/lbd-project/lbd/internal/api"
)

// listenAPI binds the control API's socket and listener, so that a socket
// problem stops lbd at start. Serving starts with serveAPI.
func (d *Daemon) listenAPI() (*api.Server, error) {
	dc := d.cfg.Daemon
	socket := dc.Socket
	if d.opts.Socket != "" {
		socket = d.opts.Socket
	}
	if socket == "-" {
		socket = ""
	}
	opts := api.ServerOptions{
		Logger: d.log, Socket: socket, SocketGroup: dc.SocketGroup,
		TCPAddr: dc.Listen, TLSCert: dc.TLSCert, TLSKey: dc.TLSKey,
	}
	if dc.TokenFile != "" {
		tok, err := readToken(dc.TokenFile, dc.Insecure)
		if err != nil {
			return nil, err
		}
		if dc.Insecure {
			d.log.Warn("api: insecure: true: the TCP API may run without TLS and its token file may be readable by others", "token_file", dc.TokenFile, "tls", dc.TLSCert != "")
		}
		opts.Token = tok
	}
	if opts.Socket == "" && opts.TCPAddr == "" {
		return nil, nil
	}
	srv, err := api.NewServer(d, opts)
	if err == nil {
		err = srv.Listen()
	}
	if err != nil {
		return nil, fmt.Errorf("daemon: api: %w", err)
	}
	return srv, nil
}

// serveAPI answers API requests until ctx is done.
func (d *Daemon) serveAPI(ctx context.Context, wg *sync.WaitGroup, srv *api.Server) {
	if srv == nil {
		return
	}
	wg.Go(func() {
		if err := srv.Serve(ctx); err != nil {
			d.log.Error("api server stopped", "error", err)
		}
	})
}

// readToken reads the API's bearer token. A token file that group or
// others may read is refused unless insecure: whoever reads it controls
// the kernel's tables through the API.
func readToken(path string, insecure bool) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("daemon: api token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("daemon: api token: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && !insecure {
		return "", fmt.Errorf("daemon: api token: %s is readable or writable by group or others (mode %04o): chmod 600 it, or set daemon.insecure: true", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("daemon: api token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
