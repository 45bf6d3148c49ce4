package panel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/internal/history"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// fake is a Backend for the panel's own logic (the daemon's is tested with
// a real lbd and a browser).
type fake struct {
	mu        sync.Mutex
	allow     map[string][]netip.Prefix
	keys      []string
	polls     int // Directors calls since the last SetAllow
	histories int // History calls
}

func (f *fake) Login(t, s string) bool { return s == "pw-"+t }
func (f *fake) Tenants(context.Context) ([]api.Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Tenant
	for _, n := range []string{"a", "b"} {
		out = append(out, api.Tenant{Name: n, VIP: netip.MustParseAddr("192.0.2.1"), Port: 11211, Allow: f.allow[n]})
	}
	return out, nil
}
func (f *fake) Cluster(context.Context) []NodeView {
	lb1 := &api.Status{Node: "lb1", Role: "both", VRRP: []api.VRRPStatus{{VRID: 51, State: "master"}},
		Services: []api.ServiceStatus{{Name: "a", Tenant: "a", Protocol: "tcp", Port: 11211, Reals: []api.RealStatus{{Health: "up", Weight: 1}}}},
		KVS:      []api.KVSStats{{Tenant: "a", Items: 42, Bytes: 1000, LimitBytes: 1 << 20}}}
	return []NodeView{
		{Node: Node{Name: "lb1", Role: "both", Address: "192.0.2.2", Self: true}, Status: lb1,
			KVS:    &kvs.ClusterStatus{Node: "lb1", Tenants: []kvs.TenantClusterStatus{{Tenant: "a", Replicas: 1, Nodes: []kvs.NodeSlots{{Node: "lb1", Primaries: 8, Backups: 8}}}}},
			Events: []events.Event{{Time: time.Unix(1e9, 0), Kind: events.Health, Message: "real server up"}}},
		{Node: Node{Name: "st1", Role: "storage", Address: "192.0.2.3"}, Error: "no answer: connection refused"},
	}
}
func (f *fake) Figures(_ context.Context, t string) []Member {
	return []Member{
		{Node: "lb1", Stats: &api.KVSStats{Tenant: "a", Items: 42, Bytes: 1000, LimitBytes: 1 << 20, Hits: 3, Misses: 1}, Primaries: 8, Backups: 8},
		{Node: "st2", Stats: &api.KVSStats{Tenant: "a", Items: 42, Bytes: 1000, LimitBytes: 1 << 20, Hits: 3, Misses: 1}, Primaries: 8, Backups: 8},
		{Node: "st1", Error: "connection refused"},
	}
}
func (f *fake) History(_ context.Context, t string, since, _ time.Time) ([]history.Point, []string) {
	f.mu.Lock()
	f.histories++
	f.mu.Unlock()
	var out []history.Point
	for i := range 30 {
		out = append(out, history.Point{T: since.Unix() + int64(i)*600, Items: int64(i), Bytes: int64(i * 100), Limit: 5000, Commands: 100, Secs: 10, Hits: 3, Misses: 1})
	}
	return out, []string{"st1"}
}
func (f *fake) Directors(_ context.Context, index uint64) []api.NodeApplied {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	return []api.NodeApplied{{Name: "lb1", ReconciledIndex: index, Applied: true}, {Name: "lb2", ReconciledIndex: index - 1 + uint64(min(f.polls/2, 1)), Applied: f.polls >= 2}}
}
func (f *fake) Keys(_ context.Context, t, cursor, prefix string, limit int) (kvs.KeyPage, error) {
	if cursor == "bad" {
		return kvs.KeyPage{}, errors.New("kvs: bad crawl cursor")
	}
	var ks []kvs.KeyInfo
	start := 0
	fmt.Sscanf(cursor, "%d", &start)
	i := start
	for ; i < len(f.keys) && len(ks) < limit; i++ {
		if strings.HasPrefix(f.keys[i], prefix) {
			ks = append(ks, kvs.KeyInfo{Key: []byte(f.keys[i]), Size: 3})
		}
	}
	next := ""
	if i < len(f.keys) {
		next = fmt.Sprint(i)
	}
	return kvs.KeyPage{Keys: ks, Next: next}, nil
}
func (f *fake) SetAllow(_ context.Context, t string, a []netip.Prefix) ([]netip.Prefix, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.allow[t] = a
	f.polls = 0
	return a, 77, nil
}

type browser struct {
	t   *testing.T
	c   *http.Client
	srv *httptest.Server
}

