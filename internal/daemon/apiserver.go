package daemon

import (
	"context"
	"fmt"
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
		b, err := os.ReadFile(dc.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("daemon: api token: %w", err)
		}
		opts.Token = strings.TrimSpace(string(b))
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
