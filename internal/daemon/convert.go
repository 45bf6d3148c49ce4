package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"

	"github.com/lbd-project/lbd/pkg/acl"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/ipvs"
)

// toIPVS maps a resolved service to the kernel's view.
func toIPVS(s config.ResolvedService) ipvs.Service {
	proto := ipvs.TCP
	if s.Protocol == "udp" {
		proto = ipvs.UDP
	}
	fwd, err := ipvs.ParseForward(s.Forward)
	if err != nil {
		fwd = ipvs.DR // config validated it; unreachable
	}
	out := ipvs.Service{
		Addr: s.VIP, Port: s.Port, Protocol: proto, Scheduler: s.Scheduler, Persistence: s.Persistence,
		Dests: make([]ipvs.Dest, 0, len(s.Reals)),
	}
	for _, r := range s.Reals {
		out.Dests = append(out.Dests, ipvs.Dest{Addr: r.Addr, Port: r.Port, Weight: r.Weight, Forward: fwd})
	}
	return out
}

// aclTenants is the allow-list of every tenant service.
func aclTenants(eff []config.ResolvedService) []acl.Tenant {
	var out []acl.Tenant
	for _, s := range eff {
		if s.Tenant == "" {
			continue
		}
		out = append(out, acl.Tenant{
			Name: s.Fence(), VIP: s.VIP, Port: s.Port, Protocol: acl.Protocol(s.Protocol),
			Allow: slices.Clone(s.Allow),
		})
	}
	return out
}

// sameService reports whether two fences are for the same VIP, port and
// protocol (their allow-lists may differ).
func sameService(a, b acl.Tenant) bool {
	pa, pb := a.Protocol, b.Protocol
	if pa == "" {
		pa = acl.TCP
	}
	if pb == "" {
		pb = acl.TCP
	}
	return a.VIP == b.VIP && a.Port == b.Port && pa == pb
}

// onlyAllowChanged reports whether want differs from have only in
// allow-lists (same tenants, same VIP, port and protocol), and returns the
// tenants whose list changed.
func onlyAllowChanged(have, want []acl.Tenant) ([]acl.Tenant, bool) {
	if have == nil || len(have) != len(want) {
		return nil, false
	}
	var changed []acl.Tenant
	for i := range want {
		h, w := have[i], want[i]
		if h.Name != w.Name || !sameService(h, w) {
			return nil, false
		}
		if !slices.Equal(h.Allow, w.Allow) {
			changed = append(changed, w)
		}
	}
	return changed, true
}

// replaceTenant returns ts with the tenant named like t replaced by t.
func replaceTenant(ts []acl.Tenant, t acl.Tenant) []acl.Tenant {
	out := slices.Clone(ts)
	for i := range out {
		if out[i].Name == t.Name {
			out[i] = t
		}
	}
	return out
}

// drVIPs are the VIPs this storage node must accept on lo: those of every
// DR service it is a real server of.
func drVIPs(cfg *config.Config, node config.Node) []netip.Addr {
	addr, err := netip.ParseAddr(node.Address)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, s := range cfg.Services() {
		if s.Forward != "dr" || slices.Contains(out, s.VIP) {
			continue
		}
		if slices.ContainsFunc(s.Reals, func(r config.ResolvedReal) bool { return r.Addr == addr }) {
			out = append(out, s.VIP)
		}
	}
	return out
}

