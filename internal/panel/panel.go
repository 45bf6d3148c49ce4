// Package panel is lbd's web control panel (seed 000's "control panel"):
// served by lbd itself over HTTPS, server-rendered HTML and SVG graphs
// with every asset embedded, usable with JavaScript off (a small script
// only refreshes the graphs).
//
// A tenant logs in with its credential and sees its own tenant only: its
// records and bytes over the last three days, ops/s, hit ratio, evictions,
// memory against its limit and connections; its keys, a bounded page at a
// time; and its allow-list, which it may edit. The operator logs in with
// the operator credential and sees the node, VRRP, the IPVS services with
// their real servers and health, recent events, and every tenant.
//
// Sessions are random tokens in Secure, HttpOnly, SameSite=Strict cookies;
// every form carries the session's CSRF token; logins are rate limited per
// source address.
package panel

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/internal/history"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// Backend is what the panel needs of lbd; the daemon implements it. The
// figures, the history and the cluster view are the cluster's: the
// daemon asks every member over the node-to-node calls, and a member that
// does not answer is reported as missing, never as zero.
type Backend interface {
	// Login reports whether secret is tenant's credential (tenant "" is
	// the operator).
	Login(tenant, secret string) bool
	// Tenants lists the tenants with their allow-lists.
	Tenants(ctx context.Context) ([]api.Tenant, error)
	// Cluster returns every node of the cluster with what it reports
	// (status, storage slots, recent events), in file order.
	Cluster(ctx context.Context) []NodeView
	// Figures returns a tenant's counters on every storage node.
	Figures(ctx context.Context, tenant string) []Member
	// History returns a tenant's series over [from, to], merged over the
	// storage nodes, and the nodes whose series are missing.
	History(ctx context.Context, tenant string, from, to time.Time) (pts []history.Point, missing []string)
	// Keys lists a page of a tenant's keys (a bounded crawl; every key
	// once, over the storage nodes).
	Keys(ctx context.Context, tenant, cursor, prefix string, limit int) (kvs.KeyPage, error)
	// SetAllow replaces a tenant's allow-list, returns once the fences
	// of this node apply it, with the index of the write in the cluster
	// state.
	SetAllow(ctx context.Context, tenant string, allow []netip.Prefix) ([]netip.Prefix, uint64, error)
	// Directors reports, for every director, whether it has reconciled
	// the cluster state's index.
	Directors(ctx context.Context, index uint64) []api.NodeApplied
}

// Node is one node of the cluster as the operator's page lists it.
type Node struct {
	Name, Role, Address string
	// Self is the node serving the panel.
	Self bool
}

// NodeView is a node and what it reported.
type NodeView struct {
	Node
	// Status is its status (nil: it did not answer, see Error).
	Status *api.Status
	// KVS is a storage node's view of the clustered tenants' slots.
	KVS *kvs.ClusterStatus
	// Events are its recent events, oldest first.
	Events []events.Event
	// Error says why the node did not answer.
	Error string
}

// Member is one storage node's figures for a tenant.
type Member struct {
	Node string
	// Stats are the tenant's counters there (nil: no store of the tenant
	// on that node, or the node did not answer).
	Stats *api.KVSStats
	// Primaries and Backups are the slots of a clustered tenant the node
	// holds (both 0: the tenant is not clustered).
	Primaries, Backups int
	// Error says why the node did not answer: its figures are missing.
	Error string
}

// Share is the part of the node's records and bytes that counts as the
// tenant's: its primary slots among the slots it holds (the rest are
// replicas, counted on their primaries), 1 for a tenant not clustered.
// Keys spread evenly over the slots, so this is an estimate of the
// records in the node's primary slots, not a count.
func (m Member) Share() float64 {
	if m.Primaries+m.Backups == 0 {
		return 1
	}
	return float64(m.Primaries) / float64(m.Primaries+m.Backups)
}

// Options tune the panel.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// SessionTTL is how long a session lasts without use; 30 min by
	// default.
	SessionTTL time.Duration
	// LoginBurst and LoginEvery limit logins per source address: a burst
	// of LoginBurst, then one per LoginEvery (5 and 12 s by default).
	LoginBurst int
	LoginEvery time.Duration
}

//go:embed assets
var assets embed.FS

// Server is the panel's HTTP handler.
type Server struct {
	b        Backend
	log      *slog.Logger
	now      func() time.Time
	opts     Options
	sessions *sessions
	limiter  *limiter
	tmpl     *template.Template
	mux      *http.ServeMux
	series   seriesCache
}

// New returns the panel served from b.
func New(b Backend, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 30 * time.Minute
	}
	if opts.LoginBurst <= 0 {
		opts.LoginBurst = 5
	}
	if opts.LoginEvery <= 0 {
		opts.LoginEvery = 12 * time.Second
	}
	tmpl, err := template.New("").Funcs(funcs).ParseFS(assets, "assets/*.html")
	if err != nil {
		return nil, err
	}
	s := &Server{b: b, log: opts.Logger, now: opts.Now, opts: opts, tmpl: tmpl,
		sessions: newSessions(opts.Now, opts.SessionTTL),
		limiter:  newLimiter(opts.Now, opts.LoginBurst, opts.LoginEvery),
		mux:      http.NewServeMux()}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	static, _ := fs.Sub(assets, "assets")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.authed(s.logout))
	s.mux.HandleFunc("GET /{$}", s.authed(s.home))
	s.mux.HandleFunc("GET /operator", s.authed(s.operator))
	s.mux.HandleFunc("GET /tenants/{tenant}", s.authed(s.tenantPage))
	s.mux.HandleFunc("GET /tenants/{tenant}/graph/{metric}", s.authed(s.graph))
	s.mux.HandleFunc("GET /tenants/{tenant}/keys", s.authed(s.keys))
	s.mux.HandleFunc("GET /tenants/{tenant}/allow", s.authed(s.allowPage))
	s.mux.HandleFunc("POST /tenants/{tenant}/allow", s.authed(s.setAllow))
	s.mux.HandleFunc("GET /api/tenants/{tenant}/series", s.authed(s.seriesJSON))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.errorPage(w, r, http.StatusNotFound, "Not found", "There is no page at "+r.URL.Path+".")
	})
}

// ServeHTTP implements http.Handler, with the headers every page gets.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panel: handler panic", "panic", v, "path", r.URL.Path)
			s.errorPage(w, r, http.StatusInternalServerError, "Internal error", "Something went wrong; the error is in lbd's log.")
		}
	}()
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	s.mux.ServeHTTP(w, r)
}
