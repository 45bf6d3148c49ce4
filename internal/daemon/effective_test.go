package daemon

import (
	"fmt"
	"github.com/lbd-project/lbd/pkg/acl"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/healthcheck"
)

type fakeHealth map[string]bool

func (f fakeHealth) State(id string) (healthcheck.Status, bool) {
	up, ok := f[id]
	return healthcheck.Status{ID: id, Up: up}, ok
}

func mustParse(t *testing.T, y string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const twoReals = `
nodes:
  - {name: st1, role: storage, address: 10.0.1.1}
  - {name: st2, role: storage, address: 10.0.1.2}
defaults:
  health: {type: tcp, inhibit_on_failure: %s, alpha: %s}
tenants:
  - {name: a, service: {vip: 10.0.0.1, port: 11211}, allow: [192.0.2.0/24]}
`

func weights(s config.ResolvedService) map[string]int {
	m := map[string]int{}
	for _, r := range s.Reals {
		m[r.Addr.String()] = r.Weight
	}
	return m
}

func TestEffectiveServices(t *testing.T) {
	const id1, id2 = "tcp/10.0.0.1:11211/10.0.1.1:11211", "tcp/10.0.0.1:11211/10.0.1.2:11211"
	tests := []struct {
		name    string
		inhibit string
		alpha   string
		health  fakeHealth
		ov      *Overlay
		want    map[string]int
	}{
		{"all up", "true", "false", fakeHealth{id1: true, id2: true}, nil,
			map[string]int{"10.0.1.1": 1, "10.0.1.2": 1}},
		{"down inhibited keeps weight 0", "true", "false", fakeHealth{id1: false, id2: true}, nil,
			map[string]int{"10.0.1.1": 0, "10.0.1.2": 1}},
		{"down without inhibit leaves rotation", "false", "false", fakeHealth{id1: false, id2: true}, nil,
			map[string]int{"10.0.1.2": 1}},
		{"unknown counts as up", "false", "false", fakeHealth{}, nil,
			map[string]int{"10.0.1.1": 1, "10.0.1.2": 1}},
		{"alpha: unknown counts as down", "true", "true", fakeHealth{id2: true}, nil,
			map[string]int{"10.0.1.1": 0, "10.0.1.2": 1}},
		{"runtime weight override", "true", "false", fakeHealth{id1: true, id2: true},
			&Overlay{Weights: map[string]int{id2: 5}}, map[string]int{"10.0.1.1": 1, "10.0.1.2": 5}},
		{"override does not resurrect a dead server", "true", "false", fakeHealth{id1: true, id2: false},
			&Overlay{Weights: map[string]int{id2: 5}}, map[string]int{"10.0.1.1": 1, "10.0.1.2": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, fmt.Sprintf(twoReals, tt.inhibit, tt.alpha))
			got := effectiveServices(c.Services(), tt.health, tt.ov)
			w := weights(got[0])
			if len(w) != len(tt.want) {
				t.Fatalf("weights = %v, want %v", w, tt.want)
			}
			for k, v := range tt.want {
				if w[k] != v {
					t.Errorf("weights = %v, want %v", w, tt.want)
				}
			}
			// The configured services are never modified in place.
			if len(c.Services()[0].Reals) != 2 || c.Services()[0].Reals[1].Weight != 1 {
				t.Errorf("config mutated: %+v", c.Services()[0].Reals)
			}
		})
	}
}

func TestEffectiveAllowOverlay(t *testing.T) {
	c := mustParse(t, fmt.Sprintf(twoReals, "true", "false"))
	repl := []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32")}
	got := effectiveServices(c.Services(), nil, &Overlay{Allow: map[string][]netip.Prefix{"a": repl}})
	if len(got[0].Allow) != 1 || got[0].Allow[0] != repl[0] {
		t.Errorf("allow = %v, want the runtime list", got[0].Allow)
	}
	got = effectiveServices(c.Services(), nil, nil)
	if len(got[0].Allow) != 1 || got[0].Allow[0].String() != "192.0.2.0/24" {
		t.Errorf("allow = %v, want the file's list", got[0].Allow)
	}
}

func TestHealthTargets(t *testing.T) {
	c := mustParse(t, `
virtual_services:
  - {vip: 10.0.0.1, port: 80, reals: [{address: 10.0.1.1}], health: {type: none}}
  - {vip: 10.0.0.2, port: 80, reals: [{address: 10.0.1.1}, {address: 10.0.1.2}],
     health: {type: http, path: /ok, warmup: 0, connect_port: 8080}}
`)
	ts := healthTargets(c.Services())
	if len(ts) != 2 {
		t.Fatalf("targets = %+v", ts)
	}
	if ts[0].Spec.Type != healthcheck.HTTP || ts[0].Spec.HTTP.Path != "/ok" || ts[0].Spec.Warmup >= 0 {
		t.Errorf("spec = %+v", ts[0].Spec)
	}
	if ts[1].Spec.ConnectAddr.String() != "10.0.1.2:8080" {
		t.Errorf("connect_port not applied: %v", ts[1].Spec.ConnectAddr)
	}
	if ts[0].ID != "tcp/10.0.0.2:80/10.0.1.1:80" {
		t.Errorf("id = %s", ts[0].ID)
	}
}

