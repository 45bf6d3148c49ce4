package daemon

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/lbd-project/lbd/internal/api"
)

// startAPI serves the control API until ctx is done.
func (d *Daemon) startAPI(ctx context.Context, wg *sync.WaitGroup) error {
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
			return fmt.Errorf("daemon: api token: %w", err)
		}
		opts.Token = strings.TrimSpace(string(b))
	}
	if opts.Socket == "" && opts.TCPAddr == "" {
		return nil
	}
	srv, err := api.NewServer(d, opts)
	if err != nil {
		return fmt.Errorf("daemon: api: %w", err)
	}
	wg.Go(func() {
		if err := srv.Serve(ctx); err != nil {
			d.log.Error("api server stopped", "error", err)
		}
	})
	return nil
}