// withLingering adds to want a fence for every service of have that want
// lacks but IPVS still has (owned: draining after its tenant was removed
// or moved), so that its port stays closed to outsiders until IPVS lets
// it go.
//
// Lingering fences are kept per service, not per tenant: a tenant that
// moved (new VIP, port or protocol) is fenced on its new service under its
// own name, and on the old one, while that drains, under a name derived
// from both (lingerName; pkg/acl keeps one fence per name). The fence of a
// tenant that still exists follows the tenant's current allow-list; that
// of a removed tenant keeps its last one.
func withLingering(want, have []acl.Tenant, owned map[string]bool) []acl.Tenant {
	out := slices.Clone(want)
	wanted := make(map[string]bool, len(want)) // by service
	byName := make(map[string]acl.Tenant, len(want))
	for _, w := range want {
		wanted[aclServiceKey(w)] = true
		byName[w.Name] = w
	}
	for _, t := range have {
		key := aclServiceKey(t)
		if wanted[key] || !owned[key] {
			continue
		}
		owner := lingerOwner(t.Name)
		if cur, ok := byName[owner]; ok {
			t.Allow = slices.Clone(cur.Allow)
		}
		if _, taken := byName[t.Name]; taken {
			t.Name = lingerName(owner, key)
		}
		out = append(out, t)
	}
	return out
}

// lingerPrefix starts the name of a fence kept on a moved tenant's old
// service. No configured tenant's name can start with it
// (config.ValidName), so such a fence never takes a tenant's name.
const lingerPrefix = "_"

// lingerName names the fence kept on owner's old service svc while IPVS
// drains it: the prefix, the owner's name and a hash of the service, so it
// is unique per service. It stays within acl.MaxNameLen; pkg/acl derives
// its set names from the whole name, shortened and with a hash of it, so
// they fit ipset's 31 characters whatever the name.
func lingerName(owner, svc string) string {
	h := sha256.Sum256([]byte(svc))
	suffix := "_" + hex.EncodeToString(h[:lingerHashLen/2])
	if room := acl.MaxNameLen - len(lingerPrefix) - len(suffix); len(owner) > room {
		owner = owner[:room]
	}
	return lingerPrefix + owner + suffix
}

// lingerHashLen is the number of hex digits of the service hash in a
// lingering fence's name.
const lingerHashLen = 8

// lingerOwner is the tenant a fence belongs to: its own name, or for a
// fence named by lingerName, the owner in it.
func lingerOwner(name string) string {
	rest, ok := strings.CutPrefix(name, lingerPrefix)
	i := len(rest) - lingerHashLen - 1
	if !ok || i < 1 || rest[i] != '_' {
		return name
	}
	if _, err := hex.DecodeString(rest[i+1:]); err != nil {
		return name
	}
	return rest[:i]
}

// aclServiceKey is the kernel-side name of a tenant's service.
func aclServiceKey(t acl.Tenant) string {
	proto := t.Protocol
	if proto == "" {
		proto = acl.TCP
	}
	return svcKey(string(proto), t.VIP, t.Port)
}

// storageFence is the second-line fence of a storage node: every tenant's
// port on every local address, open to the tenant's list and to the
// directors (their health checks).
func storageFence(cfg *config.Config, ov *Overlay) []acl.Tenant {
	var directors []netip.Prefix
	for _, n := range cfg.Directors() {
		if a, err := netip.ParseAddr(n.Address); err == nil {
			directors = append(directors, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	var out []acl.Tenant
	for _, s := range effectiveServices(cfg.Services(), nil, ov) {
		if s.Tenant == "" {
			continue
		}
		allow := slices.Clone(s.Allow)
		for _, p := range directors {
			if !slices.Contains(allow, p) {
				allow = append(allow, p)
			}
		}
		out = append(out, acl.Tenant{Name: s.Fence(), Port: s.Port, Protocol: acl.Protocol(s.Protocol), Allow: allow})
	}
	return out
}

// trackRealsOffset is the VRRP priority offset for vrrp.track_reals: lower
// while services exist but none of their real servers can take traffic.
func trackRealsOffset(cfg *config.Config, eff []config.ResolvedService) int {
	if cfg.VRRP == nil || cfg.VRRP.TrackReals == 0 || len(eff) == 0 {
		return 0
	}
	for _, s := range eff {
		for _, r := range s.Reals {
			if r.Weight > 0 {
				return 0
			}
		}
	}
	return -cfg.VRRP.TrackReals
}
