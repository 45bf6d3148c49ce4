package acl

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
)

// SetAllow replaces tenant's allow-list. Only the tenant's sets change,
// never a rule: a one-entry difference is one kernel operation, anything
// larger is built in a temporary set and swapped in, so every packet sees
// either the old list or the new one. On error the old list is enforced.
// An empty list lets nobody in.
func (m *Manager) SetAllow(ctx context.Context, tenant string, allow []netip.Prefix) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	cur, ok := m.tenants[tenant]
	if !ok {
		return fmt.Errorf("acl: set allow-list of %s: %w", tenant, ErrUnknownTenant)
	}
	return m.changeAllow(ctx, cur, allow)
}

// AddAllow adds sources to tenant's allow-list (see SetAllow). Adding an
// entry that is already there changes nothing.
func (m *Manager) AddAllow(ctx context.Context, tenant string, allow []netip.Prefix) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	cur, ok := m.tenants[tenant]
	if !ok {
		return fmt.Errorf("acl: add to allow-list of %s: %w", tenant, ErrUnknownTenant)
	}
	return m.changeAllow(ctx, cur, append(slices.Clone(cur.Allow), allow...))
}

// RemoveAllow removes sources from tenant's allow-list (see SetAllow).
// Entries are compared after normalisation; absent ones are ignored.
func (m *Manager) RemoveAllow(ctx context.Context, tenant string, allow []netip.Prefix) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	cur, ok := m.tenants[tenant]
	if !ok {
		return fmt.Errorf("acl: remove from allow-list of %s: %w", tenant, ErrUnknownTenant)
	}
	drop, err := normalizeAllow(allow)
	if err != nil {
		return fmt.Errorf("acl: tenant %s: %w", tenant, err)
	}
	next := slices.DeleteFunc(slices.Clone(cur.Allow), func(p netip.Prefix) bool {
		_, found := slices.BinarySearchFunc(drop, p, comparePrefix)
		return found
	})
	return m.changeAllow(ctx, cur, next)
}

// changeAllow moves cur's sets to allow, family by family, putting back
// the families already changed if a later one fails.
func (m *Manager) changeAllow(ctx context.Context, cur Tenant, allow []netip.Prefix) error {
	next := cur
	next.Allow = allow
	next, err := next.normalize()
	if err != nil {
		return err
	}
	if err := m.checkSize(next); err != nil {
		return err
	}
	var done []family
	for _, f := range next.families() {
		set := m.names.setName(cur.Name, f)
		c := diffSet(set, f, setEntries(next.Allow, f), setEntries(cur.Allow, f), true)
		if m.dirty[cur.Name] {
			c = setChange{set: set, family: f, swap: true, want: c.want}
		}
		if c.none() {
			continue
		}
		if err := m.applySetChange(ctx, c); err != nil {
			for _, pf := range done {
				pset := m.names.setName(cur.Name, pf)
				back := diffSet(pset, pf, setEntries(cur.Allow, pf), setEntries(next.Allow, pf), true)
				if rerr := m.applySetChange(ctx, back); rerr != nil {
					m.log.Error("acl: could not restore allow-list after failed update",
						"tenant", cur.Name, "set", pset, "err", rerr)
				}
			}
			return fmt.Errorf("acl: tenant %s: %w", cur.Name, err)
		}
		done = append(done, f)
		m.log.Info("acl: allow-list changed", "tenant", cur.Name, "set", set, "entries", len(c.want),
			"swapped", c.swap, "added", len(c.add), "deleted", len(c.del))
	}
	m.tenants[cur.Name] = next
	delete(m.dirty, cur.Name)
	return nil
}
