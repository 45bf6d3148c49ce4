package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/api/apitest"
	"github.com/lbd-project/lbd/pkg/kvs"
	"github.com/prometheus/client_golang/prometheus"
)

// nodesFake is a fake backend with a storage membership.
type nodesFake struct {
	*apitest.Fake
	got []api.KVSNodeRequest
}

func (f *nodesFake) KVSNodes(context.Context) (api.KVSNodes, error) {
	return api.KVSNodes{Nodes: []kvs.MemberStatus{{Name: "st1", State: "active", Joined: true, Primaries: 1024}}}, nil
}

func (f *nodesFake) ChangeKVSNode(ctx context.Context, req api.KVSNodeRequest) (api.KVSNodes, error) {
	f.got = append(f.got, req)
	return f.KVSNodes(ctx)
}

func TestKVSNodesRoutes(t *testing.T) {
	f := &nodesFake{Fake: apitest.New()}
	s, err := api.NewServer(f, api.ServerOptions{Socket: filepath.Join(t.TempDir(), "s.sock"), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		want                     string
		call                     *api.KVSNodeRequest
	}{
		{"list", "GET", "/v1/kvs/nodes", "", 200, `"primaries": 1024`, nil},
		{"add", "POST", "/v1/kvs/nodes/st4", `{"op": "add"}`, 200, `"name": "st1"`, &api.KVSNodeRequest{Op: "add", Name: "st4"}},
		{"remove force", "POST", "/v1/kvs/nodes/st2", `{"op": "remove", "force": true}`, 200, `"state": "active"`, &api.KVSNodeRequest{Op: "remove", Name: "st2", Force: true}},
		{"bad op", "POST", "/v1/kvs/nodes/st4", `{"op": "evict"}`, 400, `op: \"evict\": want add, drain or remove`, nil},
		{"force without remove", "POST", "/v1/kvs/nodes/st4", `{"op": "drain", "force": true}`, 400, "force: only with op remove", nil},
		{"name mismatch", "POST", "/v1/kvs/nodes/st4", `{"op": "add", "name": "st5"}`, 400, `name: \"st5\" is not the node of the path`, nil},
		{"unknown field", "POST", "/v1/kvs/nodes/st4", `{"op": "add", "nodes": 1}`, 400, "nodes", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.got = nil
			req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%d %s, want %d with %q", resp.StatusCode, b, tc.status, tc.want)
			}
			switch {
			case tc.call == nil && len(f.got) > 0:
				t.Fatalf("backend called: %+v", f.got)
			case tc.call != nil && (len(f.got) != 1 || f.got[0] != *tc.call):
				t.Fatalf("backend got %+v, want %+v", f.got, *tc.call)
			}
		})
	}
}
