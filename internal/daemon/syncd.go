package daemon

import (
	"github.com/lbd-project/lbd/internal/events"
	"net/netip"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/ipvs"
)

// syncDaemons are the kernel IPVS sync daemons this director runs
// (vrrp.lvs_sync_daemon; none without it). Every director runs both, and
// whichever holds the VIPs sends: its master daemon under its own sync id
// (the first id plus its rank among the directors), while its backup
// daemon takes the other director's id. Both directors therefore learn
// every connection before they need it, on failover and on failback,
// and no VRRP transition has to start or stop a daemon (keepalived swaps
// them on each transition and loses the connections made meanwhile,
// acassen/keepalived#1076). With more than two directors the backup
// daemon takes every sync id of the group (0).
func syncDaemons(cfg *config.Config, node config.Node) []ipvs.SyncDaemon {
	if cfg.VRRP == nil || cfg.VRRP.LVSSyncDaemon == nil || !node.Role.IsDirector() {
		return nil
	}
	s := cfg.VRRP.LVSSyncDaemon
	base := ipvs.SyncDaemon{Interface: s.Interface, MaxLen: uint16(s.MaxLen), Port: uint16(s.Port), TTL: uint8(s.TTL)}
	if base.Interface == "" {
		base.Interface = node.Interface
	}
	if g, err := netip.ParseAddr(s.Group); err == nil {
		base.Group = g
	} else if vips := cfg.VRRPVIPs(); len(vips) > 0 && vips[0].Is6() {
		// An IPv6 cluster's interface may have no IPv4 address for the
		// kernel's default group: use its IPv6 one.
		base.Group = netip.MustParseAddr("ff02::81")
	}
	directors := cfg.Directors()
	rank := 0
	for i, d := range directors {
		if d.Name == node.Name {
			rank = i
		}
	}
	first := cfg.VRRP.SyncID()
	m, b := base, base
	m.State, m.SyncID = ipvs.SyncMaster, uint8(first+rank)
	b.State = ipvs.SyncBackup
	switch len(directors) {
	case 1:
		return []ipvs.SyncDaemon{m}
	case 2:
		b.SyncID = uint8(first + 1 - rank)
	default:
		b.SyncID = 0 // every sync id
	}
	return []ipvs.SyncDaemon{m, b}
}

// reconcileSync runs the sync daemons the file asks for (and stops those
// lbd started that it no longer asks for). They run whatever the VRRP
// state; see syncDaemons.
func (d *Daemon) reconcileSync(cfg *config.Config, node config.Node) error {
	sm := d.sub.syncd
	if sm == nil {
		return nil // IPVS unreachable: reported by reconcileIPVS
	}
	want := syncDaemons(cfg, node)
	if len(want) > 0 && cfg.VRRP.LVSSyncDaemon.Version != nil {
		if err := ipvs.SetSyncVersion(*cfg.VRRP.LVSSyncDaemon.Version); err != nil {
			return err
		}
	}
	res, err := sm.Apply(want)
	for _, c := range res.Conflicts {
		d.log.Warn("ipvs sync daemon runs but is not lbd's; left untouched", "daemon", c.String())
	}
	for _, s := range res.Started {
		d.events.Publish(events.VRRP, "ipvs sync daemon started", "daemon", s.String())
	}
	for _, s := range res.Stopped {
		d.events.Publish(events.VRRP, "ipvs sync daemon stopped", "daemon", s.String())
	}
	return err
}
