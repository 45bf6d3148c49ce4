package daemon

import (
	"context"
	"net/netip"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
)

// Status implements api.Backend: the desired services with their health,
// merged with what the kernel reports.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	d.mu.RLock()
	cfg, node, ov, rec, ipvsErr, syncd := d.cfg, d.node, d.overlay, d.recon, d.sub.ipvsErr, d.sub.syncd
	d.mu.RUnlock()
	st := api.Status{
		Node: node.Name, Role: string(node.Role), ConfigFile: d.opts.ConfigPath, Started: d.started,
		Reconcile: api.ReconcileStatus{Last: rec.last, Took: rec.took, Count: rec.count, Failures: rec.failures, IPVSWrites: rec.writes, Generation: rec.gen},
	}
	if ipvsErr != nil {
		st.Reconcile.IPVSError = ipvsErr.Error()
	}
	if rec.err != nil {
		st.Reconcile.Error = rec.err.Error()
	}
	st.Cluster = d.stateSummary()
	if node.Role.IsDirector() {
		st.Services = d.serviceStatus(ctx, cfg, ov)
		st.VRRP = d.vrrpStatus()
		if syncd != nil {
			for _, s := range syncd.Owned() {
				st.IPVSSync = append(st.IPVSSync, s.String())
			}
		}
		st.ACL = d.aclStatus(cfg, ov)
	}
	if node.Role.IsStorage() {
		st.KVS = d.kvsStats(node, "")
	}
	return st, nil
}

// serviceStatus lists the desired services with health and kernel state.
func (d *Daemon) serviceStatus(ctx context.Context, cfg *config.Config, ov *Overlay) []api.ServiceStatus {
	kernel := d.kernelServices(ctx)
	var out []api.ServiceStatus
	for _, s := range cfg.Services() {
		ss := api.ServiceStatus{
			Name: s.Name, Tenant: s.Tenant, Protocol: s.Protocol, VIP: s.VIP, Port: s.Port,
			Scheduler: s.Scheduler, Forward: s.Forward, Persistence: s.Persistence,
		}
		ks, inKernel := kernel[serviceKey(s)]
		ss.InKernel, ss.Stats = inKernel, ks.stats
		for _, r := range s.Reals {
			id := realID(s, r)
			rs := api.RealStatus{Addr: r.Addr, Port: r.Port, Forward: s.Forward, ConfigWeight: r.Weight, Health: "unchecked"}
			if w, ok := ov.Weights[id]; ok {
				rs.ConfigWeight = w
			}
			if _, checked := healthSpec(s.Health); checked {
				if h, ok := d.health.State(id); ok {
					rs.Health, rs.HealthSince, rs.LastError = "down", h.Since, h.LastError
					if h.Up {
						rs.Health = "up"
					}
				}
			}
			if kd, ok := ks.dests[netip.AddrPortFrom(r.Addr, r.Port)]; ok {
				rs.Weight, rs.ActiveConns, rs.InactConns, rs.Stats = kd.weight, kd.active, kd.inact, kd.stats
				rs.Draining = kd.draining
			}
			ss.Reals = append(ss.Reals, rs)
		}
		out = append(out, ss)
	}
	return out
}

// KVSStats implements api.Backend.
func (d *Daemon) KVSStats(_ context.Context, tenant string) ([]api.KVSStats, error) {
	d.mu.RLock()
	node := d.node
	d.mu.RUnlock()
	return d.kvsStats(node, tenant), nil
}

// stateSummary is where this node is in the replicated state, without a
// network call.
func (d *Daemon) stateSummary() *api.ClusterStatus {
	ctl := d.control()
	if ctl == nil {
		return nil
	}
	f := ctl.Freshness()
	mode := "raft"
	if _, ok := ctl.(*localControl); ok {
		mode = "local"
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return &api.ClusterStatus{
		Mode: mode, Node: d.node.Name, Leader: f.Leader, AppliedIndex: f.AppliedIndex, LastContact: f.LastContact,
		ReconciledIndex: d.st.reconciled, CaughtUp: d.st.caughtUp, Stale: d.st.stale,
	}
}
