package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/api/apitest"
	"github.com/prometheus/client_golang/prometheus"
)

// newTestServer serves a fake backend's API without authentication.
func newTestServer(t *testing.T) (*apitest.Fake, *httptest.Server) {
	t.Helper()
	f := apitest.New()
	s, err := api.NewServer(f, api.ServerOptions{Socket: filepath.Join(t.TempDir(), "s.sock"), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return f, ts
}

const goodConfig = "tenants:\n  - name: t1\n    service: {vip: 203.0.113.10, port: 13101}\n    reals: [{address: 10.0.0.1}]\n    allow: [198.51.100.7]\n"

const badConfig = "tenants:\n  - name: t1\n    service: {vip: 203.0.113.10, port: 99999}\n    reals: [{address: 10.0.0.1}]\n    allow: [198.51.100.7/8]\n"

func TestRoutes(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantBody   string // substring
		wantCall   string // the backend mutation expected ("" = none)
	}{
		{"status", "GET", "/v1/status", "", 200, `"node": "lb1"`, ""},
		{"validate ok", "POST", "/v1/validate?file=a.yaml", goodConfig, 200, `"ok": true`, ""},
		{"validate problems", "POST", "/v1/validate?file=a.yaml", badConfig, 400, `a.yaml:3: `, ""},
		{"validate empty", "POST", "/v1/validate", "", 400, "empty configuration", ""},
		{"diff", "POST", "/v1/diff?file=a.yaml", goodConfig, 200, `"changes": []`, ""},
		{"apply", "POST", "/v1/apply?file=a.yaml", goodConfig, 200, `"changes"`, "Apply"},
		{"apply problems", "POST", "/v1/apply?file=/etc/lbd/a.yaml", badConfig, 400, `/etc/lbd/a.yaml:3: port`, "Apply"},
		{"reload", "POST", "/v1/reload", "", 200, `"ok"`, "Reload"},
		{"services", "GET", "/v1/services", "", 200, `"tcp/203.0.113.20:80"`, ""},
		{"service escaped", "GET", "/v1/services/tcp%2F203.0.113.20:80", "", 200, `"scheduler": "wlc"`, ""},
		{"service raw", "GET", "/v1/services/tcp/203.0.113.20:80", "", 200, `"scheduler": "wlc"`, ""},
		{"service unknown", "GET", "/v1/services/nope", "", 404, "no service nope", ""},
		{"add service", "POST", "/v1/services", "{vip: 203.0.113.30, port: 443, scheduler: rr, reals: [{address: 10.0.0.1}]}", 200, `"ok"`, "AddService"},
		{"add service json", "POST", "/v1/services", `{"vip": "203.0.113.30", "port": 443, "reals": [{"address": "10.0.0.1", "weight": 3}]}`, 200, `"ok"`, "AddService"},
		{"add service conflict", "POST", "/v1/services", "{vip: 203.0.113.20, port: 80, reals: [{address: 10.0.0.1}]}", 409, "already exists", "AddService"},
		{"add service bad port", "POST", "/v1/services", "{vip: 203.0.113.30, port: 0}", 400, "port 0 out of range", ""},
		{"add service bad scheduler", "POST", "/v1/services", "{vip: 203.0.113.30, port: 1, scheduler: fast}", 400, "unknown scheduler", ""},
		{"add service unknown key", "POST", "/v1/services", "{vip: 203.0.113.30, port: 1, colour: red}", 400, "colour", ""},
		{"add service not yaml", "POST", "/v1/services", "{{{", 400, "decode body", ""},
		{"add service empty", "POST", "/v1/services", "", 400, "empty body", ""},
		{"del service", "DELETE", "/v1/services/tcp%2F203.0.113.20:80", "", 200, `"ok"`, "DeleteService"},
		{"del service unknown", "DELETE", "/v1/services/tcp%2F1.2.3.4:5", "", 404, "not found", "DeleteService"},
		{"add real", "POST", "/v1/services/user1/reals", "{address: 192.168.12.235, weight: 2}", 200, `"ok"`, "AddReal"},
		{"add real bad addr", "POST", "/v1/services/user1/reals", "{address: 192.168.12}", 400, "invalid real server address", ""},
		{"add real bad weight", "POST", "/v1/services/user1/reals", "{address: 10.0.0.1, weight: -1}", 400, "weight -1 out of range", ""},
		{"add real unknown service", "POST", "/v1/services/nope/reals", "{address: 10.0.0.1}", 404, "not found", "AddReal"},
		{"del real", "DELETE", "/v1/services/user1/reals/192.168.12.233:13101", "", 200, `"ok"`, "DeleteReal"},
		{"del real bare addr", "DELETE", "/v1/services/user1/reals/192.168.12.233", "", 200, `"ok"`, "DeleteReal"},
		{"del real bad addr", "DELETE", "/v1/services/user1/reals/banana", "", 400, "invalid real server address", ""},
		{"weight", "PUT", "/v1/services/user1/reals/192.168.12.233:13101/weight", `{"weight": 5}`, 200, `"ok"`, "SetWeight"},
		{"weight out of range", "PUT", "/v1/services/user1/reals/192.168.12.233:13101/weight", `{"weight": 70000}`, 400, "out of range", ""},
		{"weight not json", "PUT", "/v1/services/user1/reals/192.168.12.233:13101/weight", `weight=5`, 400, "decode body", ""},
		{"weight unknown field", "PUT", "/v1/services/user1/reals/192.168.12.233:13101/weight", `{"weigth": 5}`, 400, "unknown field", ""},
		{"tenants", "GET", "/v1/tenants", "", 200, `"user1"`, ""},
		{"tenant", "GET", "/v1/tenants/user1", "", 200, `"198.51.100.0/28"`, ""},
		{"tenant unknown", "GET", "/v1/tenants/nobody", "", 404, "no tenant nobody", ""},
		{"add tenant", "POST", "/v1/tenants", "{name: t2, service: {vip: 203.0.113.10, port: 13102}, allow: [10.0.0.0/8]}", 200, `"ok"`, "AddTenant"},
		{"add tenant conflict", "POST", "/v1/tenants", "{name: user1, service: {vip: 203.0.113.10, port: 13102}}", 409, "already exists", "AddTenant"},
		{"add tenant bad name", "POST", "/v1/tenants", "{name: 'a b', service: {vip: 203.0.113.10, port: 13102}}", 400, "invalid tenant", ""},
		{"add tenant bad allow", "POST", "/v1/tenants", "{name: t2, service: {vip: 203.0.113.10, port: 13102}, allow: [10.0.0.1/8]}", 400, "host bits", ""},
		{"del tenant", "DELETE", "/v1/tenants/user1", "", 200, `"ok"`, "DeleteTenant"},
		{"del tenant unknown", "DELETE", "/v1/tenants/nobody", "", 404, "not found", "DeleteTenant"},
		{"allow list", "GET", "/v1/tenants/user1/allow", "", 200, `"198.51.100.7/32"`, ""},
		{"allow add", "POST", "/v1/tenants/user1/allow", `{"op": "add", "entries": ["10.1.0.0/16"]}`, 200, `"10.1.0.0/16"`, "ChangeAllow"},
		{"allow set empty", "POST", "/v1/tenants/user1/allow", `{"op": "set", "entries": []}`, 200, `"allow": []`, "ChangeAllow"},
		{"allow bad op", "POST", "/v1/tenants/user1/allow", `{"op": "flush", "entries": []}`, 400, "unknown allow op", ""},
		{"allow add nothing", "POST", "/v1/tenants/user1/allow", `{"op": "add", "entries": []}`, 400, "no entries", ""},
		{"allow bad entry", "POST", "/v1/tenants/user1/allow", `{"op": "add", "entries": ["10.0.0.300"]}`, 400, "not an address or CIDR", ""},
		{"allow unknown tenant", "POST", "/v1/tenants/nobody/allow", `{"op": "add", "entries": ["10.0.0.3"]}`, 404, "no tenant nobody", ""},
		{"allow other family", "POST", "/v1/tenants/user1/allow", `{"op": "add", "entries": ["2001:db8::/32"]}`, 400, "other address family", ""},
		{"kvs stats", "GET", "/v1/kvs/stats", "", 200, `"items": 5`, ""},
		{"kvs stats tenant", "GET", "/v1/kvs/stats?tenant=nobody", "", 200, `[]`, ""},
		{"kvs stats bad tenant", "GET", "/v1/kvs/stats?tenant=a%20b", "", 400, "invalid tenant name", ""},
		{"metrics", "GET", "/metrics", "", 200, "lbd_real_up", ""},
		{"no route", "GET", "/v2/status", "", 404, "no route", ""},
		{"wrong method", "PATCH", "/v1/status", "", 405, "allowed: GET", ""},
		{"add service no reals", "POST", "/v1/services", "{vip: 203.0.113.30, port: 443}", 400, "has no reals", ""},
		// Issue 17: doors left open, sizes no machine has, ambiguous bodies.
		{"allow everybody unconfirmed", "POST", "/v1/tenants/user1/allow", `{"op": "add", "entries": ["0.0.0.0/0"]}`, 400, "entries[0]: 0.0.0.0/0 admits (nearly) everybody: confirm with allow_any", ""},
		{"allow /7 unconfirmed", "POST", "/v1/tenants/user1/allow", `{"op": "set", "entries": ["10.0.0.1", "0.0.0.0/7"]}`, 400, "entries[1]: 0.0.0.0/7 admits", ""},
		{"allow everybody confirmed", "POST", "/v1/tenants/user1/allow", `{"op": "add", "entries": ["0.0.0.0/0"], "allow_any": true}`, 200, `"0.0.0.0/0"`, "ChangeAllow"},
		{"allow del everybody", "POST", "/v1/tenants/user1/allow", `{"op": "del", "entries": ["0.0.0.0/0"]}`, 200, `"allow"`, "ChangeAllow"},
		{"allow duplicate key", "POST", "/v1/tenants/user1/allow", `{"op": "set", "entries": ["10.0.0.1"], "entries": ["0.0.0.0/0"]}`, 400, `duplicate key \"entries\" at entries`, ""},
		{"weight duplicate key", "PUT", "/v1/services/user1/reals/192.168.12.233:13101/weight", `{"weight": 5, "weight": 0}`, 400, "duplicate key", ""},
		{"add tenant duplicate key", "POST", "/v1/tenants", `{"name": "t2", "name": "t3", "service": {"vip": "203.0.113.10", "port": 13102}}`, 400, "already defined", ""},
		{"add tenant everybody", "POST", "/v1/tenants", "{name: t2, service: {vip: 203.0.113.10, port: 13102}, allow: ['0.0.0.0/0']}", 400, "allow[0]: 0.0.0.0/0 admits", ""},
		{"add tenant everybody confirmed", "POST", "/v1/tenants", "{name: t2, service: {vip: 203.0.113.10, port: 13102}, allow: ['0.0.0.0/0'], allow_any: true}", 200, `"ok"`, "AddTenant"},
		{"add tenant huge memory", "POST", "/v1/tenants", `{"name": "t2", "service": {"vip": "203.0.113.10", "port": 13102}, "kvs": {"memory": "1000000TiB", "storage": "durable"}}`, 400, "kvs.memory: memory 1000000TiB: more than this machine's memory", ""},
		{"add tenant item larger than memory", "POST", "/v1/tenants", `{"name": "t2", "service": {"vip": "203.0.113.10", "port": 13102}, "kvs": {"memory": "2MiB", "max_item_size": "4MiB"}}`, 400, "kvs.max_item_size", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ts := newTestServer(t)
			req, err := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body %s does not contain %q", body, tt.wantBody)
			}
			var got []string
			for _, c := range f.Mutations() {
				got = append(got, c.Method)
			}
			var want []string
			if tt.wantCall != "" {
				want = []string{tt.wantCall}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("backend mutations = %v, want %v", got, want)
			}
		})
	}
}

func TestBadRequestCallsNoBackend(t *testing.T) {
	bad := []struct{ method, path, body string }{
		{"POST", "/v1/services", "vip: [1, 2]"},
		{"POST", "/v1/services", strings.Repeat("x", api.MaxBodySize+1)},
		{"POST", "/v1/services/user1/reals", "address: ''"},
		{"PUT", "/v1/services/user1/reals/10.0.0.1:80/weight", "{}{}"},
		{"POST", "/v1/tenants", "name: x"},
		{"POST", "/v1/tenants/user1/allow", `{"op": "set", "entries": ["::1/200"]}`},
		{"POST", "/v1/tenants/user1/allow", `[`},
		{"DELETE", "/v1/tenants/..", ""},
	}
	for _, b := range bad {
		f, ts := newTestServer(t)
		req, _ := http.NewRequest(b.method, ts.URL+b.path, strings.NewReader(b.body))
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 4 {
			t.Errorf("%s %s %.40q: status %d, want 4xx", b.method, b.path, b.body, resp.StatusCode)
		}
		if !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s %s: body %s has no error", b.method, b.path, body)
		}
		if m := f.Mutations(); len(m) != 0 {
			t.Errorf("%s %s: backend called: %v", b.method, b.path, m)
		}
	}
}
