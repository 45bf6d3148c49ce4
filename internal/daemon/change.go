package daemon

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
)

// ChangeKind names a runtime change.
type ChangeKind string

// The runtime changes the API makes.
const (
	ChangeAllow      ChangeKind = "allow"       // Tenant, Op, Entries
	ChangeWeight     ChangeKind = "weight"      // Service, Addr, Weight
	ChangeAddService ChangeKind = "service_add" // VS
	ChangeDelService ChangeKind = "service_del" // Service
	ChangeAddReal    ChangeKind = "real_add"    // Service, Real
	ChangeDelReal    ChangeKind = "real_del"    // Service, Addr
	ChangeAddTenant  ChangeKind = "tenant_add"  // NewTenant
	ChangeDelTenant  ChangeKind = "tenant_del"  // Tenant
)

// Change is one runtime change as a value: what the API asked, in a form
// that travels between nodes (JSON) so that a node forwards its changes
// to the leader, whose one group commit carries the whole cluster's
// changes. apply makes it on an Overlay.
type Change struct {
	Kind ChangeKind `json:"kind"`
	// Service names a service (tcp/VIP:PORT or a tenant's name).
	Service string `json:"service,omitempty"`
	// Tenant names a tenant.
	Tenant string `json:"tenant,omitempty"`
	// Addr is a real server's address:port.
	Addr netip.AddrPort `json:"addr,omitzero"`
	// Weight is a real server's new weight.
	Weight int `json:"weight,omitempty"`
	// Op and Entries change an allow-list.
	Op      api.AllowOp    `json:"op,omitempty"`
	Entries []netip.Prefix `json:"entries,omitempty"`
	// VS, Real and NewTenant are what is added.
	VS        *config.VirtualService `json:"vs,omitempty"`
	Real      *config.Real           `json:"real,omitempty"`
	NewTenant *config.Tenant         `json:"new_tenant,omitempty"`
}

// String says what the change does, for logs and events.
func (c Change) String() string {
	switch c.Kind {
	case ChangeAllow:
		return fmt.Sprintf("allow %s %s %v", c.Op, c.Tenant, c.Entries)
	case ChangeWeight:
		return fmt.Sprintf("weight of %s in %s to %d", c.Addr, c.Service, c.Weight)
	case ChangeAddService:
		if c.VS != nil {
			return "add service " + serviceName(c.VS.Protocol, c.VS.VIP, c.VS.Port)
		}
	case ChangeDelService:
		return "delete service " + c.Service
	case ChangeAddReal:
		if c.Real != nil {
			return "add real " + c.Real.Address + " to " + c.Service
		}
	case ChangeDelReal:
		return "delete real " + c.Addr.String() + " from " + c.Service
	case ChangeAddTenant:
		if c.NewTenant != nil {
			return "add tenant " + c.NewTenant.Name
		}
	case ChangeDelTenant:
		return "delete tenant " + c.Tenant
	}
	return string(c.Kind)
}

// structural reports whether the change can change the set of services,
// reals or tenants (then the merged configuration is validated again).
func (c Change) structural() bool {
	return c.Kind != ChangeAllow && c.Kind != ChangeWeight
}

// apply makes the change on ov, a copy it may edit (cur is the desired
// state ov is part of). It returns the tenant's new list for an allow
// change. On error ov may be half edited: the caller drops the copy.
func (c Change) apply(ov *Overlay, cur *config.Config) ([]netip.Prefix, error) {
	switch c.Kind {
	case ChangeAllow:
		return applyAllow(ov, cur, c.Tenant, c.Op, c.Entries)
	case ChangeWeight:
		return nil, applyWeight(ov, cur, c.Service, c.Addr, c.Weight)
	case ChangeAddService:
		if c.VS == nil {
			return nil, fmt.Errorf("%w: service_add without a service", api.ErrInvalid)
		}
		name := serviceName(c.VS.Protocol, c.VS.VIP, c.VS.Port)
		if _, ok := findService(cur, name); ok {
			return nil, fmt.Errorf("%w: service %s", api.ErrConflict, name)
		}
		ov.Services = append(ov.Services, *c.VS)
		return nil, nil
	case ChangeDelService:
		return nil, applyDelService(ov, cur, c.Service)
	case ChangeAddReal:
		if c.Real == nil {
			return nil, fmt.Errorf("%w: real_add without a real server", api.ErrInvalid)
		}
		return nil, applyAddReal(ov, cur, c.Service, *c.Real)
	case ChangeDelReal:
		return nil, applyDelReal(ov, cur, c.Service, c.Addr)
	case ChangeAddTenant:
		if c.NewTenant == nil {
			return nil, fmt.Errorf("%w: tenant_add without a tenant", api.ErrInvalid)
		}
		t := *c.NewTenant
		if slices.ContainsFunc(cur.Tenants, func(x config.Tenant) bool { return x.Name == t.Name }) {
			return nil, fmt.Errorf("%w: tenant %s", api.ErrConflict, t.Name)
		}
		ov.Tenants = append(ov.Tenants, t)
		return nil, nil
	case ChangeDelTenant:
		name := c.Tenant
		if !slices.ContainsFunc(cur.Tenants, func(x config.Tenant) bool { return x.Name == name }) {
			return nil, fmt.Errorf("%w: tenant %s", api.ErrNotFound, name)
		}
		n := len(ov.Tenants)
		ov.Tenants = slices.DeleteFunc(ov.Tenants, func(x config.Tenant) bool { return x.Name == name })
		if len(ov.Tenants) == n {
			ov.DeletedTenants = append(ov.DeletedTenants, name)
		}
		delete(ov.Allow, name)
		return nil, nil
	}
	return nil, fmt.Errorf("%w: runtime change kind %q", api.ErrInvalid, c.Kind)
}

