package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/credential"
	"github.com/lbd-project/lbd/internal/history"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// A tenant's REST API is fenced like its memcached port (the storage ACL
// fences "T+rest" on the REST port and it is served only then), reads and
// writes the tenant's store in-process, takes the tenant's credential,
// and follows runtime allow-list changes at once.
func TestRESTServedBehindFenceAndSharesTheStore(t *testing.T) {
	ports := freePorts(t, 2)
	c := mustParse(t, fmt.Sprintf(`
nodes:
  - {name: lb1, role: director, address: 10.0.0.2}
  - {name: st1, role: storage, address: 10.0.1.1}
defaults: {storage_acl: true}
tenants:
  - name: a
    service: {vip: 10.0.0.1, port: %d}
    allow: [127.0.0.0/8]
    rest: {port: %d}
`, ports[0], ports[1]))
	log := slog.New(slog.DiscardHandler)
	f := &fakeFencer{fail: true}
	d := &Daemon{log: log, cfg: c, overlay: &Overlay{},
		creds: credential.New(nil, nil, credential.Params{Time: 1, MemKiB: 64, Threads: 1}),
		sub: subsystems{storACL: f, rs: fakeDR{},
			kvs: &kvsRunner{tier: kvs.New(log, kvs.Options{EventLoops: 1}), dir: t.TempDir()}}}
	d.sub.rest = newRESTRunner(log, restBackend{d}, d.sub.kvs.tier)
	t.Cleanup(func() { d.sub.rest.close(); d.sub.kvs.close() })
	node, _ := c.NodeByName("st1")
	restURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])

	if errs := d.reconcileStorage(context.Background(), c, node); len(errs) == 0 {
		t.Fatal("fence failure not reported")
	}
	if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]), time.Second); err == nil {
		conn.Close()
		t.Fatal("REST port open although its fence failed")
	}
	f.fail = false
	if errs := d.reconcileStorage(context.Background(), c, node); len(errs) > 0 {
		t.Fatal(errs)
	}
	if ft, ok := f.have["a+rest"]; !ok || ft.Port != uint16(ports[1]) || len(ft.Allow) == 0 {
		t.Fatalf("REST fence %+v (fences %v)", ft, f.have)
	}
	secret, _, err := d.creds.Issue("a", credential.Login)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, restURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("PUT", "/v1/keys/k?flags=4", "v\x00\xff"); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	mc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	fmt.Fprintf(mc, "get k\r\n")
	r := bufio.NewReader(mc)
	mc.SetDeadline(time.Now().Add(10 * time.Second))
	if l, _ := r.ReadString('\n'); l != "VALUE k 4 3\r\n" {
		t.Errorf("memcached: %q", l)
	}
	// A runtime allow-list without the source shuts it out at once.
	d.mu.Lock()
	d.overlay = &Overlay{Allow: map[string][]netip.Prefix{"a": {netip.MustParsePrefix("10.9.0.0/16")}}}
	d.mu.Unlock()
	if code, body := call("GET", "/v1/keys/k", ""); code != 403 || !strings.Contains(body, "source_refused") {
		t.Errorf("after the allow-list change: %d %s", code, body)
	}
}

// Credentials survive a restart, hashed: the state file never holds the
// secret.
func TestCredentialsPersistHashed(t *testing.T) {
	dir := t.TempDir()
	c := mustParse(t, `
nodes: [{name: st1, role: storage, address: 10.0.1.1}]
tenants: [{name: a, service: {vip: 10.0.0.1, port: 11211}, allow: [127.0.0.0/8]}]
`)
	creds, err := loadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{log: slog.New(slog.DiscardHandler), cfg: c, creds: creds}
	tc, err := d.IssueCredential(context.Background(), "a", false)
	if err != nil {
		t.Fatal(err)
	}
	op, err := d.IssueCredential(context.Background(), "", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.IssueCredential(context.Background(), "nobody", false); err == nil {
		t.Error("credential issued for an unknown tenant")
	}
	raw, err := os.ReadFile(filepath.Join(dir, credentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), tc.Secret) || strings.Contains(string(raw), op.Secret) {
		t.Fatal("the state file holds a secret")
	}
	again, err := loadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Verify("a", tc.Secret) || !again.Verify(credential.Operator, op.Secret) || again.Verify("a", op.Secret) {
		t.Error("reloaded credentials do not verify as issued")
	}
}

// A director fences a tenant's REST port with the tenant's list, the
// runtime one included, under the name "T+rest".
func TestDirectorFencesRESTPort(t *testing.T) {
	c := mustParse(t, `
nodes: [{name: lb1, role: both, address: 10.0.1.1}]
tenants:
  - {name: a, service: {vip: 10.0.0.1, port: 11211}, allow: [192.0.2.0/24], rest: {port: 11311}}
`)
	ov := &Overlay{Allow: map[string][]netip.Prefix{"a": {netip.MustParsePrefix("198.51.100.7/32")}}}
	fences := aclTenants(effectiveServices(c.Services(), nil, ov))
	if len(fences) != 2 || fences[0].Name != "a" || fences[1].Name != "a+rest" || fences[1].Port != 11311 {
		t.Fatalf("fences %+v", fences)
	}
	for _, f := range fences {
		if len(f.Allow) != 1 || f.Allow[0] != netip.MustParsePrefix("198.51.100.7/32") || f.VIP != netip.MustParseAddr("10.0.0.1") {
			t.Errorf("fence %+v does not follow the runtime list", f)
		}
	}
	st := storageFence(c, ov)
	if len(st) != 2 || st[1].Name != "a+rest" || st[1].Port != 11311 {
		t.Errorf("storage fences %+v", st)
	}
}

// A removed tenant's credentials and history go with it; the operator's
// and the other tenants' stay.
func TestForgetRemovedTenants(t *testing.T) {
	c := mustParse(t, `
nodes: [{name: st1, role: storage, address: 10.0.1.1}]
tenants: [{name: a, service: {vip: 10.0.0.1, port: 11211}, allow: []}]
`)
	d := &Daemon{log: slog.New(slog.DiscardHandler), cfg: c, opts: Options{StateDir: t.TempDir()},
		creds: credential.New(nil, nil, credential.Params{Time: 1, MemKiB: 64, Threads: 1}), hist: history.New()}
	sa, _, _ := d.creds.Issue("a", credential.Login)
	sb, _, _ := d.creds.Issue("gone", credential.Token)
	so, _, _ := d.creds.Issue(credential.Operator, credential.Login)
	now := time.Now()
	d.hist.Record(now, []history.Sample{{Tenant: "a"}, {Tenant: "gone"}})
	d.forgetRemovedTenants(c)
	if !d.creds.Verify("a", sa) || d.creds.Verify("gone", sb) || !d.creds.Verify(credential.Operator, so) {
		t.Error("wrong credentials kept")
	}
	if got := d.hist.Tenants(); len(got) != 1 || got[0] != "a" {
		t.Errorf("history kept for %v", got)
	}
}
