//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lbd-project/lbd/internal/credential"
	"github.com/lbd-project/lbd/internal/statefile"
)

const panelCluster = `
nodes:
  - {name: lb1, role: director, address: 10.99.0.2, interface: eth0, priority: 150}
  - {name: lb2, role: director, address: 10.99.0.3, interface: eth0, priority: 100}
  - {name: st1, role: storage, address: 10.99.0.11, interface: eth0}
  - {name: st2, role: storage, address: 10.99.0.12, interface: eth0}
vrrp: {virtual_router_id: 79, advert_interval: 100ms, vips: [10.99.0.100]}
defaults: {health: {type: none}, storage_acl: true, acl_action: reject}
tenants:
  - name: a
    service: {vip: 10.99.0.100, port: 13101}
    allow: [10.99.0.10]
    kvs: {memory: 8MiB, replicas: 1}
    rest: {port: 13201}
  - name: b
    service: {vip: 10.99.0.100, port: 13102}
    allow: [10.99.0.10]
panel: {listen: ':8443', tls_cert: PANELCERT, tls_key: PANELKEY}
cluster:
  tls:
    ca: CERTS/ca.pem
    cert: CERTS/{node}.pem
    key: CERTS/{node}-key.pem
  catchup_timeout: 5s
`

// The panel of a cluster, in a real browser, against four real lbd
// processes (two directors, two storage nodes of one clustered store):
// credentials issued through one node log in (panel and REST) on the
// others; the tenant's figures and graphs are the storage nodes' merged;
// an allow-list edit made on a storage node's panel shows each director
// applying it, and real packets then get in from the new source only; the
// operator sees every node, VRRP, the services, the slots and the events;
// a storage node that stops answering is shown as missing.
func TestPanelClusterInBrowser(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, "10.99.0.11")
	yaml := strings.NewReplacer("PANELCERT", cert, "PANELKEY", key).Replace(panelCluster)
	l := newClusterLab(t, yaml, [][2]string{{"lb1", "10.99.0.2"}, {"lb2", "10.99.0.3"}, {"st1", "10.99.0.11"}, {"st2", "10.99.0.12"}})
	l.host("cl", "10.99.0.10")
	l.host("out", "10.99.0.20")
	all := []string{"lb1", "lb2", "st1", "st2"}
	// st1 was upgraded from a version that kept credentials per node: its
	// credentials.json (tenant b's credential) is imported once into the
	// cluster state.
	oldCreds := filepath.Join(l.dir, "state-st1", "credentials.json")
	os.MkdirAll(filepath.Dir(oldCreds), 0o700)
	old := credential.New(nil, func(e []credential.Entry) error { return statefile.Save(oldCreds, e) }, credential.Params{})
	secretB, _, err := old.Issue("b", credential.Login)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		l.startNode(n)
	}
	l.listen("lb1", ":13101")
	l.listen("lb2", ":13101")
	l.leader(all...)

	// Credentials issued through one node each (the tenant's through a
	// director, the operator's through a storage node).
	bg := context.Background()
	credA, err := l.client("lb2").IssueCredential(bg, "a", false)
	if err != nil {
		t.Fatal(err)
	}
	credOp, err := l.client("st2").IssueCredential(bg, "", false)
	if err != nil {
		t.Fatal(err)
	}
	// The clustered store served through both storage nodes; keys written
	// through either.
	eventually(t, 60*time.Second, "tenant a served by st1 and st2", func() bool {
		for _, a := range []string{"10.99.0.11:13101", "10.99.0.12:13101"} {
			if out, err := l.nc("cl", a, "set warm 0 0 1\r\nx"); err != nil || !strings.HasPrefix(out, "STORED") {
				return false
			}
		}
		return true
	})
	for i, a := range []string{"10.99.0.11:13101", "10.99.0.12:13101"} {
		c := l.openConn("cl", a)
		for j := range 100 {
			// Until every slot's primary serves (the map settles after the
			// storage nodes join), a set may answer SERVER_ERROR: retried.
			for try := 0; ; try++ {
				r := c.roundTrip(t, fmt.Sprintf("set page:%d%02d 0 0 5\r\nvalue", i, j))
				if r == "STORED" {
					break
				}
				if !strings.HasPrefix(r, "SERVER_ERROR") || try == 100 {
					t.Fatalf("set through %s: %q", a, r)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		c.close()
	}
	// REST on st1 takes the credential issued through lb2 (404: the key
	// is not there, but the request got past authentication).
	restGet := func(secret string) string {
		out, _ := l.nc("cl", "10.99.0.11:13201", "GET /v1/keys/nokey HTTP/1.0\r\nAuthorization: Bearer "+secret+"\r\n")
		return out
	}
	eventually(t, 30*time.Second, "REST on st1 with the credential issued through lb2", func() bool {
		return strings.HasPrefix(restGet(credA.Secret), "HTTP/1.0 404")
	})
	if out := restGet(credA.Secret + "x"); !strings.HasPrefix(out, "HTTP/1.0 401") {
		t.Errorf("REST with a wrong credential: %.60q", out)
	}
	// The browser starts before the traffic's goroutine execs its clients:
	// a fork while its wrapper script is open for writing would make the
	// script "text file busy".
	ctx := l.browserIn(t, "cl")
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	// Traffic on both storage nodes while they sample.
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		c1, c2 := l.openConn("cl", "10.99.0.11:13101"), l.openConn("cl", "10.99.0.12:13101")
		defer c1.close()
		defer c2.close()
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c := c1
			if i%2 == 1 {
				c = c2
			}
			c.roundTrip(t, "touch page:001 0")
			c.roundTrip(t, "touch nope 0")
			time.Sleep(5 * time.Millisecond)
		}
	}()

	sh := newShots(t)
	load, eval := browserActions(t, ctx)
	login := func(base, user, secret string) {
		t.Helper()
		load(chromedp.Navigate(base + "/login"))
		if user != "" {
			if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("user"), user)); err != nil {
				t.Fatal(err)
			}
		}
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("credential"), secret)); err != nil {
			t.Fatal(err)
		}
		load(chromedp.Click(chromedp.ID("login")))
		u, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil || strings.HasSuffix(u, "/login") {
			t.Fatalf("login as %q on %s refused (%v): %s", user, base, err, eval(`document.querySelector('#error')?.textContent ?? ''`))
		}
	}

	// The tenant logs in on st1 with the credential issued through lb2.
	st1 := "https://10.99.0.11:8443"
	login(st1, "a", credA.Secret)
	// The series are both storage nodes', merged: none missing, points
	// drawn, and the records add up to the keys written (each node holds
	// every key, half as primary: replicas are not counted twice).
	var series struct {
		Points []struct {
			T, Items int64
		}
		Missing []string
	}
	eventually(t, 120*time.Second, "merged series with points from both storage nodes", func() bool {
		js := eval(`fetch('/api/tenants/a/series?range=15m').then(r => r.text())`)
		if err := json.Unmarshal([]byte(js), &series); err != nil {
			t.Fatalf("series: %v: %s", err, js)
		}
		return len(series.Missing) == 0 && len(series.Points) >= 3 && series.Points[len(series.Points)-1].Items >= 190
	})
	if last := series.Points[len(series.Points)-1].Items; last > 215 {
		t.Errorf("records in the merged series: %d, want about 201 (replicas counted twice?)", last)
	}
	close(stop)
	<-done
	load(chromedp.Navigate(st1 + "/tenants/a?range=15m"))
	if got := eval(`String([...document.querySelectorAll('img.graph')].filter(i => i.complete && i.naturalWidth > 0).length)`); got != "6" {
		t.Errorf("%s graphs drawn, want 6", got)
	}
	if n, _ := strconv.Atoi(eval(`document.querySelector('#records').textContent`)); n < 190 || n > 215 {
		t.Errorf("records shown: %d, want about 201", n)
	}
	members := eval(`document.querySelector('#members').textContent`)
	if !strings.Contains(members, "st1") || !strings.Contains(members, "st2") || strings.Contains(members, "no answer") {
		t.Errorf("members: %q", members)
	}
	sh.take(ctx, "cluster-tenant")

	// The allow-list edited on st2's panel (a session there: log in again).
	st2 := "https://10.99.0.12:8443"
	login(st2, "a", credA.Secret)
	load(chromedp.Navigate(st2 + "/tenants/a/allow"))
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("allow"), "10.99.0.20\n")); err != nil {
		t.Fatal(err)
	}
	load(chromedp.Click(chromedp.ID("save")))
	if got := eval(`[...document.querySelectorAll('tr.director')].map(r => r.dataset.node).join(' ')`); got != "lb1 lb2" {
		t.Errorf("directors listed: %q", got)
	}
	eventually(t, 60*time.Second, "every director applied the change (the page refreshes itself)", func() bool {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(!!document.querySelector('#all-applied'))`))
		return err == nil && v == "true"
	})
	if got := eval(`[...document.querySelectorAll('tr.director')].map(r => r.dataset.applied).join(' ')`); got != "true true" {
		t.Errorf("directors applied: %q", got)
	}
	sh.take(ctx, "cluster-allow-applied")
	// Real packets: the new source in, the removed one out, through the
	// VIP (the master director's fence) and on both storage nodes.
	eventually(t, 30*time.Second, "out served through the VIP", func() bool { return l.reaches("out", vip) })
	if l.reaches("cl", vip) {
		t.Error("the removed source gets through the VIP")
	}
	for _, a := range []string{"10.99.0.11:13101", "10.99.0.12:13101"} {
		if out, err := l.nc("out", a, "version"); err != nil || !strings.HasPrefix(out, "VERSION") {
			t.Errorf("the new source is refused by %s: %v %q", a, err, out)
		}
		if out, err := l.nc("cl", a, "version"); err == nil {
			t.Errorf("the removed source still reaches %s: %q", a, out)
		}
	}

	// The keys, paged on a director's panel (lb1 holds no store): every
	// key written through either storage node, once.
	lb1 := "https://10.99.0.2:8443"
	login(lb1, "a", credA.Secret)
	load(chromedp.Navigate(lb1 + "/tenants/a/keys?prefix=page:"))
	sh.take(ctx, "cluster-keys")
	seen := map[string]int{}
	for pages := 0; ; pages++ {
		if e := eval(`document.querySelector('#error')?.textContent ?? ''`); e != "" {
			t.Fatalf("keys: %s", e)
		}
		for _, k := range strings.Fields(eval(`[...document.querySelectorAll('td.key')].map(td => td.textContent).join(' ')`)) {
			seen[k]++
		}
		if eval(`String(!!document.querySelector('#next'))`) != "true" {
			break
		}
		if pages > 200 {
			t.Fatal("the key pages do not end")
		}
		load(chromedp.Click(chromedp.ID("next")))
	}
	twice := 0
	for _, n := range seen {
		if n > 1 {
			twice++
		}
	}
	if len(seen) != 200 || twice > 0 || seen["page:000"] == 0 || seen["page:199"] == 0 {
		t.Errorf("paged through %d keys (%d more than once), want the 200 page:* keys once", len(seen), twice)
	}

	// The operator, with the credential issued through st2, on lb2's panel.
	load(chromedp.Click(chromedp.ID("logout")))
	lb2 := "https://10.99.0.3:8443"
	login(lb2, "", credOp.Secret)
	nodes := eval(`document.querySelector('#nodes').textContent`)
	for _, n := range all {
		if !strings.Contains(nodes, n) {
			t.Errorf("operator page: node %s not listed: %q", n, nodes)
		}
	}
	if strings.Contains(nodes, "no answer") {
		t.Errorf("a node did not answer: %q", nodes)
	}
	vrrp := eval(`document.querySelector('#vrrp').textContent`)
	if !strings.Contains(vrrp, "lb1") || !strings.Contains(vrrp, "lb2") || !strings.Contains(vrrp, "master") {
		t.Errorf("VRRP: %q", vrrp)
	}
	if slots := eval(`document.querySelector('#slots').textContent`); !strings.Contains(slots, "st1: ") || !strings.Contains(slots, "st2: ") {
		t.Errorf("slots: %q", slots)
	}
	if s := eval(`document.querySelector('#services').textContent`); !strings.Contains(s, "10.99.0.100:13101") {
		t.Errorf("services: %q", s)
	}
	sh.take(ctx, "cluster-operator")

	// Tenant b logs in on lb1 with the credential st1 imported (the
	// operator's session on lb2 stays: another origin, another cookie).
	login(lb1, "b", secretB)
	if u, _ := chromedp.Run(ctx, chromedp.Location()); u != lb1+"/tenants/b" {
		t.Errorf("tenant b (imported credential) lands on %s", u)
	}
	if _, err := os.Stat(oldCreds + ".imported"); err != nil {
		t.Errorf("st1's credentials.json not marked imported: %v", err)
	}
	if _, err := os.Stat(oldCreds); err == nil {
		t.Error("st1's credentials.json is still there (it would be imported again)")
	}
	load(chromedp.Click(chromedp.ID("logout")))

	// st2 stops answering: its figures are missing, not zero.
	l.kill("st2")
	load(chromedp.Navigate(lb2 + "/tenants/a?range=15m"))
	if got := eval(`document.querySelector('#missing')?.textContent ?? ''`); !strings.Contains(got, "st2") {
		t.Errorf("st2 killed: missing %q", got)
	}
	if got := eval(`fetch('/tenants/a/graph/records?range=15m').then(r => r.text())`); !strings.Contains(got, "missing: st2") {
		t.Error("the graph does not name st2 as missing")
	}
	sh.take(ctx, "cluster-missing")
	l.nodes["st2"].d.stop(syscall.SIGKILL)
}
