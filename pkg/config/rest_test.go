package config

import (
	"strings"
	"testing"
)

const restBase = `
nodes:
  - {name: st1, role: both, address: 10.0.0.2, interface: eth0}
tenants:
  - name: user1
    service: {vip: 10.0.0.10, port: 13101}
    allow: [192.0.2.0/24]
`

// A tenant's REST port is a service of its own with the memcached port's
// VIP, reals, health and allow-list: fenced the same way.
func TestRESTService(t *testing.T) {
	c, err := Parse([]byte(restBase+"    rest: {port: 13201, cors_origins: ['https://app.example', '*']}\n"), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	svcs := c.Services()
	if len(svcs) != 2 {
		t.Fatalf("%d services", len(svcs))
	}
	mc, rs := svcs[0], svcs[1]
	if rs.Tenant != "user1" || rs.Part != PartREST || rs.Port != 13201 || rs.VIP != mc.VIP || rs.Name != "user1/rest" {
		t.Errorf("rest service %+v", rs)
	}
	if mc.Fence() != "user1" || rs.Fence() != "user1+rest" {
		t.Errorf("fences %q %q", mc.Fence(), rs.Fence())
	}
	if len(rs.Reals) != 1 || rs.Reals[0].Port != 13201 || rs.Reals[0].Addr != mc.Reals[0].Addr || mc.Reals[0].Port != 13101 {
		t.Errorf("reals %+v / %+v", rs.Reals, mc.Reals)
	}
	if len(rs.Allow) != 1 || rs.Allow[0] != mc.Allow[0] || rs.Health.Type != mc.Health.Type {
		t.Errorf("allow %v health %+v", rs.Allow, rs.Health)
	}
}

func TestRESTErrors(t *testing.T) {
	for _, tc := range []struct{ rest, want string }{
		{"    rest: {port: 0}\n", "r.yaml:8: rest port 0 out of range"},
		{"    rest: {port: 13101}\n", "r.yaml:8: port 13101 already belongs to another tenant"},
		{"    rest: {port: 1, cors_origins: [ftp://x]}\n", "r.yaml:8: cors origin \"ftp://x\": want http:// or https://"},
		{"    rest: {port: 1, cors_origins: ['https://x/path']}\n", "want scheme://host[:port] only"},
	} {
		_, err := Parse([]byte(restBase+tc.rest), "r.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.rest, err, tc.want)
		}
	}
}

func TestPanelConfig(t *testing.T) {
	if _, err := Parse([]byte(restBase+"panel: {listen: ':8443', tls_cert: c.pem, tls_key: k.pem}\n"), "p.yaml"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"panel: {listen: ':8443'}\n", "p.yaml:8: the panel is served over HTTPS only"},
		{"panel: {listen: 'nope', tls_cert: c, tls_key: k}\n", "p.yaml:8: listen \"nope\": want host:port"},
		{"panel: {tls_cert: c}\n", "without listen"},
	} {
		_, err := Parse([]byte(restBase+tc.in), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
}
