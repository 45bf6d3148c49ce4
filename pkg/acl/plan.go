package acl

import (
	"net/netip"
	"slices"
)

// setChange is what one set needs to match the desired list.
type setChange struct {
	set    string
	family family
	// create: the set does not exist; make it and fill it with want.
	create bool
	// swap: build want in a temporary set and swap it in.
	swap bool
	// add and del are a change small enough to make in place, which is
	// atomic only for a single entry.
	add, del []netip.Prefix
	want     []netip.Prefix
}

func (c setChange) none() bool {
	return !c.create && !c.swap && len(c.add) == 0 && len(c.del) == 0
}

// diffSet plans how to turn have into want. Only a one-entry difference is
// made in place; anything larger is swapped so that no packet ever sees a
// half-applied list.
func diffSet(set string, f family, want, have []netip.Prefix, exists bool) setChange {
	c := setChange{set: set, family: f, want: want}
	if !exists {
		c.create = true
		return c
	}
	add, del := diffPrefixes(want, have)
	if len(add)+len(del) > 1 {
		c.swap = true
		return c
	}
	c.add, c.del = add, del
	return c
}

// diffPrefixes returns what is in want but not have, and in have but not
// want. Both inputs must be sorted and free of duplicates.
func diffPrefixes(want, have []netip.Prefix) (add, del []netip.Prefix) {
	i, j := 0, 0
	for i < len(want) && j < len(have) {
		switch c := comparePrefix(want[i], have[j]); {
		case c < 0:
			add = append(add, want[i])
			i++
		case c > 0:
			del = append(del, have[j])
			j++
		default:
			i++
			j++
		}
	}
	add = append(add, want[i:]...)
	del = append(del, have[j:]...)
	return add, del
}

// observedChain is lbd's chain in one family as listed.
type observedChain struct {
	exists bool
	rules  []listedRule
	jump   bool // INPUT jumps to the chain
}

// planRules plans one family's rule changes. want holds the rules of the
// tenants that should be fenced; keep names tenants whose existing rules
// must stay untouched whatever they are (their set update failed, so the
// old rule keeps enforcing the old list).
func planRules(chain string, obs observedChain, want []rule, keep map[string]bool) rulePlan {
	p := rulePlan{createChain: !obs.exists, addJump: !obs.jump}
	wanted := make(map[string]bool, len(want)) // by fingerprint
	for _, r := range want {
		wanted[r.fp] = true
	}
	present := make(map[string]bool, len(obs.rules))
	for _, r := range obs.rules {
		tenant, fp, ok := parseComment(r.comment)
		switch {
		case ok && keep[tenant]:
		case ok && wanted[fp] && !present[fp]:
			present[fp] = true
		default:
			p.del = append(p.del, r.line)
		}
	}
	for _, r := range want {
		if !present[r.fp] && !keep[r.tenant] {
			p.add = append(p.add, r)
			present[r.fp] = true
		}
	}
	slices.SortFunc(p.add, func(a, b rule) int {
		if a.tenant < b.tenant {
			return -1
		}
		if a.tenant > b.tenant {
			return 1
		}
		return 0
	})
	return p
}
