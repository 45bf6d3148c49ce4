// Package apitest provides a fake api.Backend for tests of the API server,
// its client and lbctl.
package apitest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/pkg/config"
)

// Call is one recorded Backend call.
type Call struct {
	Method string
	Args   []any
}

// Fake is an in-memory Backend. It keeps services and tenants in its
// Status and records every call; set Err to make every call fail.
type Fake struct {
	mu sync.Mutex
	// State is what Status returns (and what changes mutate).
	State api.Status
	// TenantList is what Tenants returns.
	TenantList []api.Tenant
	// KVS is what KVSStats returns.
	KVS []api.KVSStats
	// DiffResult is what Diff and Apply return.
	DiffResult api.Diff
	// Err, if set, is returned by every call.
	Err error
	// Bus is the event bus.
	Bus   *events.Bus
	calls []Call
}

// New returns a fake with a small director status: one tenant service, one
// plain service, a VRRP instance and KVS counters.
func New() *Fake {
	f := &Fake{Bus: events.NewBus(16)}
	f.State = SampleStatus()
	f.TenantList = []api.Tenant{{
		Name: "user1", VIP: netip.MustParseAddr("203.0.113.10"), Port: 13101, Storage: "durable", Memory: 256 << 20,
		Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("198.51.100.0/28")},
	}}
	f.KVS = f.State.KVS
	return f
}

// Calls returns the recorded calls (excluding Events).
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Mutations returns the recorded calls other than reads.
func (f *Fake) Mutations() []Call {
	var out []Call
	for _, c := range f.Calls() {
		switch c.Method {
		case "Status", "Tenants", "KVSStats", "Validate", "Diff":
		default:
			out = append(out, c)
		}
	}
	return out
}

func (f *Fake) record(method string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Method: method, Args: args})
	return f.Err
}

