package daemon

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/lbd-project/lbd/internal/statefile"
	"github.com/lbd-project/lbd/pkg/config"
)

const overlayFile = "runtime.json"

// Overlay is what was changed at runtime through the API, on top of the
// file. It is persisted under the state directory so a restart keeps it;
// `apply -f` of a new file replaces it.
type Overlay struct {
	// Allow replaces tenants' allow-lists.
	Allow map[string][]netip.Prefix `json:"allow,omitempty"`
	// Weights overrides real servers' weights, keyed by realID.
	Weights map[string]int `json:"weights,omitempty"`
	// Services are plain virtual services added at runtime.
	Services []config.VirtualService `json:"services,omitempty"`
	// DeletedServices names services of the file removed at runtime.
	DeletedServices []string `json:"deleted_services,omitempty"`
	// Reals are real servers added at runtime, by service name.
	Reals map[string][]config.Real `json:"reals,omitempty"`
	// DeletedReals are real servers removed at runtime, by service name.
	DeletedReals map[string][]netip.AddrPort `json:"deleted_reals,omitempty"`
	// Tenants are tenants added at runtime.
	Tenants []config.Tenant `json:"tenants,omitempty"`
	// DeletedTenants names tenants of the file removed at runtime.
	DeletedTenants []string `json:"deleted_tenants,omitempty"`
	// Updated is when the overlay last changed.
	Updated time.Time `json:"updated"`
}

// structural reports whether the overlay changes the set of services,
// reals or tenants (as opposed to only weights and allow-lists).
func (ov *Overlay) structural() bool {
	return ov != nil && (len(ov.Services) > 0 || len(ov.DeletedServices) > 0 || len(ov.Reals) > 0 ||
		len(ov.DeletedReals) > 0 || len(ov.Tenants) > 0 || len(ov.DeletedTenants) > 0)
}

// clone returns a deep enough copy to mutate without touching ov.
func (ov *Overlay) clone() *Overlay {
	c := *ov
	c.Allow = cloneMap(ov.Allow)
	c.Weights = cloneMap(ov.Weights)
	c.Services = slices.Clone(ov.Services)
	c.DeletedServices = slices.Clone(ov.DeletedServices)
	c.Reals = cloneMap(ov.Reals)
	c.DeletedReals = cloneMap(ov.DeletedReals)
	c.Tenants = slices.Clone(ov.Tenants)
	c.DeletedTenants = slices.Clone(ov.DeletedTenants)
	return &c
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return nil
	}
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// merge applies the overlay's structural changes to the file's
// configuration and validates the result like a file. Weights and
// allow-lists are applied later, by effectiveServices.
func merge(file *config.Config, ov *Overlay) (*config.Config, error) {
	if !ov.structural() {
		return file, nil
	}
	data, err := config.Marshal(file)
	if err != nil {
		return nil, err
	}
	c, err := config.Parse(data, file.File)
	if err != nil {
		return nil, fmt.Errorf("daemon: re-read configuration: %w", err)
	}
	c.VirtualServices = slices.DeleteFunc(c.VirtualServices, func(v config.VirtualService) bool {
		return slices.Contains(ov.DeletedServices, serviceName(v.Protocol, v.VIP, v.Port))
	})
	c.VirtualServices = append(c.VirtualServices, ov.Services...)
	for i := range c.VirtualServices {
		v := &c.VirtualServices[i]
		name := serviceName(v.Protocol, v.VIP, v.Port)
		v.Reals = slices.DeleteFunc(slices.Clone(v.Reals), func(r config.Real) bool {
			return slices.Contains(ov.DeletedReals[name], realAddr(r, v.Port))
		})
		v.Reals = append(v.Reals, ov.Reals[name]...)
	}
	c.Tenants = slices.DeleteFunc(c.Tenants, func(t config.Tenant) bool { return slices.Contains(ov.DeletedTenants, t.Name) })
	c.Tenants = append(c.Tenants, ov.Tenants...)
	data, err = config.Marshal(c)
	if err != nil {
		return nil, err
	}
	merged, err := config.Parse(data, "runtime changes over "+file.File)
	if err != nil {
		return nil, err
	}
	return merged, nil
}

// serviceName is the name config gives a plain service: proto/vip:port.
func serviceName(proto, vip string, port int) string {
	if proto == "" {
		proto = config.DefaultProtocol
	}
	a, err := netip.ParseAddr(vip)
	if err != nil || port < 0 || port > 65535 {
		return proto + "/" + vip
	}
	return proto + "/" + netip.AddrPortFrom(a, uint16(port)).String()
}

// realAddr is a real server's address:port, its port defaulting to the
// service's.
func realAddr(r config.Real, svcPort int) netip.AddrPort {
	a, _ := netip.ParseAddr(r.Address)
	p := r.Port
	if p == 0 {
		p = svcPort
	}
	return netip.AddrPortFrom(a, uint16(p))
}

// loadOverlay reads the runtime changes kept under dir (none if absent).
func loadOverlay(dir string) (*Overlay, error) {
	ov := &Overlay{}
	if _, err := statefile.Load(filepath.Join(dir, overlayFile), ov); err != nil {
		return nil, fmt.Errorf("daemon: runtime changes: %w", err)
	}
	return ov, nil
}

// saveOverlay persists the runtime changes atomically.
func saveOverlay(dir string, ov *Overlay) error {
	if err := statefile.Save(filepath.Join(dir, overlayFile), ov); err != nil {
		return fmt.Errorf("daemon: save runtime changes: %w", err)
	}
	return nil
}