func TestWithLingering(t *testing.T) {
	a := acl.Tenant{Name: "a", VIP: netip.MustParseAddr("10.0.0.1"), Port: 1, Protocol: acl.TCP}
	b := acl.Tenant{Name: "b", VIP: netip.MustParseAddr("10.0.0.1"), Port: 2}
	c := acl.Tenant{Name: "c", VIP: netip.MustParseAddr("10.0.0.1"), Port: 3}
	owned := map[string]bool{"tcp/10.0.0.1:2": true} // b's service is still draining
	got := withLingering([]acl.Tenant{a}, []acl.Tenant{a, b, c}, owned)
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Errorf("got %+v, want a and the draining b (c's service is gone)", got)
	}
}

// A moved tenant's old service keeps a fence of its own, named after the
// tenant and the service, with the tenant's current list.
func TestWithLingeringMoved(t *testing.T) {
	vip := netip.MustParseAddr("10.0.0.1")
	oldList, newList := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	have := []acl.Tenant{{Name: "a", VIP: vip, Port: 1, Allow: oldList}}
	want := []acl.Tenant{{Name: "a", VIP: vip, Port: 2, Allow: newList}}
	got := withLingering(want, have, map[string]bool{"tcp/10.0.0.1:1": true})
	if len(got) != 2 || got[0].Name != "a" || got[0].Port != 2 {
		t.Fatalf("got %+v, want a on port 2 and a fence on its old port 1", got)
	}
	old := got[1]
	if old.Name != lingerName("a", "tcp/10.0.0.1:1") || old.Port != 1 || !slices.Equal(old.Allow, newList) {
		t.Errorf("lingering fence %+v, want %s on port 1 allowing a's current list", old, lingerName("a", "tcp/10.0.0.1:1"))
	}
	// The next reconcile keeps it under the same name.
	again := withLingering(want, got, map[string]bool{"tcp/10.0.0.1:1": true, "tcp/10.0.0.1:2": true})
	if len(again) != 2 || again[1].Name != old.Name {
		t.Errorf("second round: %+v", again)
	}
}

func TestLingerName(t *testing.T) {
	long := strings.Repeat("x", acl.MaxNameLen)
	for _, owner := range []string{"a", "user_1.b-c", strings.Repeat("t", 32)} {
		n := lingerName(owner, "tcp/10.0.0.1:1")
		if got := lingerOwner(n); got != owner {
			t.Errorf("lingerOwner(%q) = %q, want %q", n, got, owner)
		}
		if config.ValidName(n) || len(n) > acl.MaxNameLen {
			t.Errorf("lingerName(%q) = %q: a tenant could have it, or too long", owner, n)
		}
	}
	if n := lingerName(long, "udp/10.0.0.1:1"); len(n) > acl.MaxNameLen {
		t.Errorf("lingerName of a long name is %d bytes, over %d", len(n), acl.MaxNameLen)
	}
	if lingerName("a", "tcp/10.0.0.1:1") == lingerName("a", "udp/10.0.0.1:1") {
		t.Error("two services of one tenant share a lingering name")
	}
	for _, name := range []string{"a", "_a", "_a_1234567", "_a_zzzzzzzz", "a_12345678"} {
		if got := lingerOwner(name); got != name {
			t.Errorf("lingerOwner(%q) = %q, want the name itself", name, got)
		}
	}
}

func TestStorageFence(t *testing.T) {
	c := mustParse(t, `
nodes:
  - {name: lb1, role: director, address: 10.0.0.2}
  - {name: st1, role: storage, address: 10.0.1.1}
defaults: {storage_acl: true}
tenants:
  - {name: a, service: {vip: 10.0.0.1, port: 11211}, allow: [192.0.2.0/24]}
`)
	got := storageFence(c, &Overlay{})
	if len(got) != 1 || got[0].VIP.IsValid() || got[0].Port != 11211 {
		t.Fatalf("fence = %+v, want tenant a on every local address", got)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("10.0.0.2/32")}
	if !slices.Equal(got[0].Allow, want) {
		t.Errorf("allow = %v, want the tenant's list plus the director (health checks)", got[0].Allow)
	}
}

func TestTrackRealsOffset(t *testing.T) {
	c := mustParse(t, `
nodes:
  - {name: lb1, role: director, address: 10.0.0.2, interface: eth0}
vrrp: {virtual_router_id: 1, vips: [10.0.0.1], track_reals: 60}
virtual_services:
  - {vip: 10.0.0.1, port: 80, reals: [{address: 10.0.2.1}], health: {inhibit_on_failure: true}}
`)
	id := "tcp/10.0.0.1:80/10.0.2.1:80"
	if off := trackRealsOffset(c, effectiveServices(c.Services(), fakeHealth{id: true}, nil)); off != 0 {
		t.Errorf("with a real up: offset %d", off)
	}
	if off := trackRealsOffset(c, effectiveServices(c.Services(), fakeHealth{id: false}, nil)); off != -60 {
		t.Errorf("with no real up: offset %d, want -60", off)
	}
}
