package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/credential"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/internal/history"
	"github.com/lbd-project/lbd/internal/panel"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// panelBackend is the daemon as the web panel sees it.
type panelBackend struct{ d *Daemon }

// Login implements panel.Backend: a tenant's or the operator's credential
// (API tokens do not open the panel).
func (b panelBackend) Login(tenant, secret string) bool {
	return b.d.creds.Verify(tenant, secret, credential.Login)
}

// Tenants implements panel.Backend.
func (b panelBackend) Tenants(ctx context.Context) ([]api.Tenant, error) { return b.d.Tenants(ctx) }

// Status implements panel.Backend.
func (b panelBackend) Status(ctx context.Context) (api.Status, error) { return b.d.Status(ctx) }

// Nodes implements panel.Backend: the file's nodes and roles.
func (b panelBackend) Nodes() []panel.Node {
	b.d.mu.RLock()
	defer b.d.mu.RUnlock()
	out := make([]panel.Node, 0, len(b.d.cfg.Nodes))
	for _, n := range b.d.cfg.Nodes {
		out = append(out, panel.Node{Name: n.Name, Role: string(n.Role), Address: n.Address, Self: n.Name == b.d.node.Name})
	}
	return out
}

// Events implements panel.Backend.
func (b panelBackend) Events() []events.Event { return b.d.events.Recent() }

// KVSStats implements panel.Backend.
func (b panelBackend) KVSStats(ctx context.Context, tenant string) ([]api.KVSStats, error) {
	return b.d.KVSStats(ctx, tenant)
}

// History implements panel.Backend.
func (b panelBackend) History(tenant string, since time.Time) []history.Point {
	if h := b.d.History(); h != nil {
		return h.Series(tenant, since)
	}
	return nil
}

// Keys implements panel.Backend: a bounded crawl of the tenant's store on
// this node.
func (b panelBackend) Keys(tenant, cursor, prefix string, limit int) (kvs.KeyPage, error) {
	if b.d.sub.kvs == nil {
		return kvs.KeyPage{}, errors.New("this node serves no stores (it is not a storage node)")
	}
	l, ok := b.d.sub.kvs.tier.Local(tenant)
	if !ok {
		return kvs.KeyPage{}, fmt.Errorf("tenant %s has no store on this node", tenant)
	}
	return l.Keys(cursor, []byte(prefix), limit)
}

// SetAllow implements panel.Backend: the same runtime change as `lbctl
// tenant allow set`, returned once this node's fences apply it.
func (b panelBackend) SetAllow(ctx context.Context, tenant string, allow []netip.Prefix) ([]netip.Prefix, error) {
	return b.d.ChangeAllow(ctx, tenant, api.AllowSet, allow)
}

// listenPanel binds the panel's HTTPS listener (panel.listen), so that a
// bad address or certificate stops lbd at start.
func (d *Daemon) listenPanel() (net.Listener, *http.Server, error) {
	pc := d.cfg.Panel
	if pc.Listen == "" {
		return nil, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(pc.TLSCert, pc.TLSKey)
	if err != nil {
		return nil, nil, fmt.Errorf("daemon: panel: %w", err)
	}
	p, err := panel.New(panelBackend{d}, panel.Options{Logger: d.log})
	if err != nil {
		return nil, nil, fmt.Errorf("daemon: panel: %w", err)
	}
	ln, err := net.Listen("tcp", pc.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("daemon: panel: %w", err)
	}
	srv := &http.Server{
		Handler:           p,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	return ln, srv, nil
}

// servePanel serves the panel until ctx is done.
func (d *Daemon) servePanel(ctx context.Context, wg *sync.WaitGroup, ln net.Listener, srv *http.Server) {
	if srv == nil {
		return
	}
	d.log.Info("panel serving", "listen", ln.Addr().String())
	wg.Go(func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("panel stopped", "error", err)
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
}
