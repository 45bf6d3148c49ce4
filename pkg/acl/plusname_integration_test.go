//go:build integration

package acl

import (
	"reflect"
	"testing"
)

// A tenant's second port (its REST API, fenced as "NAME+rest") is fenced
// exactly like its first, with real packets, and survives a restart.
func TestIntegrationSecondPortFence(t *testing.T) {
	f := newFixture(t)
	tenants := []Tenant{
		{Name: "a", VIP: f.vip4, Port: 7001, Allow: pfx(cA4)},
		{Name: "a+rest", VIP: f.vip4, Port: 7002, Allow: pfx(cA4)},
	}
	m := newTestManager(t, f.lan.srv, Options{})
	if err := m.Apply(bg(), tenants); err != nil {
		t.Fatal(err)
	}
	serveTCP(t, f.lan.srv, hostPort(srv4, "7001"))
	serveTCP(t, f.lan.srv, hostPort(srv4, "7002"))
	check(t, "both ports", []probe{
		tcp(f.a, srv4, "7001", true), tcp(f.a, srv4, "7002", true),
		tcp(f.o, srv4, "7001", false), tcp(f.o, srv4, "7002", false),
		tcp(f.b, srv4, "7002", false),
	})
	if err := m.SetAllow(bg(), "a+rest", pfx(cB4)); err != nil {
		t.Fatal(err)
	}
	check(t, "after change", []probe{tcp(f.b, srv4, "7002", true), tcp(f.a, srv4, "7002", false), tcp(f.a, srv4, "7001", true)})
	want := m.Tenants()
	m.Close()
	again := newTestManager(t, f.lan.srv, Options{})
	if err := again.Adopt(bg()); err != nil {
		t.Fatal(err)
	}
	if got := again.Tenants(); !reflect.DeepEqual(got, want) {
		t.Errorf("adopted %+v, want %+v", got, want)
	}
}
