//go:build integration || vm

// Issue 17's regressions against a real lbd: no input from a tenant or an
// operator crashes it, stalls it, or opens a door.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
)

// post sends body to lbd's API over its socket and returns the status
// and the answer.
func (e *e2e) post(path, body string) (int, string) {
	e.t.Helper()
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.sock)
	}}}
	resp, err := c.Post("http://lbd"+path, "application/yaml", strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// kvsStats returns lbd's KVS stats by tenant.
func (e *e2e) kvsStats() map[string]api.KVSStats {
	e.t.Helper()
	var ks []api.KVSStats
	e.jsonOut(&ks, "kvs", "stats")
	out := map[string]api.KVSStats{}
	for _, k := range ks {
		out[k.Tenant] = k
	}
	return out
}

// A tenant with a memory no machine has is refused by the API with its
// field path; lbd keeps serving and restarts cleanly. Runtime changes an
// older lbd saved with such a tenant do not keep lbd from starting: that
// tenant is left out and reported, the others serve.
func TestE2EHugeTenantCannotBrick(t *testing.T) {
	e := newE2E(t)
	code, body := e.post("/v1/tenants", `{"name": "huge", "service": {"vip": "10.0.0.100", "port": 11300}, "allow": ["10.0.1.0/24"], "kvs": {"memory": "1000000TiB", "storage": "durable"}}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "kvs.memory") {
		t.Fatalf("huge tenant: %d %s", code, body)
	}
	if code, _, errs := e.run("tenant", "add", "--vip", "10.0.0.100", "--port", "11300", "--memory", "9223372036854775807", "huge"); code == 0 || !strings.Contains(errs, "kvs.memory") {
		t.Fatalf("lbctl tenant add with MaxInt64 memory: exit %d, %s", code, errs)
	}
	if _, ok := e.kvsStats()["shop"]; !ok {
		t.Fatal("shop no longer served")
	}
	e.stop()
	e.start()

	// What an older lbd saved: the huge tenant and a fine one.
	e.stop()
	saved := map[string]any{
		"tenants": []map[string]any{
			{"name": "huge", "service": map[string]any{"vip": "10.0.0.100", "port": 11300}, "allow": []string{"10.0.1.0/24"}, "kvs": map[string]any{"memory": int64(1000000) << 40, "storage": "durable"}},
			{"name": "fine", "service": map[string]any{"vip": "10.0.0.100", "port": 11301}, "allow": []string{"10.0.1.0/24"}, "kvs": map[string]any{"memory": 16 << 20}},
		},
		"updated": time.Now(),
	}
	b, _ := json.Marshal(saved)
	// An older lbd kept no replicated state: runtime.json is imported.
	os.Remove(filepath.Join(e.state, "local-state.json"))
	os.Remove(filepath.Join(e.state, "applied-state.json"))
	if err := os.WriteFile(filepath.Join(e.state, "runtime.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.start()
	ks := e.kvsStats()
	if _, ok := ks["huge"]; ok {
		t.Errorf("the huge tenant runs: %+v", ks["huge"])
	}
	for _, name := range []string{"shop", "fine"} {
		if k, ok := ks[name]; !ok || k.Error != "" {
			t.Errorf("tenant %s not served: %+v", name, k)
		}
	}
	if !strings.Contains(e.log(), "saved runtime tenant cannot run; left out") {
		t.Errorf("the left-out tenant was not logged:\n%s", e.log())
	}
}

// A tenant whose store cannot start (its data directory is a file) is
// reported in kvs stats, the log and the events; the others serve, and a
// restart is clean.
func TestE2ETenantThatCannotStartIsIsolated(t *testing.T) {
	e := newE2E(t)
	events := exec.Command(e.lbctl, "--socket", e.sock, "-o", "json", "events")
	stdout, err := events.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { events.Process.Kill(); events.Wait() }()
	stop := time.AfterFunc(2*time.Minute, func() { events.Process.Kill() }) // a stuck test's net
	defer stop.Stop()

	if err := os.MkdirAll(filepath.Join(e.state, "kvs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.state, "kvs", "broken"), []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The change is valid and kept; lbd says it could not apply all of it.
	if code, _, errs := e.run("tenant", "add", "--vip", "10.0.0.100", "--port", "11302", "--allow", "10.0.1.0/24", "--storage", "durable", "--memory", "16MiB", "broken"); code != exitFailed || !strings.Contains(errs, `tenant "broken"`) {
		t.Fatalf("tenant add broken: exit %d, %s", code, errs)
	}
	sc := bufio.NewScanner(stdout)
	found := false
	for !found && sc.Scan() {
		found = strings.Contains(sc.Text(), "tenant cannot start") && strings.Contains(sc.Text(), "broken")
	}
	if !found {
		t.Fatalf("no event for the tenant that cannot start: %v", sc.Err())
	}
	ks := e.kvsStats()
	if ks["broken"].Error == "" {
		t.Errorf("kvs stats do not report broken: %+v", ks["broken"])
	}
	if k, ok := ks["shop"]; !ok || k.Error != "" {
		t.Errorf("shop not served: %+v", k)
	}
	if !strings.Contains(e.log(), "kvs tenant cannot start") {
		t.Error("not logged")
	}
	e.stop()
	e.start()
	if k, ok := e.kvsStats()["shop"]; !ok || k.Error != "" {
		t.Errorf("after a restart shop is not served: %+v", k)
	}
}

// aliasBomb is issue 17's file: one anchored tenant with n reals, then
// n-1 aliases of it.
func aliasBomb(n int) string {
	var b strings.Builder
	b.WriteString("nodes:\n  - {name: box, role: both, address: 10.0.0.5, interface: eth0}\ntenants:\n  - &T\n    name: t\n    service: {vip: 10.0.0.100, port: 11211}\n    reals:\n")
	for i := range n {
		fmt.Fprintf(&b, "      - {address: 10.%d.%d.%d}\n", i>>16&255, i>>8&255, i&255)
	}
	for range n - 1 {
		b.WriteString("  - *T\n")
	}
	return b.String()
}

// The alias file sent to /v1/apply is refused, and an allow-list change
// made at the same moment completes: untrusted input is not parsed on the
// loop that serializes changes and reconciles.
func TestE2EAliasBombDoesNotStall(t *testing.T) {
	e := newE2E(t)
	bomb := aliasBomb(10000)
	var wg sync.WaitGroup
	var code int
	var body string
	wg.Go(func() { code, body = e.post("/v1/apply?file=bomb.yaml", bomb) })
	e.ok("tenant", "allow", "add", "shop", "198.51.100.9")
	wg.Wait()
	if code != http.StatusBadRequest || !strings.Contains(body, "alias") {
		t.Errorf("apply of the alias file: %d %.300s", code, body)
	}
	if m := e.setMembers("shop"); !sameSet(m, []string{"10.0.1.0/24", "198.51.100.9"}) {
		t.Errorf("ipset members %v", m)
	}
	// The file on disk is untouched.
	if b, _ := os.ReadFile(e.cfg); strings.Contains(string(b), "*T") {
		t.Error("the alias file was written")
	}
}

// An allow entry that admits everybody needs --allow-any; duplicate keys
// in a JSON body are refused.
func TestE2EDoorsStayClosed(t *testing.T) {
	e := newE2E(t)
	if code, _, errs := e.run("tenant", "allow", "add", "shop", "0.0.0.0/0"); code == 0 || !strings.Contains(errs, "--allow-any") {
		t.Fatalf("allow 0.0.0.0/0 without --allow-any: exit %d, %s", code, errs)
	}
	if m := e.setMembers("shop"); !sameSet(m, []string{"10.0.1.0/24"}) {
		t.Fatalf("a refused change reached the ipset: %v", m)
	}
	var al api.AllowList
	e.jsonOut(&al, "tenant", "allow", "add", "--allow-any", "shop", "0.0.0.0/0")
	if len(al.Allow) != 2 {
		t.Errorf("with --allow-any: %v", al.Allow)
	}
	if !strings.Contains(e.log(), "admits (nearly) everybody") {
		t.Error("no warning logged for an allow-list open to everybody")
	}
	code, body := e.post("/v1/tenants/shop/allow", `{"op": "set", "entries": ["10.0.1.0/24"], "entries": ["0.0.0.0/0"], "allow_any": true}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "duplicate key") {
		t.Errorf("duplicate keys: %d %s", code, body)
	}
}
