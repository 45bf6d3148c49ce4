package rest

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/kvs"
)

// backend serves one real KVS tier's tenants.
type backend struct {
	tier   *kvs.Tier
	mu     sync.Mutex
	policy map[string]Policy
	secret map[string]string
}

func (b *backend) Store(t string) (KV, bool) {
	l, ok := b.tier.Local(t)
	if !ok {
		return nil, false
	}
	return l, true
}

func (b *backend) Policy(t string) (Policy, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.policy[t]
	return p, ok
}

func (b *backend) Authenticate(t, s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return s != "" && b.secret[t] == s
}

const secret = "s3cret-token"

// The servers a test runs against: net/http (ServeHTTP), and the KVS event
// loops (Proto) with every request run in place ("loop") or on a goroutine
// ("loop-slow": a backend without Quick).
var serverKinds = []string{"net/http", "loop", "loop-slow"}

// eachServer runs test once per server kind.
func eachServer(t *testing.T, test func(t *testing.T, kind string)) {
	for _, k := range serverKinds {
		t.Run(strings.ReplaceAll(k, "/", "-"), func(t *testing.T) { test(t, k) })
	}
}

// quickBackend is backend with Quick: nothing it does blocks.
type quickBackend struct{ *backend }

func (quickBackend) Quick(string, string) bool { return true }

// testServer is a REST server on loopback.
type testServer struct {
	URL    string
	client *http.Client
}

func (s *testServer) Client() *http.Client { return s.client }

