package api

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes maps every API route to its handler.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/events", s.streamEvents)

	mux.HandleFunc("POST /v1/validate", s.validate)
	mux.HandleFunc("POST /v1/diff", s.diff)
	mux.HandleFunc("POST /v1/apply", s.apply)
	mux.HandleFunc("POST /v1/reload", s.reload)

	mux.HandleFunc("GET /v1/services", s.listServices)
	mux.HandleFunc("POST /v1/services", s.addService)
	mux.HandleFunc("GET /v1/services/{name...}", s.getService)
	mux.HandleFunc("DELETE /v1/services/{name...}", s.deleteService)
	mux.HandleFunc("POST /v1/services/{name}/reals", s.addReal)
	mux.HandleFunc("DELETE /v1/services/{name}/reals/{addr}", s.deleteReal)
	mux.HandleFunc("PUT /v1/services/{name}/reals/{addr}/weight", s.setWeight)

	mux.HandleFunc("GET /v1/tenants", s.listTenants)
	mux.HandleFunc("POST /v1/tenants", s.addTenant)
	mux.HandleFunc("GET /v1/tenants/{name}", s.getTenant)
	mux.HandleFunc("DELETE /v1/tenants/{name}", s.deleteTenant)
	mux.HandleFunc("GET /v1/tenants/{name}/allow", s.getAllow)
	mux.HandleFunc("POST /v1/tenants/{name}/allow", s.changeAllow)

	mux.HandleFunc("POST /v1/tenants/{name}/credentials", s.issueCredential)
	mux.HandleFunc("POST /v1/operator/credentials", s.issueCredential)

	mux.HandleFunc("GET /v1/kvs/stats", s.kvsStats)
	mux.HandleFunc("GET /v1/kvs/cluster", s.kvsClusterStatus)
	mux.HandleFunc("GET /v1/kvs/nodes", s.kvsNodes)
	mux.HandleFunc("POST /v1/kvs/nodes/{name}", s.changeKVSNode)

	mux.HandleFunc("GET /v1/cluster/status", s.clusterStatus)
	mux.HandleFunc("GET /v1/cluster/applied", s.waitApplied)
	mux.HandleFunc("POST /v1/cluster/members", s.joinMember)
	mux.HandleFunc("DELETE /v1/cluster/members/{name}", s.removeMember)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s}}))

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { noRoute(mux, w, r) })
	return s.recoverer(s.clusterHeaders(mux))
}

// noRoute answers a request no pattern matched with a JSON 405 (and Allow)
// when the path exists for other methods, else a JSON 404.
func noRoute(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pat := mux.Handler(r2); pat != "/" && pat != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Message: fmt.Sprintf("%s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allowed, ", "))})
		return
	}
	writeError(w, &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
}

// recoverer turns a handler panic into a 500 instead of a dropped
// connection, and logs it.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("API handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeError(w, &Error{Status: http.StatusInternalServerError, Message: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// slogPrinter adapts the logger to promhttp's error log.
type slogPrinter struct{ s *Server }

// Println implements promhttp.Logger.
func (p slogPrinter) Println(v ...any) { p.s.log.Error("metrics", "error", fmt.Sprint(v...)) }
