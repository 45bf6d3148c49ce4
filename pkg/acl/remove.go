package acl

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Remove stops fencing one tenant: its rules are deleted in one commit per
// family, then its sets are destroyed. This opens the port, so the caller
// must withdraw the service (from IPVS) first.
func (m *Manager) Remove(ctx context.Context, tenant string) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	t, ok := m.tenants[tenant]
	if !ok {
		return fmt.Errorf("acl: remove %s: %w", tenant, ErrUnknownTenant)
	}
	for _, f := range t.families() {
		rules, _, err := m.listChain(ctx, f, false)
		if err != nil {
			return fmt.Errorf("acl: remove %s: %s: %w", tenant, f, err)
		}
		var p rulePlan
		for _, r := range rules {
			if name, _, ok := parseComment(r.comment); ok && name == tenant {
				p.del = append(p.del, r.line)
			}
		}
		if len(p.del) > 0 {
			if err := m.k.restore(ctx, f, p.render(m.opts.Chain)); err != nil {
				return fmt.Errorf("acl: remove %s: delete %s rule: %w", tenant, f, err)
			}
		}
	}
	for _, f := range t.families() {
		set := m.names.setName(tenant, f)
		if err := m.k.destroySet(ctx, set); err != nil {
			m.log.Warn("acl: destroy set of removed tenant", "tenant", tenant, "set", set, "err", err)
		}
	}
	delete(m.tenants, tenant)
	delete(m.dirty, tenant)
	m.log.Info("acl: tenant removed", "tenant", tenant)
	return nil
}

// Purge removes everything this Manager's chain and set prefix own: the
// jumps from INPUT, the chain and every set. It is for uninstalling; it
// opens every tenant port. Rules and sets of others are not touched.
func (m *Manager) Purge(ctx context.Context) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	var errs []error
	for _, f := range []family{v4, v6} {
		obs, err := m.observeChain(ctx, f, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("acl: purge %s: %w", f, err))
			continue
		}
		if !obs.exists {
			continue
		}
		var b strings.Builder
		b.WriteString("*filter\n")
		for _, l := range obs.jumpLines {
			b.WriteString("-D" + strings.TrimPrefix(l, "-A") + "\n")
		}
		fmt.Fprintf(&b, "-F %s\n-X %s\nCOMMIT\n", m.opts.Chain, m.opts.Chain)
		if err := m.k.restore(ctx, f, []byte(b.String())); err != nil {
			errs = append(errs, fmt.Errorf("acl: purge %s chain %s: %w", f, m.opts.Chain, err))
		}
	}
	sets, err := m.k.listSets(ctx, m.ownsSet)
	if err != nil {
		errs = append(errs, fmt.Errorf("acl: purge: list sets: %w", err))
	}
	for _, s := range sets {
		if err := m.k.destroySet(ctx, s.name); err != nil {
			errs = append(errs, fmt.Errorf("acl: purge: destroy set %s: %w", s.name, err))
		}
	}
	if len(errs) == 0 {
		m.tenants = map[string]Tenant{}
		m.dirty = map[string]bool{}
		m.log.Warn("acl: purged all rules and sets; tenant ports are open")
	}
	return errors.Join(errs...)
}
