package daemon

import (
	"context"
	"net/netip"

	"github.com/lbd-project/lbd/internal/api"
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
	stats         api.Stats
}

// refreshKernel snapshots IPVS for status. A failed read keeps the last one.
func (d *Daemon) refreshKernel(ctx context.Context) {
	s := &d.sub
	snap, err := s.ipvs.Snapshot(ctx)
	if err != nil {
		d.log.Warn("ipvs snapshot failed", "error", err)
		return
	}
	out := make(map[string]kernelService, len(snap))
	for _, ks := range snap {
		if !ks.Owned {
			continue
		}
		svc := ks.Service
		name := svc.Protocol.String() + "/" + netip.AddrPortFrom(svc.Addr, svc.Port).String()
		k := kernelService{stats: apiStats(ks.Stats), dests: make(map[netip.AddrPort]kernelDest, len(ks.Dests))}
		for _, dst := range ks.Dests {
			port := dst.Port
			if port == 0 {
				port = svc.Port
			}
			k.dests[netip.AddrPortFrom(dst.Addr, port)] = kernelDest{
				weight: dst.Weight, active: uint32(dst.ActiveConns), inact: uint32(dst.InactiveConns), stats: apiStats(dst.Stats),
			}
		}
		out[name] = k
	}
	s.kernelMu.Lock()
	s.kernelNow = out
	s.kernelMu.Unlock()
}

// kernelServices returns the last snapshot keyed by service name
// (tenants' services are keyed by protocol/vip:port too, see serviceKey).
func (d *Daemon) kernelServices() map[string]kernelService {
	d.sub.kernelMu.Lock()
	defer d.sub.kernelMu.Unlock()
	return d.sub.kernelNow
}

// serviceKey is the kernel-side name of a service: protocol/vip:port.
func serviceKey(s config.ResolvedService) string {
	return s.Protocol + "/" + netip.AddrPortFrom(s.VIP, s.Port).String()
}

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
	states, err := d.sub.acl.State(context.Background())
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
		t, _ := d.sub.acl.Tenant(s.Tenant)
		_, runtime := ov.Allow[s.Tenant]
		out = append(out, api.ACLStatus{Tenant: s.Tenant, VIP: s.VIP, Port: s.Port, Entries: t.Allow, Runtime: runtime, Drops: drops[s.Tenant]})
	}
	return out
}
