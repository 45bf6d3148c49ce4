package daemon

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
)

// diffConfigs tells what replacing the desired state cur (with its runtime
// overlay ov) by next changes, in the order an operator reads it: nodes,
// vrrp, then each service with its reals and allow-list, then tenants' stores.
func diffConfigs(cur *config.Config, ov *Overlay, next *config.Config) api.Diff {
	var d api.Diff
	add := func(op, kind, name, detail string) {
		d.Changes = append(d.Changes, api.Change{Op: op, Kind: kind, Name: name, Detail: detail})
	}
	diffNamed(cur.Nodes, next.Nodes, func(n config.Node) string { return n.Name }, func(op string, a, b config.Node) {
		switch op {
		case "add":
			add("add", "node", b.Name, fmt.Sprintf("%s %s", b.Role, b.Address))
		case "del":
			add("del", "node", a.Name, "")
		default:
			if a != b {
				add("change", "node", a.Name, fmt.Sprintf("%+v -> %+v", a, b))
			}
		}
	})
	if !reflect.DeepEqual(cur.VRRP, next.VRRP) {
		add("change", "vrrp", "vrrp", "")
	}
	curSvcs := effectiveServices(cur.Services(), nil, ov)
	diffNamed(curSvcs, next.Services(), func(s config.ResolvedService) string { return s.Name }, func(op string, a, b config.ResolvedService) {
		switch op {
		case "add":
			add("add", kindOf(b), b.Name, fmt.Sprintf("%s %s:%d %s %s, %d reals", b.Protocol, b.VIP, b.Port, b.Scheduler, b.Forward, len(b.Reals)))
		case "del":
			add("del", kindOf(a), a.Name, "port closed first, reals drained")
		default:
			diffService(a, b, add)
		}
	})
	diffNamed(cur.Tenants, next.Tenants, func(t config.Tenant) string { return t.Name }, func(op string, a, b config.Tenant) {
		if op == "change" && a.KVS != b.KVS {
			add("change", "kvs", a.Name, fmt.Sprintf("%s %s -> %s %s", a.KVS.Storage, a.KVS.Memory, b.KVS.Storage, b.KVS.Memory))
		}
	})
	return d
}

// kindOf names a service in a diff: a tenant's or a plain one.
func kindOf(s config.ResolvedService) string {
	if s.Tenant != "" {
		return "tenant"
	}
	return "service"
}

// diffService reports the changes within one service.
func diffService(a, b config.ResolvedService, add func(op, kind, name, detail string)) {
	if a.Scheduler != b.Scheduler || a.Forward != b.Forward || a.Persistence != b.Persistence ||
		!slices.Equal(a.SchedulerFlags, b.SchedulerFlags) {
		add("change", "service", a.Name, fmt.Sprintf("%s%v %s %v -> %s%v %s %v",
			a.Scheduler, a.SchedulerFlags, a.Forward, a.Persistence, b.Scheduler, b.SchedulerFlags, b.Forward, b.Persistence))
	}
	if !reflect.DeepEqual(a.Sorry, b.Sorry) || a.SorryInhibit != b.SorryInhibit || a.Quorum != b.Quorum ||
		a.Hysteresis != b.Hysteresis || a.QuorumUp != b.QuorumUp || a.QuorumDown != b.QuorumDown {
		add("change", "quorum", a.Name, fmt.Sprintf("quorum %d±%d, sorry server %s -> quorum %d±%d, sorry server %s",
			a.Quorum, a.Hysteresis, sorryName(a.Sorry), b.Quorum, b.Hysteresis, sorryName(b.Sorry)))
	}
	if !reflect.DeepEqual(a.Health, b.Health) {
		add("change", "health", a.Name, fmt.Sprintf("%s -> %s", a.Health.Type, b.Health.Type))
	}
	key := func(r config.ResolvedReal) string { return netip.AddrPortFrom(r.Addr, r.Port).String() }
	diffNamed(a.Reals, b.Reals, key, func(op string, x, y config.ResolvedReal) {
		switch op {
		case "add":
			add("add", "real", a.Name+" "+key(y), fmt.Sprintf("weight %d", y.Weight))
		case "del":
			add("del", "real", a.Name+" "+key(x), "drained, then removed")
		default:
			if x.Weight != y.Weight {
				add("change", "real", a.Name+" "+key(x), fmt.Sprintf("weight %d -> %d", x.Weight, y.Weight))
			}
		}
	})
	for _, p := range b.Allow {
		if !slices.Contains(a.Allow, p) {
			add("add", "allow", a.Name, p.String())
		}
	}
	for _, p := range a.Allow {
		if !slices.Contains(b.Allow, p) {
			add("del", "allow", a.Name, p.String())
		}
	}
}

// diffNamed pairs the elements of a and b by name and calls f with op
// "del" (only in a), "add" (only in b) or "change" (in both), in a's then
// b's order.
func diffNamed[T any](a, b []T, name func(T) string, f func(op string, x, y T)) {
	inB := make(map[string]int, len(b))
	for i, y := range b {
		inB[name(y)] = i
	}
	inA := make(map[string]bool, len(a))
	var zero T
	for _, x := range a {
		inA[name(x)] = true
		if j, ok := inB[name(x)]; ok {
			f("change", x, b[j])
		} else {
			f("del", x, zero)
		}
	}
	for _, y := range b {
		if !inA[name(y)] {
			f("add", zero, y)
		}
	}
}

// sorryName names a sorry server in a diff.
func sorryName(r *config.ResolvedReal) string {
	if r == nil {
		return "none"
	}
	return netip.AddrPortFrom(r.Addr, r.Port).String()
}
