package acl

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// State describes what the kernel enforces for one tenant in one family,
// read back from the kernel (for metrics and "lbctl acl").
type State struct {
	Tenant string
	// Family is 4 or 6.
	Family int
	// Set is the ipset holding the allow-list.
	Set string
	// Entries is the number of entries in the set.
	Entries int
	// Enforced is true when the set exists, the tenant's current rule is
	// in the chain and INPUT jumps to the chain.
	Enforced bool
	// Packets and Bytes count what the rule dropped or rejected since it
	// was created.
	Packets, Bytes uint64
}

// State reads back, for every tenant the Manager fences, its sets and rule
// counters: one set dump and one rule listing per family.
func (m *Manager) State(ctx context.Context) ([]State, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	size, err := m.k.setSizes(ctx)
	if err != nil {
		return nil, fmt.Errorf("acl: state: list sets: %w", err)
	}
	views := map[family]chainView{}
	for _, f := range []family{v4, v6} {
		used := false
		for _, t := range m.tenants {
			used = used || slices.Contains(t.families(), f)
		}
		if !used {
			continue
		}
		v, err := m.observeChain(ctx, f, true)
		if err != nil {
			return nil, fmt.Errorf("acl: state: %s: %w", f, err)
		}
		views[f] = v
	}
	var out []State
	for _, name := range slices.Sorted(maps.Keys(m.tenants)) {
		t := m.tenants[name]
		for _, f := range t.families() {
			set := m.names.setName(name, f)
			want := tenantRule(m.opts.Chain, t, f, set, m.opts.Action)
			st := State{Tenant: name, Family: int(f), Set: set}
			n, haveSet := size[set]
			st.Entries = n
			v := views[f]
			for _, r := range v.rules {
				if _, fp, ok := parseComment(r.comment); ok && fp == want.fp {
					st.Enforced = haveSet && v.jump
					st.Packets, st.Bytes = r.packets, r.bytes
				}
			}
			out = append(out, st)
		}
	}
	return out, nil
}
