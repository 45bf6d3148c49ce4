package acl

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
)

// Adopt records as enforced the fences an earlier run left in the kernel,
// so that Tenants and Tenant report them before the first Apply. A caller
// that must keep fencing what was fenced before (a service that is still
// draining after its tenant left) learns it this way after a restart; the
// kernel is the record, so nothing is lost between a commit and a crash.
//
// Adopt only reads. A fence is adopted when it is exactly one Apply
// writes: the tenant's rule in every family it serves (with either
// action, so a changed Options.Action still counts), matching the tenant's
// own set, whose entries are its allow-list. Anything else in lbd's chain
// is left for the next Apply to remove. Whether INPUT jumps to the chain is
// not checked: Apply restores the jump. Tenants already recorded are kept
// as they are.
func (m *Manager) Adopt(ctx context.Context) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	found, err := m.readFences(ctx)
	if err != nil {
		return fmt.Errorf("acl: adopt: %w", err)
	}
	adopted := 0
	for _, name := range slices.Sorted(maps.Keys(found)) {
		if _, known := m.tenants[name]; known {
			continue
		}
		t, ok := mergeFamilies(found[name])
		if !ok {
			m.log.Warn("acl: adopt: tenant's rules do not form one fence; not adopted", "tenant", name)
			continue
		}
		m.tenants[name] = t
		delete(m.dirty, name)
		adopted++
		m.log.Debug("acl: adopted fence", "tenant", name, "vip", vipString(t.VIP),
			"port", t.Port, "protocol", string(t.Protocol), "entries", len(t.Allow))
	}
	m.log.Info("acl: adopted the fences an earlier run left", "tenants", adopted)
	return nil
}

// readFences lists lbd's sets and chain in both families and returns the
// fences found there (see fenceOf), by tenant and family.
func (m *Manager) readFences(ctx context.Context) (map[string]map[family]Tenant, error) {
	sets, err := m.ownSets(ctx)
	if err != nil {
		return nil, err
	}
	found := map[string]map[family]Tenant{}
	for _, f := range []family{v4, v6} {
		rules, _, err := m.listChain(ctx, f, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, r := range rules {
			t, ok := m.fenceOf(r, f, sets)
			if !ok {
				continue
			}
			if found[t.Name] == nil {
				found[t.Name] = map[family]Tenant{}
			}
			if _, dup := found[t.Name][f]; dup {
				m.log.Warn("acl: adopt: tenant has two rules; keeping the first", "tenant", t.Name, "family", f.String())
				continue
			}
			found[t.Name][f] = t
		}
	}
	return found, nil
}

// fenceOf reads back the tenant a listed rule of family f fences, with
// the entries of its set as allow-list. ok is false unless the rule is
// exactly the one tenantRule builds for that tenant and set.
func (m *Manager) fenceOf(r listedRule, f family, sets map[string]setInfo) (Tenant, bool) {
	name, fp, ok := parseComment(r.comment)
	if !ok {
		return Tenant{}, false
	}
	toks, err := splitSaveLine(r.line)
	if err != nil {
		return Tenant{}, false
	}
	t := Tenant{Name: name}
	var set string
	for i := 0; i+1 < len(toks); i++ {
		switch arg := toks[i+1]; toks[i] {
		case "-d":
			p, err := netip.ParsePrefix(arg)
			if err != nil || p.Bits() != p.Addr().BitLen() {
				return Tenant{}, false
			}
			t.VIP = p.Addr()
		case "-p":
			t.Protocol = Protocol(arg)
		case "--dport":
			port, err := strconv.ParseUint(arg, 10, 16)
			if err != nil {
				return Tenant{}, false
			}
			t.Port = uint16(port)
		case "--match-set":
			set = arg
		}
	}
	s, ok := sets[set]
	if !ok || set != m.names.setName(name, f) || s.typ != setType || s.family != f {
		return Tenant{}, false
	}
	t.Allow = everyoneOf(s.entries, f)
	n, err := t.normalize()
	if err != nil || n.VIP.IsValid() && familyOf(n.VIP) != f {
		return Tenant{}, false
	}
	for _, a := range []Action{Drop, Reject} {
		if tenantRule(m.opts.Chain, n, f, set, a).fp == fp {
			return n, true
		}
	}
	return Tenant{}, false
}

// mergeFamilies joins the per-family fences of one tenant read back by
// fenceOf: a tenant with a VIP has one, a tenant on every address has one
// per family, on the same port and protocol, and its allow-list is both
// sets'. ok is false for any other combination (a crash between the two
// families' commits, or rules edited by hand).
func mergeFamilies(byFam map[family]Tenant) (Tenant, bool) {
	t4, ok4 := byFam[v4]
	t6, ok6 := byFam[v6]
	switch {
	case ok4 && !ok6 && t4.VIP.IsValid():
		return t4, true
	case ok6 && !ok4 && t6.VIP.IsValid():
		return t6, true
	case ok4 && ok6 && !t4.VIP.IsValid() && !t6.VIP.IsValid() && t4.Port == t6.Port && t4.Protocol == t6.Protocol:
		t := t4
		t.Allow = append(slices.Clone(t4.Allow), t6.Allow...)
		sortPrefixes(t.Allow)
		return t, true
	}
	return Tenant{}, false
}

// everyoneOf undoes setEntries' split of "everyone", which hash:net cannot
// hold, into two halves: a set of family f holding both reads back as the
// /0 the allow-list had.
func everyoneOf(entries []netip.Prefix, f family) []netip.Prefix {
	halves := setEntries([]netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0)}, v4)
	if f == v6 {
		halves = setEntries([]netip.Prefix{netip.PrefixFrom(netip.IPv6Unspecified(), 0)}, v6)
	}
	if !slices.Contains(entries, halves[0]) || !slices.Contains(entries, halves[1]) {
		return entries
	}
	out := slices.DeleteFunc(slices.Clone(entries), func(p netip.Prefix) bool { return slices.Contains(halves, p) })
	return append(out, netip.PrefixFrom(halves[0].Addr(), 0))
}