func applyDelService(ov *Overlay, cur *config.Config, name string) error {
	s, ok := findService(cur, name)
	switch {
	case !ok:
		return fmt.Errorf("%w: service %s", api.ErrNotFound, name)
	case s.Tenant != "":
		return fmt.Errorf("%w: %s is tenant %s's service; use tenant del", api.ErrInvalid, name, s.Tenant)
	}
	n := len(ov.Services)
	ov.Services = slices.DeleteFunc(ov.Services, func(v config.VirtualService) bool {
		return serviceName(v.Protocol, v.VIP, v.Port) == name
	})
	if len(ov.Services) == n {
		ov.DeletedServices = append(ov.DeletedServices, name)
	}
	delete(ov.Reals, name)
	delete(ov.DeletedReals, name)
	return nil
}

func applyAddReal(ov *Overlay, cur *config.Config, service string, r config.Real) error {
	s, err := plainService(cur, service)
	if err != nil {
		return err
	}
	ap := realAddr(r, int(s.Port))
	if !ap.Addr().IsValid() {
		return fmt.Errorf("%w: real server address %q", api.ErrInvalid, r.Address)
	}
	if hasReal(s, ap) {
		return fmt.Errorf("%w: real server %s in %s", api.ErrConflict, ap, service)
	}
	if ov.Reals == nil {
		ov.Reals = map[string][]config.Real{}
	}
	ov.Reals[service] = append(slices.Clone(ov.Reals[service]), r)
	return nil
}

func applyDelReal(ov *Overlay, cur *config.Config, service string, addr netip.AddrPort) error {
	s, err := plainService(cur, service)
	if err != nil {
		return err
	}
	if !hasReal(s, addr) {
		return fmt.Errorf("%w: real server %s in %s", api.ErrNotFound, addr, service)
	}
	added := ov.Reals[service]
	kept := slices.DeleteFunc(slices.Clone(added), func(r config.Real) bool { return realAddr(r, int(s.Port)) == addr })
	if len(kept) == len(added) {
		if ov.DeletedReals == nil {
			ov.DeletedReals = map[string][]netip.AddrPort{}
		}
		ov.DeletedReals[service] = append(slices.Clone(ov.DeletedReals[service]), addr)
	} else if ov.Reals[service] = kept; len(kept) == 0 {
		delete(ov.Reals, service)
	}
	delete(ov.Weights, realID(s, config.ResolvedReal{Addr: addr.Addr(), Port: addr.Port()}))
	return nil
}

func applyWeight(ov *Overlay, cur *config.Config, service string, addr netip.AddrPort, weight int) error {
	if weight < 0 || weight > 65535 {
		return fmt.Errorf("%w: weight %d out of range 0-65535", api.ErrInvalid, weight)
	}
	s, ok := findService(cur, service)
	if !ok {
		return fmt.Errorf("%w: service %s", api.ErrNotFound, service)
	}
	if !hasReal(s, addr) {
		return fmt.Errorf("%w: real server %s in %s", api.ErrNotFound, addr, service)
	}
	if ov.Weights == nil {
		ov.Weights = map[string]int{}
	}
	ov.Weights[realID(s, config.ResolvedReal{Addr: addr.Addr(), Port: addr.Port()})] = weight
	return nil
}

func applyAllow(ov *Overlay, cur *config.Config, tenant string, op api.AllowOp, entries []netip.Prefix) ([]netip.Prefix, error) {
	s, ok := findService(cur, tenant)
	if !ok || s.Tenant == "" {
		return nil, fmt.Errorf("%w: tenant %s", api.ErrNotFound, tenant)
	}
	for _, p := range entries {
		if !p.IsValid() || p.Masked() != p {
			return nil, fmt.Errorf("%w: allow entry %s (host bits set or invalid)", api.ErrInvalid, p)
		}
	}
	list, ok := ov.Allow[tenant]
	if !ok {
		list = s.Allow
	}
	next, err := changeAllow(list, op, entries)
	if err != nil {
		return nil, err
	}
	if ov.Allow == nil {
		ov.Allow = map[string][]netip.Prefix{}
	}
	ov.Allow[tenant] = next
	return next, nil
}
