//go:build integration

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/lbd-project/lbd/internal/api"
)

const panelLab = `
nodes:
  - {name: lb1, role: director, address: 10.99.0.2, interface: eth0}
  - {name: st1, role: storage, address: 10.99.0.11, interface: eth0}
defaults: {storage_acl: true}
tenants:
  - name: a
    service: {vip: 10.99.0.100, port: 13101}
    allow: [10.99.0.10]
    rest: {port: 13201}
  - name: b
    service: {vip: 10.99.0.100, port: 13102}
    allow: [10.99.0.10]
panel: {listen: '10.99.0.11:8443', tls_cert: %s, tls_key: %s}
`

// selfSigned writes a certificate and key for ip into dir.
func selfSigned(t *testing.T, dir, ip string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: ip},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "panel.crt"), filepath.Join(dir, "panel.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// browserIn starts a headless Chromium inside the lab namespace ns (its
// traffic leaves from that namespace's address), driven over a pipe.
func (l *lab) browserIn(t *testing.T, ns string) context.Context {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not installed (scripts/deps.sh installs it): %v", err)
	}
	wrapper := filepath.Join(l.dir, "chromium-in-"+ns)
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", l.full(ns), chromium)
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(wrapper), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	return ctx
}

// shots saves screenshots of the pages under $LBD_PANEL_SCREENSHOTS (a
// test artifact), or the test's temporary directory.
type shots struct {
	t   *testing.T
	dir string
	n   int
}

