// Package rest is the tenants' REST/JSON data API, served beside the
// memcached port (seed 002's "RESTful WebAPI ... JSON and XML, callable from
// JavaScript"): GET, PUT and DELETE of a key, multi-get, incr and decr,
// flags and expiry, JSON by default and XML on "Accept: application/xml",
// CORS per tenant, and an OpenAPI description at /v1/openapi.json.
//
// A Handler serves one tenant: the daemon gives every tenant with a REST
// port a listener of its own, fenced by the tenant's allow-list exactly
// like its memcached port. The handler checks the source against the
// allow-list once more (fail closed: an unknown tenant, or a source not in
// the list, is refused), then the tenant's credential or API token. Values
// go straight to the tenant's store in-process, so what REST writes a
// memcached client reads back byte for byte, and the reverse.
//
// The Handler is an http.Handler; the daemon serves it from the KVS event
// loops instead (Handler.Proto, see loop.go), with the same answers.
package rest

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/lbd-project/lbd/pkg/kvs"
)

// KV is one tenant's store as the API uses it; *kvs.Local implements it.
type KV interface {
	Get(key []byte) (kvs.Item, bool)
	Set(key, value []byte, flags uint32, exptime int32) (kvs.Item, error)
	Delete(key []byte) (bool, error)
	Delta(key []byte, incr bool, delta uint64) (uint64, error)
	MaxItemSize() int
}

// Policy is what a tenant admits right now.
type Policy struct {
	// Allow is the tenant's allow-list (as the fences apply it). Empty
	// admits nobody.
	Allow []netip.Prefix
	// CORSOrigins are the origins a browser page may call the API from
	// ("*" for any); empty allows no cross-origin call.
	CORSOrigins []string
}

// Backend is what the API needs of the node: the daemon implements it.
type Backend interface {
	// Store returns the tenant's store on this node; false if the tenant
	// does not exist (any more) or has no store here.
	Store(tenant string) (KV, bool)
	// Policy returns the tenant's current policy; false if the tenant
	// does not exist.
	Policy(tenant string) (Policy, bool)
	// Authenticate reports whether secret is the tenant's credential or
	// one of its API tokens.
	Authenticate(tenant, secret string) bool
}

// Options tune a Handler.
type Options struct {
	Logger *slog.Logger
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
}

// Handler serves one tenant's data API.
type Handler struct {
	tenant string
	b      Backend
	log    *slog.Logger
	now    func() time.Time
	mux    *http.ServeMux
}

// NewHandler returns the API of tenant, served from b.
func NewHandler(tenant string, b Backend, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{tenant: tenant, b: b, log: opts.Logger.With("tenant", tenant), now: opts.Now, mux: http.NewServeMux()}
	h.routes()
	return h
}

func (h *Handler) routes() {
	h.mux.HandleFunc("GET /v1/openapi.json", h.openAPI)
	h.mux.HandleFunc("GET /v1/keys/{key}", h.authed(h.get))
	h.mux.HandleFunc("HEAD /v1/keys/{key}", h.authed(h.get))
	h.mux.HandleFunc("PUT /v1/keys/{key}", h.authed(h.put))
	h.mux.HandleFunc("DELETE /v1/keys/{key}", h.authed(h.del))
	h.mux.HandleFunc("POST /v1/keys/{key}/incr", h.authed(h.delta(true)))
	h.mux.HandleFunc("POST /v1/keys/{key}/decr", h.authed(h.delta(false)))
	h.mux.HandleFunc("GET /v1/keys", h.authed(h.multiGet))
	h.mux.HandleFunc("POST /v1/mget", h.authed(h.multiGet))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, errorf(http.StatusNotFound, "not_found", "", "no such endpoint %s %s (see /v1/openapi.json)", r.Method, r.URL.Path))
	})
}

// ServeHTTP implements http.Handler: source check, CORS, then the route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("rest: handler panic", "panic", v, "path", r.URL.Path)
			h.fail(w, r, errorf(http.StatusInternalServerError, "internal", "", "internal error"))
		}
	}()
	pol, ok := h.b.Policy(h.tenant)
	if !ok {
		h.fail(w, r, errorf(http.StatusNotFound, "unknown_tenant", "", "tenant %q does not exist", h.tenant))
		return
	}
	if !admitted(r.RemoteAddr, pol.Allow) {
		h.fail(w, r, errorf(http.StatusForbidden, "source_refused", "", "source %s is not in tenant %q's allow-list", r.RemoteAddr, h.tenant))
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/") {
		h.fail(w, r, errorf(http.StatusBadRequest, "bad_path", "path", "request target %q is not a path", r.RequestURI))
		return
	}
	if h.cors(w, r, pol.CORSOrigins) {
		return // a preflight, answered
	}
	h.mux.ServeHTTP(w, r)
}

// admitted reports whether the connection's source is in allow. The source
// is the TCP peer, never a header a client could forge.
func admitted(remote string, allow []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
