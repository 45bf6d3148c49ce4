package acl

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// A restarted Manager reports the fences the last run left before its
// first Apply, reading only.
func TestAdoptBeforeApply(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	first := testManager(t, k)
	tenants := append(sampleTenants(), Tenant{Name: "everyone", VIP: netip.MustParseAddr("203.0.113.11"), Port: 1, Allow: pfx("0.0.0.0/0")})
	if err := first.Apply(ctx, tenants); err != nil {
		t.Fatal(err)
	}
	k.ops = nil

	m := testManager(t, k)
	if got := m.Tenants(); len(got) != 0 {
		t.Fatalf("new Manager reports %v before Adopt", got)
	}
	if err := m.Adopt(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Tenants(), first.Tenants(); !reflect.DeepEqual(got, want) {
		t.Errorf("adopted\n%+v\nwant\n%+v", got, want)
	}
	if len(k.ops) != 0 {
		t.Errorf("Adopt wrote %v", k.ops)
	}
	// What it adopted is enforced as far as Apply is concerned: nothing
	// to write.
	if err := m.Apply(ctx, tenants); err != nil {
		t.Fatal(err)
	}
	if len(k.ops) != 0 {
		t.Errorf("Apply after Adopt wrote %v", k.ops)
	}
}

// Only rules exactly as Apply writes them are adopted, whatever the action.
func TestAdoptOnlyOwnRules(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	opts, err := Options{Action: Reject}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if err := newManager(opts, k).Apply(ctx, sampleTenants()); err != nil {
		t.Fatal(err)
	}
	var chain []string
	for _, l := range k.chains[v4][DefaultChain] {
		switch {
		case strings.Contains(l, ":user2:"):
			// Edited by hand: the rule no longer matches its fingerprint.
			chain = append(chain, strings.Replace(l, "--dport 13102", "--dport 13199", 1))
		case strings.Contains(l, ":any:"):
			// One family of a tenant on every address is missing.
		default:
			chain = append(chain, l)
		}
	}
	k.chains[v4][DefaultChain] = chain

	m := testManager(t, k) // drop: the rules above reject
	if err := m.Adopt(ctx); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tn := range m.Tenants() {
		names = append(names, tn.Name)
	}
	if want := []string{"six", "user1"}; !reflect.DeepEqual(names, want) {
		t.Errorf("adopted %v, want %v", names, want)
	}
}
