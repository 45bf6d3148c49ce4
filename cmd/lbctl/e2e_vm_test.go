//go:build vm

// IPVS end-to-end tests of lbctl: run inside the VM (make vmtest), where the
// kernel has IPVS, against bin/lbd and bin/lbctl (make build). The harness
// is in e2e_integration_test.go.
package main

import (
	"strings"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
)

// e2ePrebuilt: building inside the VM is slow, so the binaries come from
// bin/.
const e2ePrebuilt = true

// ipvs returns the namespace's IPVS table.
func (e *e2e) ipvs() string {
	e.t.Helper()
	return e.inNS("ipvsadm", "-Ln")
}

func TestVMLbctlIPVS(t *testing.T) {
	e := newE2E(t)
	var st api.Status
	e.jsonOut(&st, "status")
	if len(st.Services) != 1 || !st.Services[0].InKernel || st.Reconcile.IPVSError != "" {
		t.Fatalf("tenant service not in the kernel: %+v\n%s", st, e.log())
	}
	if tab := e.ipvs(); !strings.Contains(tab, "TCP  10.0.0.100:11211 rr") || !strings.Contains(tab, "-> 10.0.0.5:11211") {
		t.Fatalf("ipvsadm -Ln:\n%s", tab)
	}
	steps := []struct {
		args   []string
		real   string // a real server of tcp/10.0.0.100:80
		weight string // its weight in ipvsadm -Ln
	}{
		{[]string{"vs", "add", "--real", "10.0.0.9@2", "-s", "wlc", "10.0.0.100:80"}, "10.0.0.9:80", "2"},
		{[]string{"rs", "add", "-w", "3", "10.0.0.100:80", "10.0.0.10"}, "10.0.0.10:80", "3"},
		{[]string{"rs", "weight", "10.0.0.100:80", "10.0.0.9", "5"}, "10.0.0.9:80", "5"},
		{[]string{"rs", "drain", "10.0.0.100:80", "10.0.0.9:80"}, "10.0.0.9:80", "0"},
	}
	for _, s := range steps {
		e.ok(s.args...)
		tab := e.ipvs()
		if !strings.Contains(tab, "TCP  10.0.0.100:80 wlc") {
			t.Fatalf("after %v: no service in ipvsadm -Ln:\n%s", s.args, tab)
		}
		if w := realWeight(tab, s.real); w != s.weight {
			t.Fatalf("after %v: %s has weight %q, want %s:\n%s", s.args, s.real, w, s.weight, tab)
		}
	}
	// A bad request changes nothing.
	before := e.ipvs()
	if code, _, _ := e.run("rs", "weight", "10.0.0.100:80", "10.0.0.99", "4"); code == 0 {
		t.Errorf("weight of an unknown real server succeeded")
	}
	if code, _, _ := e.run("vs", "add", "--real", "10.0.0.9", "-s", "fast", "10.0.0.100:81"); code == 0 {
		t.Errorf("unknown scheduler accepted")
	}
	if after := e.ipvs(); after != before {
		t.Errorf("a refused request changed IPVS:\n%s\n->\n%s", before, after)
	}
	// Runtime changes survive a restart, and the restart drops nothing.
	e.stop()
	e.start()
	if after := e.ipvs(); after != before {
		t.Errorf("IPVS changed across a restart:\n%s\n->\n%s", before, after)
	}
	// vs del drains the service (weights 0, established connections
	// finish) before deleting it after the drain period.
	e.ok("vs", "del", "10.0.0.100:80")
	tab := e.ipvs()
	for _, r := range []string{"10.0.0.9:80", "10.0.0.10:80"} {
		if w := realWeight(tab, r); w != "" && w != "0" {
			t.Errorf("after vs del, %s still has weight %s:\n%s", r, w, tab)
		}
	}
	var svcs []api.ServiceStatus
	e.jsonOut(&svcs, "vs", "list")
	for _, s := range svcs {
		if s.Name == "tcp/10.0.0.100:80" {
			t.Errorf("vs list still shows the deleted service: %+v", s)
		}
	}
}

// realWeight finds a real server's weight in ipvsadm -Ln output
// ("  -> 10.0.0.9:80  Route  2  0  0"); "" if it is not there.
func realWeight(tab, real string) string {
	for _, line := range strings.Split(tab, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "->" && f[1] == real {
			return f[3]
		}
	}
	return ""
}
