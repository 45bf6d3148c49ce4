package daemon

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/pkg/acl"
	"github.com/lbd-project/lbd/pkg/ipvs"
	"github.com/lbd-project/lbd/pkg/ipvs/ipvstest"
)

// fakeFencer keeps what it fences; with fail set, Apply changes nothing
// and returns a general error (not a per-tenant one).
type fakeFencer struct {
	have map[string]acl.Tenant
	fail bool
}

func (f *fakeFencer) Apply(_ context.Context, ts []acl.Tenant) error {
	if f.fail {
		return errors.New("iptables-restore: exit status 1")
	}
	f.have = map[string]acl.Tenant{}
	for _, t := range ts {
		f.have[t.Name] = t
	}
	return nil
}

func (f *fakeFencer) SetAllow(_ context.Context, name string, allow []netip.Prefix) error {
	if f.fail {
		return errors.New("ipset: failed")
	}
	t := f.have[name]
	t.Allow = allow
	f.have[name] = t
	return nil
}

func (f *fakeFencer) Tenant(name string) (acl.Tenant, bool)      { t, ok := f.have[name]; return t, ok }
func (f *fakeFencer) State(context.Context) ([]acl.State, error) { return nil, nil }
func (f *fakeFencer) Close() error                               { return nil }

func (f *fakeFencer) Tenants() []acl.Tenant {
	var out []acl.Tenant
	for _, name := range slices.Sorted(maps.Keys(f.have)) {
		out = append(out, f.have[name])
	}
	return out
}

// A tenant is announced (put in IPVS) only when its own fence is in place.
func TestFenceBeforeAnnounce(t *testing.T) {
	c := mustParse(t, fileYAML)
	f := &fakeFencer{}
	d := &Daemon{sub: subsystems{acl: f}}
	ctx := context.Background()

	if err := d.reconcileACL(ctx, effectiveServices(c.Services(), nil, nil)); err != nil {
		t.Fatal(err)
	}
	if !d.sub.fenced["a"] || !d.sub.fenced["b"] {
		t.Fatalf("fenced = %v, want a and b", d.sub.fenced)
	}

	// The kernel refuses everything: a new tenant is not announced, the
	// existing ones keep their previous fences and stay.
	f.fail = true
	next := mustParse(t, strings.Replace(fileYAML, "virtual_services:",
		"  - {name: c, service: {vip: 10.0.0.1, port: 11213}, allow: []}\nvirtual_services:", 1))
	if err := d.reconcileACL(ctx, effectiveServices(next.Services(), nil, nil)); err == nil {
		t.Fatal("failure not reported")
	}
	if d.sub.fenced["c"] {
		t.Error("new tenant c counted as fenced although its fence failed")
	}
	if !d.sub.fenced["a"] {
		t.Error("tenant a lost its standing fence")
	}

	// A tenant whose port changed is not announced on its old fence.
	moved := mustParse(t, `
nodes:
  - {name: st1, role: storage, address: 10.0.1.1}
tenants:
  - {name: a, service: {vip: 10.0.0.1, port: 12000}, allow: [192.0.2.0/24]}
`)
	if err := d.reconcileACL(ctx, effectiveServices(moved.Services(), nil, nil)); err == nil {
		t.Fatal("failure not reported")
	}
	if d.sub.fenced["a"] {
		t.Error("tenant a announced on port 12000 behind its old fence on 11211")
	}
}

// A removed tenant stays fenced while IPVS still has its service, even
// when an ACL apply in between failed (and the daemon forgot what it had
// applied).
func TestFenceLingersAfterFailedApply(t *testing.T) {
	ctx := context.Background()
	c := mustParse(t, fileYAML)
	r, err := ipvs.NewReconciler(ipvstest.NewFake(), ipvs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFencer{}
	d := &Daemon{sub: subsystems{acl: f, ipvs: r}}
	eff := effectiveServices(c.Services(), nil, nil)
	if err := d.reconcileACL(ctx, eff); err != nil {
		t.Fatal(err)
	}
	var desired []ipvs.Service
	for _, s := range eff {
		desired = append(desired, toIPVS(s))
	}
	if _, err := r.Apply(ctx, desired); err != nil {
		t.Fatal(err)
	}

	// Tenant b is removed (its IPVS service drains) while c is added; the
	// kernel refuses this apply.
	next := mustParse(t, strings.Replace(
		strings.Replace(fileYAML, "  - {name: b, service: {vip: 10.0.0.1, port: 11212}, allow: []}\n", "", 1),
		"virtual_services:", "  - {name: c, service: {vip: 10.0.0.1, port: 11213}, allow: []}\nvirtual_services:", 1))
	eff = effectiveServices(next.Services(), nil, nil)
	f.fail = true
	if err := d.reconcileACL(ctx, eff); err == nil {
		t.Fatal("failure not reported")
	}
	// The kernel works again; b's service is still in IPVS.
	f.fail = false
	if err := d.reconcileACL(ctx, eff); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tenant("b"); !ok {
		t.Error("tenant b's fence dropped while IPVS still has its service")
	}
	if !d.sub.fenced["c"] {
		t.Errorf("fenced = %v, want c", d.sub.fenced)
	}
}