// setup runs tenants a and b in a real tier, and a's REST API on loopback
// served as kind says.
func setup(t *testing.T, kind string) (*backend, *testServer, string) {
	t.Helper()
	tier := kvs.New(nil, kvs.Options{EventLoops: 1})
	t.Cleanup(func() { tier.Close() })
	err := tier.Apply(context.Background(), []kvs.TenantConfig{
		{Name: "a", Listen: "127.0.0.1:0", MaxItemSize: 4096},
		{Name: "b", Listen: "127.0.0.1:0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{tier: tier,
		policy: map[string]Policy{
			"a": {Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, CORSOrigins: []string{"https://app.example"}},
			"b": {Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		},
		secret: map[string]string{"a": secret, "b": "other"},
	}
	ts := &testServer{client: &http.Client{Timeout: 10 * time.Second}}
	switch kind {
	case "net/http":
		srv := httptest.NewServer(NewHandler("a", b, Options{}))
		t.Cleanup(srv.Close)
		ts.URL = srv.URL
	default:
		var bk Backend = quickBackend{b}
		if kind == "loop-slow" {
			bk = b
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ps := tier.ServeProto(ln, NewHandler("a", bk, Options{}).Proto(), kvs.ProtoOptions{})
		t.Cleanup(ps.Close)
		ts.URL = "http://" + ln.Addr().String()
	}
	t.Cleanup(ts.client.CloseIdleConnections)
	addr, _ := tier.Addr("a")
	return b, ts, addr.String()
}

type req struct {
	method, path, body string
	hdr                map[string]string
	auth               bool
}

func do(t *testing.T, srv *testServer, q req) (*http.Response, string) {
	t.Helper()
	r, err := http.NewRequest(q.method, srv.URL+q.path, strings.NewReader(q.body))
	if err != nil {
		t.Fatal(err)
	}
	if q.auth {
		r.Header.Set("Authorization", "Bearer "+secret)
	}
	for k, v := range q.hdr {
		r.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// mc is a minimal memcached text client.
type mc struct {
	c net.Conn
	r *bufio.Reader
}

func dialMC(t *testing.T, addr string) *mc {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &mc{c, bufio.NewReader(c)}
}

func (m *mc) set(t *testing.T, key string, flags int, val []byte) {
	fmt.Fprintf(m.c, "set %s %d 0 %d\r\n%s\r\n", key, flags, len(val), val)
	if l, _ := m.r.ReadString('\n'); l != "STORED\r\n" {
		t.Fatalf("memcached set: %q", l)
	}
}

func (m *mc) get(t *testing.T, key string) (flags int, val []byte, ok bool) {
	fmt.Fprintf(m.c, "get %s\r\n", key)
	l, err := m.r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if l == "END\r\n" {
		return 0, nil, false
	}
	var k string
	var n int
	if _, err := fmt.Sscanf(l, "VALUE %s %d %d", &k, &flags, &n); err != nil {
		t.Fatalf("memcached get: %q", l)
	}
	val = make([]byte, n+2)
	io.ReadFull(m.r, val)
	m.r.ReadString('\n') // END
	return flags, val[:n], true
}

func TestRESTAndMemcachedSeeTheSameBytes(t *testing.T) {
	eachServer(t, testRESTAndMemcachedSeeTheSameBytes)
}

func testRESTAndMemcachedSeeTheSameBytes(t *testing.T, kind string) {
	_, srv, mcAddr := setup(t, kind)
	m := dialMC(t, mcAddr)
	bin := "\x00\x01\xff\r\nbinary"
	resp, body := do(t, srv, req{method: "PUT", path: "/v1/keys/bin?flags=9&ttl=100", body: bin, auth: true,
		hdr: map[string]string{"Content-Type": "application/octet-stream"}})
	if resp.StatusCode != 200 {
		t.Fatalf("PUT raw: %d %s", resp.StatusCode, body)
	}
	if f, v, ok := m.get(t, "bin"); !ok || f != 9 || string(v) != bin {
		t.Errorf("memcached reads %q flags %d ok %v", v, f, ok)
	}
	m.set(t, "frommc", 3, []byte("\xfe\x00raw"))
	resp, body = do(t, srv, req{method: "GET", path: "/v1/keys/frommc", auth: true, hdr: map[string]string{"Accept": "application/octet-stream"}})
	if resp.StatusCode != 200 || body != "\xfe\x00raw" || resp.Header.Get("X-Lbd-Flags") != "3" {
		t.Errorf("raw GET: %d %q flags %q", resp.StatusCode, body, resp.Header.Get("X-Lbd-Flags"))
	}
	resp, body = do(t, srv, req{method: "GET", path: "/v1/keys/frommc", auth: true})
	var it Item
	if err := json.Unmarshal([]byte(body), &it); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON GET: %v %q", err, body)
	}
	if it.Encoding != "base64" || it.Value != "/gByYXc=" || it.Flags != 3 || it.CAS == 0 {
		t.Errorf("JSON item %+v", it)
	}
	// JSON write with text and ttl, read back over memcached.
	resp, body = do(t, srv, req{method: "PUT", path: "/v1/keys/j", body: `{"value":"héllo","flags":5,"ttl":60}`, auth: true,
		hdr: map[string]string{"Content-Type": "application/json"}})
	if resp.StatusCode != 200 {
		t.Fatalf("PUT JSON: %d %s", resp.StatusCode, body)
	}
	json.Unmarshal([]byte(body), &it)
	if it.Expires < time.Now().Unix()+50 {
		t.Errorf("ttl 60 gave expires %d", it.Expires)
	}
	if f, v, ok := m.get(t, "j"); !ok || f != 5 || string(v) != "héllo" {
		t.Errorf("memcached reads %q flags %d", v, f)
	}
	// base64 in JSON.
	do(t, srv, req{method: "PUT", path: "/v1/keys/b64", body: `{"value":"AAEC","encoding":"base64"}`, auth: true,
		hdr: map[string]string{"Content-Type": "application/json"}})
	if _, v, _ := m.get(t, "b64"); string(v) != "\x00\x01\x02" {
		t.Errorf("base64 PUT stored %q", v)
	}
	// incr/decr against memcached's view.
	m.set(t, "n", 0, []byte("10"))
	_, body = do(t, srv, req{method: "POST", path: "/v1/keys/n/incr?by=5", auth: true})
	if !strings.Contains(body, `"value":15`) {
		t.Errorf("incr: %s", body)
	}
	_, body = do(t, srv, req{method: "POST", path: "/v1/keys/n/decr", body: `{"by":20}`, auth: true})
	if !strings.Contains(body, `"value":0`) {
		t.Errorf("decr: %s", body)
	}
	if _, v, _ := m.get(t, "n"); string(v) != "0 " {
		t.Errorf("memcached reads %q after decr (memcached pads to the old length)", v)
	}
	resp, body = do(t, srv, req{method: "POST", path: "/v1/keys/j/incr", auth: true})
	if resp.StatusCode != 409 || !strings.Contains(body, "non_numeric") {
		t.Errorf("incr of text: %d %s", resp.StatusCode, body)
	}
	// Multi-get, both forms.
	_, body = do(t, srv, req{method: "GET", path: "/v1/keys?key=j&key=nope&key=n", auth: true})
	var its Items
	json.Unmarshal([]byte(body), &its)
	if len(its.Items) != 2 || its.Items[0].Key != "j" || len(its.Missing) != 1 || its.Missing[0] != "nope" {
		t.Errorf("multi-get: %s", body)
	}
	_, body = do(t, srv, req{method: "POST", path: "/v1/mget", body: `{"keys":["n","j"]}`, auth: true})
	json.Unmarshal([]byte(body), &its)
	if len(its.Items) != 2 || its.Items[0].Key != "n" {
		t.Errorf("POST mget: %s", body)
	}
	// Delete, seen by memcached.
	resp, _ = do(t, srv, req{method: "DELETE", path: "/v1/keys/j", auth: true})
	if _, _, ok := m.get(t, "j"); resp.StatusCode != 200 || ok {
		t.Errorf("delete: %d, memcached still has it: %v", resp.StatusCode, ok)
	}
	resp, body = do(t, srv, req{method: "DELETE", path: "/v1/keys/j", auth: true})
	if resp.StatusCode != 404 || !strings.Contains(body, `"code":"not_found"`) {
		t.Errorf("delete again: %d %s", resp.StatusCode, body)
	}
}

func TestXML(t *testing.T) { eachServer(t, testXML) }

func testXML(t *testing.T, kind string) {
	_, srv, mcAddr := setup(t, kind)
	m := dialMC(t, mcAddr)
	m.set(t, "x", 7, []byte("a<b>&c"))
	resp, body := do(t, srv, req{method: "GET", path: "/v1/keys/x", auth: true, hdr: map[string]string{"Accept": "application/xml"}})
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/xml") {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	var it Item
	if err := xml.Unmarshal([]byte(body), &it); err != nil || it.Value != "a<b>&c" || it.Flags != 7 || it.Key != "x" {
		t.Errorf("XML item %+v %v from %s", it, err, body)
	}
	// An XML write, and an XML error.
	resp, body = do(t, srv, req{method: "PUT", path: "/v1/keys/y", auth: true, body: `<item><value encoding="base64">AP8=</value><flags>2</flags></item>`,
		hdr: map[string]string{"Content-Type": "application/xml", "Accept": "application/xml"}})
	if resp.StatusCode != 200 {
		t.Fatalf("XML PUT: %d %s", resp.StatusCode, body)
	}
	if f, v, _ := m.get(t, "y"); f != 2 || string(v) != "\x00\xff" {
		t.Errorf("memcached reads %q flags %d", v, f)
	}
	resp, body = do(t, srv, req{method: "GET", path: "/v1/keys/none", auth: true, hdr: map[string]string{"Accept": "application/xml"}})
	if resp.StatusCode != 404 || !strings.Contains(body, "<error><code>not_found</code>") {
		t.Errorf("XML error: %d %s", resp.StatusCode, body)
	}
}

func TestCORS(t *testing.T) { eachServer(t, testCORS) }

func testCORS(t *testing.T, kind string) {
	_, srv, _ := setup(t, kind)
	pre := map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization, content-type"}
	resp, body := do(t, srv, req{method: "OPTIONS", path: "/v1/keys/k", hdr: pre})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	pre["Origin"] = "https://evil.example"
	resp, body = do(t, srv, req{method: "OPTIONS", path: "/v1/keys/k", hdr: pre})
	if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(body, "cors_origin_refused") {
		t.Errorf("preflight from an unlisted origin: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, _ = do(t, srv, req{method: "GET", path: "/v1/keys/k", auth: true, hdr: map[string]string{"Origin": "https://app.example"}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("actual request lacks ACAO: %v", resp.Header)
	}
	resp, _ = do(t, srv, req{method: "GET", path: "/v1/keys/k", auth: true, hdr: map[string]string{"Origin": "https://evil.example"}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("unlisted origin got ACAO: %v", resp.Header)
	}
}

func TestBadInput(t *testing.T) { eachServer(t, testBadInput) }

func testBadInput(t *testing.T, kind string) {
	b, srv, _ := setup(t, kind)
	long := strings.Repeat("k", 251)
	for _, tc := range []struct {
		name   string
		q      req
		status int
		code   string
		field  string
	}{
		{"no credential", req{method: "GET", path: "/v1/keys/k"}, 401, "unauthenticated", "header.Authorization"},
		{"wrong credential", req{method: "GET", path: "/v1/keys/k", hdr: map[string]string{"Authorization": "Bearer other"}}, 401, "bad_credential", "header.Authorization"},
		{"key too long", req{method: "GET", path: "/v1/keys/" + long, auth: true}, 400, "bad_key", "path.key"},
		{"key with space", req{method: "PUT", path: "/v1/keys/a%20b", body: "x", auth: true}, 400, "bad_key", "path.key"},
		{"key with newline", req{method: "GET", path: "/v1/keys/a%0Ab", auth: true}, 400, "bad_key", "path.key"},
		{"bad JSON", req{method: "PUT", path: "/v1/keys/k", body: `{"value":`, auth: true, hdr: map[string]string{"Content-Type": "application/json"}}, 400, "bad_json", "body"},
		{"wrong type", req{method: "PUT", path: "/v1/keys/k", body: `{"value":"x","flags":"no"}`, auth: true, hdr: map[string]string{"Content-Type": "application/json"}}, 400, "bad_json", "flags"},
		{"unknown field", req{method: "PUT", path: "/v1/keys/k", body: `{"value":"x","ttl2":1}`, auth: true, hdr: map[string]string{"Content-Type": "application/json"}}, 400, "unknown_field", "ttl2"},
		{"no value", req{method: "PUT", path: "/v1/keys/k", body: `{"flags":1}`, auth: true, hdr: map[string]string{"Content-Type": "application/json"}}, 400, "missing_field", "value"},
		{"bad base64", req{method: "PUT", path: "/v1/keys/k", body: `{"value":"!!","encoding":"base64"}`, auth: true, hdr: map[string]string{"Content-Type": "application/json"}}, 400, "bad_base64", "value"},
		{"bad ttl", req{method: "PUT", path: "/v1/keys/k?ttl=soon", body: "x", auth: true}, 400, "bad_ttl", "query.ttl"},
		{"oversized body", req{method: "PUT", path: "/v1/keys/k", body: strings.Repeat("x", 200<<10), auth: true}, 413, "too_large", "body"},
		{"over max_item_size", req{method: "PUT", path: "/v1/keys/k", body: strings.Repeat("x", 5000), auth: true}, 413, "too_large", "value"},
		{"bad key in mget", req{method: "POST", path: "/v1/mget", body: `{"keys":["ok","a b"]}`, auth: true}, 400, "bad_key", "keys[1]"},
		{"no keys", req{method: "GET", path: "/v1/keys", auth: true}, 400, "missing_field", "query.key"},
		{"bad delta", req{method: "POST", path: "/v1/keys/n/incr?by=-1", auth: true}, 400, "bad_delta", "query.by"},
		{"unknown endpoint", req{method: "GET", path: "/v2/x", auth: true}, 404, "not_found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, tc.q)
			var eb struct{ Error apiError }
			if err := json.Unmarshal([]byte(body), &eb); err != nil {
				t.Fatalf("not a JSON error: %v %q", err, body)
			}
			if resp.StatusCode != tc.status || eb.Error.Code != tc.code || eb.Error.Field != tc.field || eb.Error.Message == "" {
				t.Errorf("got %d %+v, want %d %s at %q", resp.StatusCode, eb.Error, tc.status, tc.code, tc.field)
			}
		})
	}
	// An unknown tenant (removed while its listener runs) and a source
	// outside the allow-list: refused before anything else.
	b.mu.Lock()
	b.policy["a"] = Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	b.mu.Unlock()
	resp, body := do(t, srv, req{method: "GET", path: "/v1/keys/k", auth: true})
	if resp.StatusCode != 403 || !strings.Contains(body, "source_refused") {
		t.Errorf("source outside the allow-list: %d %s", resp.StatusCode, body)
	}
	b.mu.Lock()
	delete(b.policy, "a")
	b.mu.Unlock()
	resp, body = do(t, srv, req{method: "GET", path: "/v1/openapi.json"})
	if resp.StatusCode != 404 || !strings.Contains(body, "unknown_tenant") {
		t.Errorf("unknown tenant: %d %s", resp.StatusCode, body)
	}
}

func TestOpenAPIServed(t *testing.T) { eachServer(t, testOpenAPIServed) }

func testOpenAPIServed(t *testing.T, kind string) {
	_, srv, _ := setup(t, kind)
	resp, body := do(t, srv, req{method: "GET", path: "/v1/openapi.json"})
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	for _, p := range []string{"/v1/keys/{key}", "/v1/keys/{key}/incr", "/v1/keys/{key}/decr", "/v1/keys", "/v1/mget"} {
		if doc.Paths[p] == nil {
			t.Errorf("openapi lacks %s", p)
		}
	}
}

func TestTenantsDoNotMix(t *testing.T) { eachServer(t, testTenantsDoNotMix) }

func testTenantsDoNotMix(t *testing.T, kind string) {
	b, srv, _ := setup(t, kind)
	lb, _ := b.tier.Local("b")
	lb.Set([]byte("secret"), []byte("b's"), 0, 0)
	resp, _ := do(t, srv, req{method: "GET", path: "/v1/keys/secret", auth: true})
	if resp.StatusCode != 404 {
		t.Errorf("tenant a's API reads tenant b's key: %d", resp.StatusCode)
	}
	resp, _ = do(t, srv, req{method: "GET", path: "/v1/keys/secret", hdr: map[string]string{"Authorization": "Bearer other"}})
	if resp.StatusCode != 401 {
		t.Errorf("tenant b's token opens tenant a's API: %d", resp.StatusCode)
	}
}
