package acl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// fakeKernel is an in-memory kernel: sets, and a filter table per family
// that understands the iptables-restore input the Manager writes.
type fakeKernel struct {
	sets   map[string]*setInfo
	chains map[family]map[string][]string // chain -> "-A chain ..." lines
	ops    []string                       // every write, for assertions
	fail   map[string]error               // op key -> error to return
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{
		sets: map[string]*setInfo{},
		chains: map[family]map[string][]string{
			v4: {"INPUT": nil, "FORWARD": nil, "OUTPUT": nil},
			v6: {"INPUT": nil, "FORWARD": nil, "OUTPUT": nil},
		},
		fail: map[string]error{},
	}
}

func (k *fakeKernel) check(key string) error {
	if err, ok := k.fail[key]; ok {
		return err
	}
	return nil
}

func (k *fakeKernel) writes() []string { return slices.Clone(k.ops) }

func (k *fakeKernel) listSets(ctx context.Context, keep func(string) bool) ([]setInfo, error) {
	if err := k.check("listSets"); err != nil {
		return nil, err
	}
	var out []setInfo
	for _, name := range sortedKeys(k.sets) {
		if !keep(name) {
			continue
		}
		s := *k.sets[name]
		s.entries = slices.Clone(s.entries)
		out = append(out, s)
	}
	return out, nil
}

func (k *fakeKernel) setSizes(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for name, s := range k.sets {
		out[name] = len(s.entries)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (k *fakeKernel) createSet(ctx context.Context, name string, f family, maxElem uint32) error {
	if err := k.check("create " + name); err != nil {
		return err
	}
	if _, ok := k.sets[name]; ok {
		return fmt.Errorf("set %s: %w", name, errExist)
	}
	k.ops = append(k.ops, "create "+name)
	k.sets[name] = &setInfo{name: name, family: f, typ: setType}
	return nil
}

func (k *fakeKernel) addEntries(ctx context.Context, set string, entries []netip.Prefix) error {
	s, ok := k.sets[set]
	if !ok {
		return fmt.Errorf("no set %s", set)
	}
	for _, p := range entries {
		if err := k.check("add " + set); err != nil {
			return err
		}
		if familyOf(p.Addr()) != s.family {
			return fmt.Errorf("family mismatch %s in %s", p, set)
		}
		k.ops = append(k.ops, "add "+set+" "+p.String())
		if !slices.Contains(s.entries, p) {
			s.entries = append(s.entries, p)
			sortPrefixes(s.entries)
		}
	}
	return nil
}

func (k *fakeKernel) delEntries(ctx context.Context, set string, entries []netip.Prefix) error {
	s, ok := k.sets[set]
	if !ok {
		return fmt.Errorf("no set %s", set)
	}
	for _, p := range entries {
		if err := k.check("del " + set); err != nil {
			return err
		}
		k.ops = append(k.ops, "del "+set+" "+p.String())
		s.entries = slices.DeleteFunc(s.entries, func(q netip.Prefix) bool { return q == p })
	}
	return nil
}

func (k *fakeKernel) swapSets(ctx context.Context, a, b string) error {
	if err := k.check("swap " + a); err != nil {
		return err
	}
	sa, sb := k.sets[a], k.sets[b]
	if sa == nil || sb == nil || sa.family != sb.family || sa.typ != sb.typ {
		return fmt.Errorf("cannot swap %s and %s", a, b)
	}
	k.ops = append(k.ops, "swap "+a+" "+b)
	sa.entries, sb.entries = sb.entries, sa.entries
	return nil
}

func (k *fakeKernel) referenced(name string) bool {
	for _, chains := range k.chains {
		for _, lines := range chains {
			for _, l := range lines {
				if strings.Contains(l, " --match-set "+name+" ") {
					return true
				}
			}
		}
	}
	return false
}

func (k *fakeKernel) destroySet(ctx context.Context, name string) error {
	if err := k.check("destroy " + name); err != nil {
		return err
	}
	if _, ok := k.sets[name]; !ok {
		return fmt.Errorf("no set %s", name)
	}
	if k.referenced(name) {
		return fmt.Errorf("set %s in use", name)
	}
	k.ops = append(k.ops, "destroy "+name)
	delete(k.sets, name)
	return nil
}

func (k *fakeKernel) listRules(ctx context.Context, f family, chain string, counters bool) ([]string, bool, error) {
	lines, ok := k.chains[f][chain]
	if !ok {
		return nil, false, nil
	}
	out := []string{"-N " + chain}
	if chain == "INPUT" {
		out = []string{"-P INPUT ACCEPT"}
	}
	for _, l := range lines {
		if counters {
			i := strings.LastIndex(l, " -j ")
			l = l[:i] + " -c 7 420" + l[i:]
		}
		out = append(out, l)
	}
	return out, true, nil
}

// restore applies iptables-restore --noflush input to a copy of the
// family's table and keeps it only if every line worked.
func (k *fakeKernel) restore(ctx context.Context, f family, input []byte) error {
	if err := k.check(fmt.Sprintf("restore %d", f)); err != nil {
		return err
	}
	table := map[string][]string{}
	for c, l := range k.chains[f] {
		table[c] = slices.Clone(l)
	}
	committed := false
	for _, line := range strings.Split(strings.TrimSpace(string(input)), "\n") {
		toks := strings.Fields(line)
		switch {
		case line == "*filter":
		case line == "COMMIT":
			committed = true
		case strings.HasPrefix(line, ":"):
			table[strings.TrimPrefix(toks[0], ":")] = nil
		case toks[0] == "-A":
			if _, ok := table[toks[1]]; !ok {
				return fmt.Errorf("no chain %s", toks[1])
			}
			if err := k.checkSetRef(line); err != nil {
				return err
			}
			table[toks[1]] = append(table[toks[1]], line)
		case toks[0] == "-I":
			rest := strings.Join(toks[3:], " ")
			if _, ok := table[toks[len(toks)-1]]; !ok {
				return fmt.Errorf("no chain %s", toks[len(toks)-1])
			}
			table[toks[1]] = append([]string{"-A " + toks[1] + " " + rest}, table[toks[1]]...)
		case toks[0] == "-D":
			want := "-A" + strings.TrimPrefix(line, "-D")
			i := slices.Index(table[toks[1]], want)
			if i < 0 {
				return fmt.Errorf("delete: no rule %q", want)
			}
			table[toks[1]] = slices.Delete(table[toks[1]], i, i+1)
		case toks[0] == "-F":
			table[toks[1]] = nil
		case toks[0] == "-X":
			delete(table, toks[1])
		default:
			return fmt.Errorf("fake restore: cannot parse %q", line)
		}
	}
	if !committed {
		return errors.New("no COMMIT")
	}
	k.chains[f] = table
	k.ops = append(k.ops, fmt.Sprintf("restore %d", f))
	return nil
}

func (k *fakeKernel) checkSetRef(line string) error {
	_, rest, ok := strings.Cut(line, "--match-set ")
	if !ok {
		return nil
	}
	name := strings.Fields(rest)[0]
	if _, ok := k.sets[name]; !ok {
		return fmt.Errorf("set %s does not exist", name)
	}
	return nil
}

func (k *fakeKernel) close() error { return nil }
