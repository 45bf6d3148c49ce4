package acl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Apply makes the kernel fence exactly the given tenants, adopting what is
// already there: sets whose content is right are left alone, changed lists
// are swapped in whole, rules are added and removed in one iptables-restore
// commit per family, and sets of tenants no longer listed (or left over by
// an interrupted update) are destroyed after their rules are gone.
//
// A tenant is fenced when Apply returns nil; only then may its service be
// announced. Invalid input changes nothing. A kernel failure is reported as
// TenantErrors (see FailedTenants) and leaves each failed tenant as it was,
// while the other tenants are still brought up to date.
func (m *Manager) Apply(ctx context.Context, tenants []Tenant) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()

	desired, err := m.validate(tenants)
	if err != nil {
		return err
	}
	own, err := m.ownSets(ctx)
	if err != nil {
		return fmt.Errorf("acl: %w", err)
	}

	failed := map[string]error{}
	names := slices.Sorted(maps.Keys(desired))

	// Sets first: a rule can only refer to a set that exists and is full.
	for _, name := range names {
		t := desired[name]
		for _, f := range t.families() {
			set := m.names.setName(name, f)
			have, exists := own[set]
			if exists && (have.typ != setType || have.family != f) {
				failed[name] = fmt.Errorf("set %s exists as %s %s, want %s %s; remove it by hand", set, have.typ, have.family, setType, f)
				break
			}
			c := diffSet(set, f, setEntries(t.Allow, f), have.entries, exists)
			if c.none() {
				continue
			}
			if err := m.applySetChange(ctx, c); err != nil {
				failed[name] = err
				break
			}
			m.log.Info("acl: set updated", "tenant", name, "set", set, "entries", len(c.want),
				"created", c.create, "swapped", c.swap, "added", len(c.add), "deleted", len(c.del))
		}
	}

	// Then the rules, one atomic commit per family.
	keep := map[string]bool{}
	for name := range failed {
		keep[name] = true
	}
	familyFailed := map[family]bool{}
	for _, f := range []family{v4, v6} {
		var want []rule
		for _, name := range names {
			t := desired[name]
			if failed[name] != nil || !slices.Contains(t.families(), f) {
				continue
			}
			want = append(want, tenantRule(m.opts.Chain, t, f, m.names.setName(name, f), m.opts.Action))
		}
		plan, err := m.planFamily(ctx, f, want, keep)
		if err == nil && !plan.empty() {
			err = m.k.restore(ctx, f, plan.render(m.opts.Chain))
		}
		if err != nil {
			familyFailed[f] = true
			for _, name := range names {
				if failed[name] == nil && slices.Contains(desired[name].families(), f) {
					failed[name] = fmt.Errorf("%s rules: %w", f, err)
				}
			}
			continue
		}
		if !plan.empty() {
			m.log.Info("acl: rules committed", "family", f.String(), "added", len(plan.add),
				"deleted", len(plan.del), "chain_created", plan.createChain, "jump_added", plan.addJump)
		}
	}

	// Last, sets nothing needs any more: tenants gone, interrupted updates.
	wantSets := map[string]bool{}
	for _, t := range desired {
		for _, f := range t.families() {
			wantSets[m.names.setName(t.Name, f)] = true
		}
	}
	for _, set := range slices.Sorted(maps.Keys(own)) {
		if f, _, _ := m.names.ownSet(set); wantSets[set] || familyFailed[f] {
			continue
		}
		m.log.Info("acl: removing set no tenant uses", "set", set)
		m.dropSet(ctx, set)
	}

	// Record what is now enforced. A failed tenant keeps its old record,
	// but its sets may already hold part of the new state, so its next
	// allow-list change rewrites them whole (see changeAllow).
	for _, name := range names {
		if failed[name] == nil {
			m.tenants[name] = desired[name]
			delete(m.dirty, name)
		} else if _, ok := m.tenants[name]; ok {
			m.dirty[name] = true
		}
	}
	for name, t := range m.tenants {
		if _, ok := desired[name]; ok {
			continue
		}
		gone := true
		for _, f := range t.families() {
			gone = gone && !familyFailed[f]
		}
		if gone {
			delete(m.tenants, name)
			delete(m.dirty, name)
		}
	}

	var errs []error
	for _, name := range slices.Sorted(maps.Keys(failed)) {
		m.log.Error("acl: tenant not updated", "tenant", name, "err", failed[name])
		errs = append(errs, &TenantError{Tenant: name, Err: failed[name]})
	}
	return errors.Join(errs...)
}

// planFamily lists lbd's chain and INPUT in one family and plans the
// commit that turns them into want.
func (m *Manager) planFamily(ctx context.Context, f family, want []rule, keep map[string]bool) (rulePlan, error) {
	obs, err := m.observeChain(ctx, f, false)
	if err != nil {
		return rulePlan{}, err
	}
	if !obs.exists && len(want) == 0 {
		// Nothing to fence in this family: do not touch its tables.
		return rulePlan{}, nil
	}
	if obs.jump && !obs.jumpFirst {
		m.log.Warn("acl: rules above lbd's jump in INPUT see tenant traffic first", "family", f.String())
	}
	return planRules(m.opts.Chain, obs.observedChain, want, keep), nil
}

// chainView is observedChain plus where the jump sits.
type chainView struct {
	observedChain
	jumpFirst bool
	jumpLines []string
}

// ownSets lists lbd's sets in the kernel, by name.
func (m *Manager) ownSets(ctx context.Context) (map[string]setInfo, error) {
	all, err := m.k.listSets(ctx, m.ownsSet)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	own := make(map[string]setInfo, len(all))
	for _, s := range all {
		own[s.name] = s
	}
	return own, nil
}

// listChain lists the rules of lbd's chain in family f; exists is false
// when the chain does not exist.
func (m *Manager) listChain(ctx context.Context, f family, counters bool) (rules []listedRule, exists bool, err error) {
	lines, exists, err := m.k.listRules(ctx, f, m.opts.Chain, counters)
	if err != nil {
		return nil, false, fmt.Errorf("list chain %s: %w", m.opts.Chain, err)
	}
	for _, l := range lines {
		r, ok, err := parseRuleLine(l)
		if err != nil {
			return nil, false, err
		}
		if ok && r.chain == m.opts.Chain {
			rules = append(rules, r)
		}
	}
	return rules, exists, nil
}

// observeChain lists lbd's chain and, if the chain exists, INPUT in
// family f.
func (m *Manager) observeChain(ctx context.Context, f family, counters bool) (chainView, error) {
	var v chainView
	var err error
	v.rules, v.exists, err = m.listChain(ctx, f, counters)
	if err != nil || !v.exists {
		return v, err
	}
	input, _, err := m.k.listRules(ctx, f, "INPUT", false)
	if err != nil {
		return v, fmt.Errorf("list chain INPUT: %w", err)
	}
	first := true
	for _, l := range input {
		r, ok, err := parseRuleLine(l)
		if err != nil {
			return v, err
		}
		if !ok || r.chain != "INPUT" {
			continue
		}
		if r.target == m.opts.Chain {
			v.jump = true
			v.jumpFirst = v.jumpFirst || first
			v.jumpLines = append(v.jumpLines, r.line)
		}
		first = false
	}
	return v, nil
}