func newPanel(t *testing.T, opts Options) (*fake, *httptest.Server, *Server) {
	f := &fake{allow: map[string][]netip.Prefix{}}
	for i := range 120 {
		f.keys = append(f.keys, fmt.Sprintf("k%03d", i))
	}
	p, err := New(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(p)
	t.Cleanup(srv.Close)
	return f, srv, p
}

func newBrowser(t *testing.T, srv *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	return &browser{t: t, c: c, srv: srv}
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *browser) post(path string, v url.Values) (int, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.srv.URL+path, v)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(body string) string {
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

func (b *browser) login(user, secret string) (int, string) {
	_, body := b.get("/login")
	return b.post("/login", url.Values{"csrf": {csrfOf(body)}, "user": {user}, "credential": {secret}})
}

func TestLoginAndTenantIsolation(t *testing.T) {
	_, srv, _ := newPanel(t, Options{})
	b := newBrowser(t, srv)
	if code, body := b.get("/tenants/a"); code != 401 || !strings.Contains(body, "Log in to see this page") {
		t.Errorf("anonymous: %d", code)
	}
	if code, body := b.login("a", "wrong"); code != 401 || !strings.Contains(body, "Wrong tenant name or credential") {
		t.Errorf("wrong credential: %d", code)
	}
	code, body := b.login("a", "pw-a")
	if code != 200 || !strings.Contains(body, "Tenant a") || !strings.Contains(body, `id="records">42<`) {
		t.Fatalf("login: %d %s", code, body)
	}
	for _, p := range []string{"/tenants/b", "/tenants/b/keys", "/tenants/b/allow", "/tenants/b/graph/records", "/api/tenants/b/series", "/operator"} {
		if code, body := b.get(p); code != 403 {
			t.Errorf("tenant a reads %s: %d %.200s", p, code, body)
		}
	}
	if code, _ := b.post("/tenants/b/allow", url.Values{"csrf": {csrfOf(body)}, "allow": {"0.0.0.0/0"}}); code != 403 {
		t.Errorf("tenant a writes b's allow-list: %d", code)
	}
	// The session cookie is Secure, HttpOnly and SameSite=Strict.
	resp, _ := b.c.Get(srv.URL + "/login")
	resp.Body.Close()
	b2 := newBrowser(t, srv)
	_, lp := b2.get("/login")
	r2, err := b2.c.PostForm(srv.URL+"/login", url.Values{"csrf": {csrfOf(lp)}, "user": {"b"}, "credential": {"pw-b"}})
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.Request.URL.Path != "/tenants/b" {
		t.Errorf("b lands on %s", r2.Request.URL.Path)
	}
	// The operator sees every tenant and the node.
	op := newBrowser(t, srv)
	code, body = op.login("", "pw-")
	if code != 200 || !strings.Contains(body, "IPVS services") || !strings.Contains(body, `href="/tenants/b"`) || !strings.Contains(body, "real server up") || !strings.Contains(body, ">st1<") {
		t.Errorf("operator: %d", code)
	}
	if code, _ := op.get("/tenants/b/keys"); code != 200 {
		t.Errorf("operator reads b's keys: %d", code)
	}
}

func TestCookiesFlags(t *testing.T) {
	_, srv, _ := newPanel(t, Options{})
	b := newBrowser(t, srv)
	_, body := b.get("/login")
	req, _ := http.NewRequest("POST", srv.URL+"/login", strings.NewReader(url.Values{"csrf": {csrfOf(body)}, "user": {"a"}, "credential": {"pw-a"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	found := false
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			found = true
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie %+v", c)
			}
		}
	}
	if !found {
		t.Error("no session cookie")
	}
}

func TestCSRFAndExpiry(t *testing.T) {
	now := time.Unix(2e9, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	_, srv, _ := newPanel(t, Options{Now: clock, SessionTTL: time.Minute})
	b := newBrowser(t, srv)
	// A login without the form's token is refused.
	if code, _ := b.post("/login", url.Values{"user": {"a"}, "credential": {"pw-a"}}); code != 403 {
		t.Errorf("login without CSRF: %d", code)
	}
	_, body := b.login("a", "pw-a")
	if code, body := b.post("/tenants/a/allow", url.Values{"csrf": {"forged"}, "allow": {"10.0.0.1"}}); code != 403 || !strings.Contains(body, "CSRF") {
		t.Errorf("forged CSRF: %d", code)
	}
	if code, _ := b.post("/tenants/a/allow", url.Values{"csrf": {csrfOf(body)}, "allow": {"10.0.0.1"}}); code != 200 {
		t.Errorf("good CSRF: %d", code)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if code, body := b.get("/tenants/a"); code != 401 || !strings.Contains(body, "session has expired") {
		t.Errorf("expired session page: %d", code)
	}
	_, body = b.login("a", "pw-a")
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if code, body := b.get("/api/tenants/a/series"); code != 401 || !strings.Contains(body, `"code":"session_expired"`) {
		t.Errorf("expired session JSON: %d %s", code, body)
	}
}

func TestLoginRateLimit(t *testing.T) {
	_, srv, _ := newPanel(t, Options{LoginBurst: 3, LoginEvery: time.Hour})
	b := newBrowser(t, srv)
	for i := range 3 {
		if code, _ := b.login("a", "wrong"); code != 401 {
			t.Fatalf("attempt %d: %d", i, code)
		}
	}
	code, body := b.login("a", "pw-a")
	if code != 429 || !strings.Contains(body, "Too many login attempts") {
		t.Errorf("4th attempt: %d", code)
	}
}

func TestAllowListEdit(t *testing.T) {
	f, srv, _ := newPanel(t, Options{})
	b := newBrowser(t, srv)
	_, body := b.login("a", "pw-a")
	tok := csrfOf(body)
	for _, tc := range []struct {
		in, want string
		code     int
	}{
		{"10.0.0.1/8", "host bits set", 400},
		{"nonsense", "not an address or CIDR", 400},
		{"0.0.0.0/0", "admits (nearly) everybody", 409},
		{"10.0.0.0/7", "admits (nearly) everybody", 409},
		{"198.51.100.7\n198.51.100.0/28", "Applied at", 200},
	} {
		code, body := b.post("/tenants/a/allow", url.Values{"csrf": {tok}, "allow": {tc.in}})
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%q: %d, want %d with %q", tc.in, code, tc.code, tc.want)
		}
	}
	if got := f.allow["a"]; len(got) != 2 {
		t.Errorf("allow-list %v", got)
	}
	if code, _ := b.post("/tenants/a/allow", url.Values{"csrf": {tok}, "allow": {"::/0"}, "confirm_everybody": {"yes"}}); code != 200 || len(f.allow["a"]) != 1 {
		t.Errorf("confirmed everybody: %d %v", code, f.allow["a"])
	}
}

// After an edit the page follows the directors: it names each one, says
// which have applied the change, and refreshes (a meta refresh: no
// script needed) until every one has.
func TestAllowListAppliedByEveryDirector(t *testing.T) {
	_, srv, _ := newPanel(t, Options{})
	b := newBrowser(t, srv)
	_, body := b.login("a", "pw-a")
	code, body := b.post("/tenants/a/allow", url.Values{"csrf": {csrfOf(body)}, "allow": {"198.51.100.7"}})
	if code != 200 || !strings.Contains(body, "change #77") || !strings.Contains(body, `data-node="lb2" data-applied="false"`) ||
		!strings.Contains(body, `<meta http-equiv="refresh" content="2">`) || strings.Contains(body, "all-applied") {
		t.Errorf("first view of the change: %d %s", code, body)
	}
	code, body = b.get("/tenants/a/allow?index=77&at=1")
	if code != 200 || !strings.Contains(body, `id="all-applied"`) || !strings.Contains(body, `data-node="lb2" data-applied="true"`) ||
		strings.Contains(body, "http-equiv") {
		t.Errorf("once every director applied it: %d %s", code, body)
	}
	if _, body := b.get("/tenants/a/allow?index=junk"); strings.Contains(body, `id="directors"`) {
		t.Error("a junk index shows a change")
	}
}

// The figures are the cluster's: summed over the storage nodes, records
// counted on the primaries, a node that does not answer named as missing
// (on the page and on every graph), not counted as zero.
func TestClusterFigures(t *testing.T) {
	f, srv, _ := newPanel(t, Options{})
	b := newBrowser(t, srv)
	b.login("a", "pw-a")
	_, body := b.get("/tenants/a")
	for _, want := range []string{`<span id="records">42</span>`, "primaries", `id="memory">2.0 KiB of 2.0 MiB`, `id="missing">missing: st1`, "no answer: connection refused", "<td>8 / 8</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("tenant page lacks %q", want)
		}
	}
	if _, body := b.get("/tenants/a/graph/records"); !strings.Contains(body, `class="missing">missing: st1`) {
		t.Error("the graph does not name the missing node")
	}
	// The page's six graphs ask the nodes once.
	f.mu.Lock()
	f.histories = 0
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range metrics {
		wg.Go(func() { b.get("/tenants/a/graph/" + m.Name + "?range=15m") })
	}
	wg.Wait()
	if f.histories != 1 {
		t.Errorf("six graphs asked for the series %d times, want once", f.histories)
	}
	b2 := newBrowser(t, srv)
	b2.login("", "pw-")
	_, body = b2.get("/operator")
	for _, want := range []string{"lb1: 8 / 8 (0)", "no answer: connection refused", "real server up", "<td>lb1</td><td>51</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("operator page lacks %q", want)
		}
	}
}

func TestSummarize(t *testing.T) {
	k := func(items, bytes uint64) *api.KVSStats {
		return &api.KVSStats{Items: items, Bytes: bytes, LimitBytes: 100, Hits: 1, CurrConns: 1}
	}
	for _, tc := range []struct {
		name            string
		ms              []Member
		records, memory uint64
		nodes           int
		missing         int
	}{
		{"one node, not clustered", []Member{{Node: "a", Stats: k(10, 50)}}, 10, 50, 1, 0},
		{"replicas not counted twice", []Member{{Node: "a", Stats: k(10, 50), Primaries: 2, Backups: 2}, {Node: "b", Stats: k(10, 50), Primaries: 2, Backups: 2}}, 10, 100, 2, 0},
		{"a silent node is missing, not zero", []Member{{Node: "a", Stats: k(10, 50)}, {Node: "b", Error: "timeout"}}, 10, 50, 1, 1},
		{"no store there", []Member{{Node: "a"}}, 0, 0, 0, 0},
		{"halves add up before rounding", []Member{{Node: "a", Stats: k(201, 0), Primaries: 1, Backups: 1}, {Node: "b", Stats: k(201, 0), Primaries: 1, Backups: 1}}, 201, 0, 2, 0},
	} {
		s := Summarize(tc.ms)
		if s.Records != tc.records || s.Memory != tc.memory || s.Nodes != tc.nodes || len(s.Missing) != tc.missing {
			t.Errorf("%s: %+v", tc.name, s)
		}
	}
}

func TestKeysAndGraphs(t *testing.T) {
	_, srv, _ := newPanel(t, Options{})
	b := newBrowser(t, srv)
	b.login("a", "pw-a")
	code, body := b.get("/tenants/a/keys")
	if code != 200 || strings.Count(body, `class="key"`) != keysPerPage || !strings.Contains(body, `id="next"`) {
		t.Fatalf("first page: %d", code)
	}
	next := regexp.MustCompile(`href="([^"]+)" id="next"`).FindStringSubmatch(body)[1]
	code, body = b.get(strings.ReplaceAll(next, "&amp;", "&"))
	if code != 200 || !strings.Contains(body, ">k050<") {
		t.Errorf("second page: %d", code)
	}
	code, body = b.get("/tenants/a/keys?prefix=k11")
	if strings.Count(body, `class="key"`) != 10 || !strings.Contains(body, `id="end"`) {
		t.Errorf("prefix page: %d %d keys", code, strings.Count(body, `class="key"`))
	}
	if code, body := b.get("/tenants/a/keys?cursor=bad"); code != 400 || !strings.Contains(body, "bad crawl cursor") {
		t.Errorf("bad cursor: %d", code)
	}
	for _, m := range metrics {
		code, body := b.get("/tenants/a/graph/" + m.Name + "?range=3d")
		if code != 200 || !strings.HasPrefix(body, "<svg") || !strings.Contains(body, `class="series"`) {
			t.Errorf("graph %s: %d %.100s", m.Name, code, body)
		}
	}
	if _, body := b.get("/tenants/a/graph/memory"); !strings.Contains(body, `class="limit"`) {
		t.Error("memory graph lacks the limit")
	}
	if code, _ := b.get("/tenants/a/graph/nope"); code != 404 {
		t.Errorf("unknown graph: %d", code)
	}
}

func TestRenderSVGEmptyAndHuman(t *testing.T) {
	now := time.Unix(2e9, 0)
	svg := string(renderSVG(metrics[0], nil, nil, now.Add(-time.Hour), now))
	if !strings.Contains(svg, "no data yet") || strings.Contains(svg, "polyline") {
		t.Errorf("empty graph: %s", svg)
	}
	for _, tc := range []struct {
		v    float64
		unit string
		want string
	}{{0, "", "0 "}, {1536, "B", "1.5 KiB"}, {2500000, "/s", "2.5 M/s"}, {75, "%", "75.0%"}} {
		if got := human(tc.v, tc.unit); got != tc.want {
			t.Errorf("human(%v, %q) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}

// FuzzPanel feeds raw requests, with and without a session: the panel
// answers every one (no panic), never with a 5xx.
func FuzzPanel(f *testing.F) {
	for _, s := range []string{
		"GET /tenants/a/keys?prefix=k&cursor=5 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /tenants/a/allow HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 30\r\n\r\ncsrf=C&allow=10.0.0.1%0a::/0&x",
		"GET /tenants/a/graph/memory?range=3d HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 20\r\n\r\nuser=a&credential=pw",
		"GET /operator HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(s), true)
	}
	fk := &fake{allow: map[string][]netip.Prefix{}, keys: []string{"k1", "k2"}}
	p, err := New(fk, Options{LoginBurst: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	sess := p.sessions.start("a", false)
	f.Fuzz(func(t *testing.T, raw []byte, withSession bool) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		r.RemoteAddr = "192.0.2.9:1000"
		if withSession {
			r.AddCookie(&http.Cookie{Name: sessionCookie, Value: sess.id})
		}
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%d for %q", w.Code, raw)
		}
	})
}