// Status implements api.Backend.
func (f *Fake) Status(context.Context) (api.Status, error) {
	if err := f.record("Status"); err != nil {
		return api.Status{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.State, nil
}

// Events implements api.Backend.
func (f *Fake) Events() *events.Bus { return f.Bus }

// Validate implements api.Backend: it parses with config.Parse.
func (f *Fake) Validate(_ context.Context, data []byte, file string) error {
	if err := f.record("Validate", file); err != nil {
		return err
	}
	_, err := config.Parse(data, file)
	return err
}

// Diff implements api.Backend.
func (f *Fake) Diff(_ context.Context, data []byte, file string) (api.Diff, error) {
	if err := f.record("Diff", file); err != nil {
		return api.Diff{}, err
	}
	if _, err := config.Parse(data, file); err != nil {
		return api.Diff{}, err
	}
	return f.DiffResult, nil
}

// Apply implements api.Backend.
func (f *Fake) Apply(_ context.Context, data []byte, file string) (api.Diff, error) {
	if err := f.record("Apply", file); err != nil {
		return api.Diff{}, err
	}
	if _, err := config.Parse(data, file); err != nil {
		return api.Diff{}, err
	}
	return f.DiffResult, nil
}

// Reload implements api.Backend.
func (f *Fake) Reload(context.Context) error { return f.record("Reload") }

// AddService implements api.Backend.
func (f *Fake) AddService(_ context.Context, vs config.VirtualService) error {
	if err := f.record("AddService", vs); err != nil {
		return err
	}
	name := fmt.Sprintf("tcp/%s", netip.AddrPortFrom(netip.MustParseAddr(vs.VIP), uint16(vs.Port)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.ContainsFunc(f.State.Services, func(s api.ServiceStatus) bool { return s.Name == name }) {
		return fmt.Errorf("service %s: %w", name, api.ErrConflict)
	}
	f.State.Services = append(f.State.Services, api.ServiceStatus{Name: name, Protocol: "tcp",
		VIP: netip.MustParseAddr(vs.VIP), Port: uint16(vs.Port), Scheduler: vs.Scheduler, Forward: vs.Forward})
	return nil
}

// DeleteService implements api.Backend.
func (f *Fake) DeleteService(_ context.Context, name string) error {
	if err := f.record("DeleteService", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.State.Services, func(s api.ServiceStatus) bool { return s.Name == name })
	if i < 0 {
		return fmt.Errorf("service %s: %w", name, api.ErrNotFound)
	}
	f.State.Services = slices.Delete(f.State.Services, i, i+1)
	return nil
}

// AddReal implements api.Backend.
func (f *Fake) AddReal(_ context.Context, service string, r config.Real) error {
	return f.known(service, f.record("AddReal", service, r))
}

// DeleteReal implements api.Backend.
func (f *Fake) DeleteReal(_ context.Context, service string, addr netip.AddrPort) error {
	return f.known(service, f.record("DeleteReal", service, addr))
}

// SetWeight implements api.Backend.
func (f *Fake) SetWeight(_ context.Context, service string, addr netip.AddrPort, weight int) error {
	return f.known(service, f.record("SetWeight", service, addr, weight))
}

// known returns err, or ErrNotFound for an unknown service.
func (f *Fake) known(service string, err error) error {
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.ContainsFunc(f.State.Services, func(s api.ServiceStatus) bool { return s.Name == service }) {
		return fmt.Errorf("service %s: %w", service, api.ErrNotFound)
	}
	return nil
}

// Tenants implements api.Backend.
func (f *Fake) Tenants(context.Context) ([]api.Tenant, error) {
	if err := f.record("Tenants"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.TenantList), nil
}

// AddTenant implements api.Backend.
func (f *Fake) AddTenant(_ context.Context, t config.Tenant) error {
	if err := f.record("AddTenant", t); err != nil {
		return err
	}
	allow, err := config.ParseAllow(t.Allow)
	if err != nil {
		return fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.ContainsFunc(f.TenantList, func(x api.Tenant) bool { return x.Name == t.Name }) {
		return fmt.Errorf("tenant %s: %w", t.Name, api.ErrConflict)
	}
	f.TenantList = append(f.TenantList, api.Tenant{Name: t.Name, VIP: netip.MustParseAddr(t.Service.VIP),
		Port: uint16(t.Service.Port), Storage: t.KVS.Storage, Memory: int64(t.KVS.Memory), Allow: allow})
	return nil
}

// DeleteTenant implements api.Backend.
func (f *Fake) DeleteTenant(_ context.Context, name string) error {
	if err := f.record("DeleteTenant", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.TenantList, func(x api.Tenant) bool { return x.Name == name })
	if i < 0 {
		return fmt.Errorf("tenant %s: %w", name, api.ErrNotFound)
	}
	f.TenantList = slices.Delete(f.TenantList, i, i+1)
	return nil
}

// ChangeAllow implements api.Backend.
func (f *Fake) ChangeAllow(_ context.Context, tenant string, op api.AllowOp, entries []netip.Prefix) ([]netip.Prefix, error) {
	if err := f.record("ChangeAllow", tenant, op, entries); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.TenantList, func(x api.Tenant) bool { return x.Name == tenant })
	if i < 0 {
		return nil, fmt.Errorf("tenant %s: %w", tenant, api.ErrNotFound)
	}
	t := &f.TenantList[i]
	switch op {
	case api.AllowSet:
		t.Allow = slices.Clone(entries)
	case api.AllowAdd:
		for _, e := range entries {
			if !slices.Contains(t.Allow, e) {
				t.Allow = append(t.Allow, e)
			}
		}
	case api.AllowDel:
		t.Allow = slices.DeleteFunc(t.Allow, func(p netip.Prefix) bool { return slices.Contains(entries, p) })
	}
	t.Runtime = true
	return slices.Clone(t.Allow), nil
}

// KVSStats implements api.Backend.
func (f *Fake) KVSStats(_ context.Context, tenant string) ([]api.KVSStats, error) {
	if err := f.record("KVSStats", tenant); err != nil {
		return nil, err
	}
	var out []api.KVSStats
	for _, k := range f.KVS {
		if tenant == "" || k.Tenant == tenant {
			out = append(out, k)
		}
	}
	return out, nil
}
