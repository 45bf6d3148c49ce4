package acl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
)

// Manager keeps the kernel's allow-lists equal to the desired ones. It is
// safe for concurrent use; operations are serialised.
type Manager struct {
	mu      sync.Mutex
	k       kernel
	opts    Options
	names   namer
	log     *slog.Logger
	tenants map[string]Tenant // enforced, normalised, by name
	// dirty names tenants whose sets may not match their record after a
	// failed Apply; their next allow-list change is a full swap.
	dirty  map[string]bool
	closed bool
}

// New returns a Manager working in opts.NetNS. It changes nothing in the
// kernel; the first Apply adopts what an earlier run left behind (Adopt
// reads it back before that).
func New(opts Options) (*Manager, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	k, err := newLinuxKernel(opts)
	if err != nil {
		return nil, err
	}
	return newManager(opts, k), nil
}

func newManager(opts Options, k kernel) *Manager {
	return &Manager{
		k:       k,
		opts:    opts,
		names:   namer{setPrefix: opts.SetPrefix, chain: opts.Chain},
		log:     opts.Logger.With("component", "acl", "chain", opts.Chain),
		tenants: map[string]Tenant{},
		dirty:   map[string]bool{},
	}
}

// Close releases the Manager's namespace thread and netlink socket. It
// leaves every rule and set in place, so the ports stay fenced while lbd is
// stopped.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.k.close()
}

// lock takes the Manager's mutex for an operation, failing (and releasing
// it) if the Manager is closed. On success the caller must unlock.
func (m *Manager) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("acl: manager closed")
	}
	return nil
}

// Tenants returns the tenants currently enforced, sorted by name, with
// their allow-lists in canonical form. The daemon persists runtime changes
// from here.
func (m *Manager) Tenants() []Tenant {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Tenant, 0, len(m.tenants))
	for _, name := range slices.Sorted(maps.Keys(m.tenants)) {
		out = append(out, cloneTenant(m.tenants[name]))
	}
	return out
}

// Tenant returns one enforced tenant.
func (m *Manager) Tenant(name string) (Tenant, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tenants[name]
	return cloneTenant(t), ok
}

func cloneTenant(t Tenant) Tenant {
	t.Allow = slices.Clone(t.Allow)
	return t
}

// validate normalises the desired tenants and rejects clashes: duplicate
// names, two tenants on one VIP, port and protocol, or set names that
// collide after shortening.
func (m *Manager) validate(tenants []Tenant) (map[string]Tenant, error) {
	out := make(map[string]Tenant, len(tenants))
	services := map[serviceKey]string{}
	sets := map[string]string{}
	for _, t := range tenants {
		n, err := t.normalize()
		if err != nil {
			return nil, err
		}
		if _, dup := out[n.Name]; dup {
			return nil, fmt.Errorf("acl: tenant %s listed twice", n.Name)
		}
		if err := m.checkSize(n); err != nil {
			return nil, err
		}
		for _, f := range n.families() {
			set := m.names.setName(n.Name, f)
			if other, ok := sets[set]; ok {
				return nil, fmt.Errorf("acl: tenants %s and %s map to the same set %s", other, n.Name, set)
			}
			sets[set] = n.Name
		}
		key := serviceKey{vip: n.VIP, port: n.Port, proto: n.Protocol}
		if other, ok := services[key]; ok {
			return nil, fmt.Errorf("acl: tenants %s and %s both fence %s port %s/%d", other, n.Name, vipString(n.VIP), n.Protocol, n.Port)
		}
		services[key] = n.Name
		out[n.Name] = n
	}
	// A tenant without a VIP fences the port on every address, so it
	// clashes with any tenant on the same port and protocol.
	for key, name := range services {
		if key.vip.IsValid() {
			if other, ok := services[serviceKey{port: key.port, proto: key.proto}]; ok {
				return nil, fmt.Errorf("acl: tenants %s and %s both fence port %s/%d", other, name, key.proto, key.port)
			}
		}
	}
	return out, nil
}

// checkSize rejects a normalised tenant whose allow-list does not fit in
// its sets.
func (m *Manager) checkSize(t Tenant) error {
	for _, f := range t.families() {
		if n := len(setEntries(t.Allow, f)); n > int(m.opts.MaxElem) {
			return fmt.Errorf("acl: tenant %s: %d %s entries, more than the %d a set holds", t.Name, n, f, m.opts.MaxElem)
		}
	}
	return nil
}

func vipString(a netip.Addr) string {
	if !a.IsValid() {
		return "every address"
	}
	return a.String()
}

// applySetChange makes one set match c.want. On error the set still holds
// what it held before (for a new set: it does not exist).
func (m *Manager) applySetChange(ctx context.Context, c setChange) error {
	switch {
	case c.none():
		return nil
	case c.create:
		if err := m.k.createSet(ctx, c.set, c.family, m.opts.MaxElem); err != nil {
			return fmt.Errorf("create set %s: %w", c.set, err)
		}
		if err := m.k.addEntries(ctx, c.set, c.want); err != nil {
			m.dropSet(ctx, c.set)
			return fmt.Errorf("fill set %s: %w", c.set, err)
		}
		return nil
	case c.swap:
		tmp := m.names.tempName(c.set)
		err := m.k.createSet(ctx, tmp, c.family, m.opts.MaxElem)
		if errors.Is(err, errExist) {
			// Left over from an update that was interrupted.
			if derr := m.k.destroySet(ctx, tmp); derr != nil {
				return fmt.Errorf("clear leftover set %s: %w", tmp, derr)
			}
			err = m.k.createSet(ctx, tmp, c.family, m.opts.MaxElem)
		}
		if err != nil {
			return fmt.Errorf("create set %s: %w", tmp, err)
		}
		if err := m.k.addEntries(ctx, tmp, c.want); err != nil {
			m.dropSet(ctx, tmp)
			return fmt.Errorf("fill set %s: %w", tmp, err)
		}
		if err := m.k.swapSets(ctx, c.set, tmp); err != nil {
			m.dropSet(ctx, tmp)
			return fmt.Errorf("swap set %s with %s: %w", c.set, tmp, err)
		}
		m.dropSet(ctx, tmp)
		return nil
	default:
		if len(c.add) > 0 {
			if err := m.k.addEntries(ctx, c.set, c.add); err != nil {
				return fmt.Errorf("add %v to set %s: %w", c.add, c.set, err)
			}
		}
		if len(c.del) > 0 {
			if err := m.k.delEntries(ctx, c.set, c.del); err != nil {
				return fmt.Errorf("delete %v from set %s: %w", c.del, c.set, err)
			}
		}
		return nil
	}
}

// ownsSet reports whether the set is one this Manager made.
func (m *Manager) ownsSet(name string) bool {
	_, _, ok := m.names.ownSet(name)
	return ok
}

// dropSet destroys a set nothing refers to; failure only leaves an orphan
// that the next Apply removes, so it is logged, not returned.
func (m *Manager) dropSet(ctx context.Context, name string) {
	if err := m.k.destroySet(ctx, name); err != nil {
		m.log.Warn("acl: destroy set", "set", name, "err", err)
	}
}