func newShots(t *testing.T) *shots {
	dir := os.Getenv("LBD_PANEL_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	return &shots{t: t, dir: dir}
}

func (s *shots) take(ctx context.Context, name string) {
	s.t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	s.n++
	path := filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", s.n, name))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("screenshot %s", path)
}

// A tenant and the operator use the panel in a real browser, against a real
// lbd whose fences are checked with real packets between namespaces.
func TestPanelInBrowser(t *testing.T) {
	l := newLab(t)
	l.host("cl", "10.99.0.10")
	l.host("out", "10.99.0.20")
	l.host("st1", "10.99.0.11")
	cert, key := selfSigned(t, l.dir, "10.99.0.11")
	st := l.start("st1", l.config(fmt.Sprintf(panelLab, cert, key)))
	st.status(t)
	c, err := api.NewClient(st.sock, "")
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	credA, err := c.IssueCredential(bg, "a", false)
	if err != nil {
		t.Fatal(err)
	}
	credOp, err := c.IssueCredential(bg, "", false)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "tenant a's store served", func() bool {
		out, err := l.nc("cl", "10.99.0.11:13101", "version")
		return err == nil && strings.HasPrefix(out, "VERSION")
	})
	// Keys written over memcached, and one over REST.
	held := l.openConn("cl", "10.99.0.11:13101")
	for i := range 120 {
		if r := held.roundTrip(t, fmt.Sprintf("set page:%03d 0 0 5\r\nvalue", i)); r != "STORED" {
			t.Fatalf("set: %q", r)
		}
	}
	for range 30 {
		held.roundTrip(t, "get page:001")
		held.out.ReadString('\n')
		held.out.ReadString('\n')
	}
	held.close()
	restPut := "PUT /v1/keys/rest:1?flags=3 HTTP/1.0\r\nAuthorization: Bearer " + credA.Secret + "\r\nContent-Length: 5\r\n\r\nhello"
	if out, err := l.nc("cl", "10.99.0.11:13201", restPut); err != nil || !strings.HasPrefix(out, "HTTP/1.0 200") {
		t.Fatalf("REST PUT from the tenant's source: %v %q", err, out)
	}
	if out, err := l.nc("cl", "10.99.0.11:13101", "get rest:1"); err != nil || out != "VALUE rest:1 3 5\r\n" {
		t.Errorf("memcached reads the REST write as %q (%v)", out, err)
	}
	if out, err := l.nc("out", "10.99.0.11:13201", "GET /v1/openapi.json HTTP/1.0\r\n"); err == nil {
		t.Errorf("an outsider reached the REST port: %q", out)
	}

	ctx := l.browserIn(t, "cl")
	sh := newShots(t)
	base := "https://10.99.0.11:8443"
	load, eval := browserActions(t, ctx)
	location := func() string {
		u, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	login := func(user, secret string) {
		t.Helper()
		load(chromedp.Navigate(base + "/login"))
		// The operator leaves the tenant field empty, as it is on a fresh page.
		if user != "" {
			if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("user"), user)); err != nil {
				t.Fatal(err)
			}
		}
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("credential"), secret)); err != nil {
			t.Fatal(err)
		}
		load(chromedp.Click(chromedp.ID("login")))
	}

	load(chromedp.Navigate(base + "/login"))
	sh.take(ctx, "login")
	login("a", "wrong")
	if got := eval(`document.querySelector('#error')?.textContent ?? ''`); !strings.Contains(got, "Wrong tenant name or credential") {
		t.Errorf("wrong credential: %q", got)
	}
	login("a", credA.Secret)
	if u := location(); u != base+"/tenants/a" {
		t.Fatalf("tenant a lands on %s", u)
	}
	// Traffic while the history samples (every 10 s): hits, misses, sets.
	busy := l.openConn("cl", "10.99.0.11:13101")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			busy.roundTrip(t, "touch page:001 0")
			busy.roundTrip(t, "get nope")
			busy.roundTrip(t, fmt.Sprintf("set busy:%d 0 0 1\r\nx", i%50))
			time.Sleep(time.Duration(i%7) * time.Millisecond)
		}
	}()
	// The graphs are drawn once the history holds a few samples.
	eventually(t, 120*time.Second, "graphs with data", func() bool {
		return eval(`fetch('/tenants/a/graph/ops?range=1h').then(r => r.text()).then(t => String(t.split('<circle').length > 4))`) == "true"
	})
	close(stop)
	<-done
	busy.close()
	load(chromedp.Navigate(base + "/tenants/a?range=1h"))
	if got := eval(`String([...document.querySelectorAll('img.graph')].filter(i => i.complete && i.naturalWidth > 0).length)`); got != "6" {
		t.Errorf("%s graphs drawn, want 6", got)
	}
	if got := eval(`document.querySelector('#records').textContent`); got < "121" || len(got) != 3 {
		t.Errorf("records shown: %q, want 121 to 171", got)
	}
	sh.take(ctx, "tenant")

	// Page through the keys written over memcached.
	load(chromedp.Navigate(base + "/tenants/a/keys?prefix=page:"))
	sh.take(ctx, "keys")
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		keys := eval(`[...document.querySelectorAll('td.key')].map(td => td.textContent).join(' ')`)
		for _, k := range strings.Fields(keys) {
			seen[k] = true
		}
		if eval(`String(!!document.querySelector('#next'))`) != "true" {
			break
		}
		if pages > 500 {
			t.Fatal("the key pages do not end")
		}
		load(chromedp.Click(chromedp.ID("next")))
	}
	if len(seen) != 120 || !seen["page:000"] || !seen["page:119"] || seen["rest:1"] || seen["busy:1"] {
		t.Errorf("paged through %d keys, want the 120 page:* keys", len(seen))
	}

	// Edit the allow-list: the new source gets in, the removed one is
	// refused, on both ports, with real packets.
	load(chromedp.Navigate(base + "/tenants/a/allow"))
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("allow"), "0.0.0.0/0\n")); err != nil {
		t.Fatal(err)
	}
	load(chromedp.Click(chromedp.ID("save")))
	if got := eval(`document.querySelector('#error')?.textContent ?? ''`); !strings.Contains(got, "admits (nearly) everybody") {
		t.Errorf("admitting everybody was not questioned: %q", got)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("allow"), "10.99.0.20\n")); err != nil {
		t.Fatal(err)
	}
	load(chromedp.Click(chromedp.ID("save")))
	if got := eval(`document.querySelector('#applied')?.textContent ?? ''`); !strings.Contains(got, "Applied at") {
		t.Fatalf("no applied notice: %q", got)
	}
	sh.take(ctx, "allow")
	if out, err := l.nc("out", "10.99.0.11:13101", "version"); err != nil || !strings.HasPrefix(out, "VERSION") {
		t.Errorf("the new source is refused: %v %q", err, out)
	}
	if out, err := l.nc("out", "10.99.0.11:13201", "GET /v1/openapi.json HTTP/1.0\r\n"); err != nil || !strings.HasPrefix(out, "HTTP/1.0 200") {
		t.Errorf("the new source is refused on the REST port: %v %q", err, out)
	}
	if out, err := l.nc("cl", "10.99.0.11:13101", "version"); err == nil {
		t.Errorf("the removed source still gets in: %q", out)
	}
	if out, err := l.nc("cl", "10.99.0.11:13201", "GET /v1/openapi.json HTTP/1.0\r\n"); err == nil {
		t.Errorf("the removed source still reaches the REST port: %q", out)
	}

	// Another tenant's pages and data, by changing the URL: refused.
	load(chromedp.Navigate(base + "/tenants/b"))
	if got := eval(`document.querySelector('#error')?.textContent ?? ''`); !strings.Contains(got, "may see only that tenant") {
		t.Errorf("tenant b's page: %q", got)
	}
	sh.take(ctx, "forbidden")
	for _, p := range []string{"/tenants/b/keys", "/tenants/b/allow", "/tenants/b/graph/records", "/api/tenants/b/series", "/operator"} {
		if got := eval(`fetch('` + p + `').then(r => String(r.status))`); got != "403" {
			t.Errorf("tenant a gets %s: %s", p, got)
		}
	}

	// The operator sees the node and every tenant.
	load(chromedp.Navigate(base + "/tenants/a"))
	load(chromedp.Click(chromedp.ID("logout")))
	login("", credOp.Secret)
	if u := location(); u != base+"/operator" {
		t.Fatalf("the operator lands on %s", u)
	}
	tenants := eval(`document.querySelector('#tenants').textContent`)
	node := eval(`document.querySelector('#node').textContent`)
	if !strings.Contains(tenants, "a") || !strings.Contains(tenants, "b") || !strings.Contains(node, "st1") || !strings.Contains(node, "storage") {
		t.Errorf("operator page: tenants %q node %q", tenants, node)
	}
	events := eval(`document.querySelector('#events').textContent`)
	if !strings.Contains(events, "allow") && !strings.Contains(events, "reconcile") {
		t.Errorf("no recent events: %q", events)
	}
	sh.take(ctx, "operator")
	load(chromedp.Navigate(base + "/tenants/b"))
	if u := location(); !slices.Contains([]string{base + "/tenants/b"}, u) || eval(`document.title`) != "Tenant b · lbd" {
		t.Errorf("the operator cannot open tenant b: %s", u)
	}
}

// browserActions returns, for the browser of ctx, load (run an action and
// wait for the page it loads) and eval (a script's string result); both
// fail t.
func browserActions(t *testing.T, ctx context.Context) (load func(chromedp.Action[chromedp.Void]), eval func(string) string) {
	load = func(a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, a)); err != nil {
			t.Fatal(err)
		}
	}
	eval = func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	return load, eval
}
