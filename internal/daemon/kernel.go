package daemon

import (
	"context"
	"net/netip"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/acl"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/ipvs"
)

// kernelService is a service as IPVS last reported it, for status.
type kernelService struct {
	stats api.Stats
	dests map[netip.AddrPort]kernelDest
}

type kernelDest struct {
	weight        int
	active, inact uint32
	draining      bool
	stats         api.Stats
}

// kernelServices returns IPVS's view of lbd's services keyed by
// protocol/vip:port, read on demand for status and cached briefly. A
// failed read returns the last one.
func (d *Daemon) kernelServices(ctx context.Context) map[string]kernelService {
	d.mu.RLock()
	r := d.sub.ipvs
	d.mu.RUnlock()
	if r == nil {
		return nil
	}
	out, err := d.sub.kernel.get(func() (map[string]kernelService, error) {
		snap, err := r.Snapshot(ctx)
		if err != nil {
			return nil, err
		}
		return kernelView(snap), nil
	})
	if err != nil {
		d.log.Warn("ipvs snapshot failed", "error", err)
	}
	return out
}

// kernelView keys lbd's own services of an IPVS snapshot by name.
func kernelView(snap []ipvs.ServiceStatus) map[string]kernelService {
	out := make(map[string]kernelService, len(snap))
	for _, ks := range snap {
		if !ks.Owned {
			continue
		}
		svc := ks.Service
		k := kernelService{stats: apiStats(ks.Stats), dests: make(map[netip.AddrPort]kernelDest, len(ks.Dests))}
		for _, dst := range ks.Dests {
			port := dst.Port
			if port == 0 {
				port = svc.Port
			}
			k.dests[netip.AddrPortFrom(dst.Addr, port)] = kernelDest{
				weight: dst.Weight, active: uint32(dst.ActiveConns), inact: uint32(dst.InactiveConns),
				draining: dst.Draining, stats: apiStats(dst.Stats),
			}
		}
		out[ipvsKey(svc.Key())] = k
	}
	return out
}

// ownedServices is the set of services lbd has in IPVS (draining ones
// included), from the reconciler's record: no kernel request.
func (d *Daemon) ownedServices() map[string]bool {
	out := map[string]bool{}
	if d.sub.ipvs == nil {
		return out
	}
	for _, k := range d.sub.ipvs.Owned() {
		out[ipvsKey(k)] = true
	}
	return out
}

// svcKey is the kernel-side name of a service, as config names a plain
// one: protocol/vip:port. Every view of a service (IPVS, config, ACL) is
// keyed with it, so they match.
func svcKey(proto string, vip netip.Addr, port uint16) string {
	return proto + "/" + netip.AddrPortFrom(vip, port).String()
}

// ipvsKey names an IPVS service.
func ipvsKey(k ipvs.Key) string { return svcKey(k.Protocol.String(), k.Addr, k.Port) }

// serviceKey names a desired service.
func serviceKey(s config.ResolvedService) string { return svcKey(s.Protocol, s.VIP, s.Port) }

func apiStats(s ipvs.Stats) api.Stats {
	return api.Stats{
		Conns: s.Conns, InPkts: s.PacketsIn, OutPkts: s.PacketsOut, InBytes: s.BytesIn, OutBytes: s.BytesOut,
		CPS: uint32(s.CPS), InPPS: uint32(s.PPSIn), OutPPS: uint32(s.PPSOut), InBPS: uint32(s.BPSIn), OutBPS: uint32(s.BPSOut),
	}
}

// aclStatus reports the tenants' allow-lists as fenced in the kernel.
func (d *Daemon) aclStatus(cfg *config.Config, ov *Overlay) []api.ACLStatus {
	if d.sub.acl == nil {
		return nil
	}
	states, err := d.sub.aclState.get(func() ([]acl.State, error) { return d.sub.acl.State(context.Background()) })
	if err != nil {
		d.log.Warn("acl state read failed", "error", err)
	}
	drops := map[string]uint64{}
	for _, st := range states {
		drops[st.Tenant] += st.Packets
	}
	var out []api.ACLStatus
	for _, s := range cfg.Services() {
		if s.Tenant == "" {
			continue
		}
		t, _ := d.sub.acl.Tenant(s.Fence())
		_, runtime := ov.Allow[s.Tenant]
		out = append(out, api.ACLStatus{Tenant: s.Tenant, VIP: s.VIP, Port: s.Port, Entries: t.Allow, Runtime: runtime, Drops: drops[s.Fence()]})
	}
	return out
}
