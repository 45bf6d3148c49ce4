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

// Cluster implements panel.Backend: every node's report (panelcluster.go).
func (b panelBackend) Cluster(ctx context.Context) []panel.NodeView { return b.d.clusterView(ctx) }

// Figures implements panel.Backend: the tenant's counters on every
// storage node.
func (b panelBackend) Figures(ctx context.Context, tenant string) []panel.Member {
	var out []panel.Member
	for _, r := range b.d.askStorage(ctx, tenant, 0) {
		out = append(out, r.member())
	}
	return out
}

// History implements panel.Backend: the storage nodes' series, merged.
func (b panelBackend) History(ctx context.Context, tenant string, from, to time.Time) ([]history.Point, []string) {
	var series [][]history.Point
	var missing []string
	for _, r := range b.d.askStorage(ctx, tenant, from.Unix()) {
		if r.Error != "" {
			missing = append(missing, r.Node)
			continue
		}
		series = append(series, r.Points)
	}
	return history.Merge(series, from, to, history.MergeStep(to.Sub(from))), missing
}

// Directors implements panel.Backend: every director's progress on the
// cluster state's index (a node without a cluster section is its own
// only director, if it is one).
func (b panelBackend) Directors(ctx context.Context, index uint64) []api.NodeApplied {
	ctl := b.d.control()
	if ctl == nil {
		return nil
	}
	if _, local := ctl.(*localControl); local && !b.d.node.Role.IsDirector() {
		return nil // no cluster section: no director shares this node's state
	}
	ctx, cancel := context.WithTimeout(ctx, peerTimeout+time.Second)
	defer cancel()
	nodes, err := ctl.Reconciled(ctx)
	if err != nil {
		return []api.NodeApplied{{Name: b.d.node.Name, Error: err.Error()}}
	}
	b.d.mu.RLock()
	cfg := b.d.cfg
	b.d.mu.RUnlock()
	var out []api.NodeApplied
	for _, n := range cfg.Nodes {
		if !n.Role.IsDirector() {
			continue
		}
		if _, local := ctl.(*localControl); local && n.Name != b.d.node.Name {
			continue // a director of the file, but with its own state
		}
		na := api.NodeApplied{Name: n.Name, Error: "not a member of the cluster state"}
		for _, r := range nodes {
			if r.Name == n.Name {
				na = r
				na.Applied = r.ReconciledIndex >= index
			}
		}
		out = append(out, na)
	}
	return out
}

// Keys implements panel.Backend: a bounded crawl of the tenant's store
// on each storage node in turn (panelcluster.go).
func (b panelBackend) Keys(ctx context.Context, tenant, cursor, prefix string, limit int) (kvs.KeyPage, error) {
	return b.d.clusterKeys(ctx, tenant, cursor, prefix, limit)
}

// SetAllow implements panel.Backend: the same runtime change as `lbctl
// tenant allow set`, returned once this node's fences apply it, with the
// write's index.
func (b panelBackend) SetAllow(ctx context.Context, tenant string, allow []netip.Prefix) ([]netip.Prefix, uint64, error) {
	ctx, index := api.WithReceipt(ctx)
	got, err := b.d.ChangeAllow(ctx, tenant, api.AllowSet, allow)
	idx := index()
	if idx == 0 && err == nil && b.d.store != nil {
		idx = b.d.store.AppliedIndex() // no write (the same list): the state as applied here
	}
	return got, idx, err
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
