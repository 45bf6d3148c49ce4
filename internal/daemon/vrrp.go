package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/internal/ifaddr"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/vrrp"
)

// vrrpInstances is this director's VRRP instance from the file (none
// without a vrrp section).
func vrrpInstances(cfg *config.Config, node config.Node) []vrrp.Config {
	v := cfg.VRRP
	if v == nil || !node.Role.IsDirector() {
		return nil
	}
	c := vrrp.Config{
		Name:              fmt.Sprintf("VI_%d", v.VirtualRouterID),
		Interface:         node.Interface,
		VRID:              uint8(v.VirtualRouterID),
		Priority:          uint8(node.Priority),
		AdvertInterval:    v.AdvertInterval.D(),
		NoPreempt:         v.NoPreempt,
		PreemptDelay:      v.PreemptDelay.D(),
		TrackInterfaces:   v.TrackInterfaces,
		GARPMasterDelay:   v.GARPMasterDelay.D(),
		GARPMasterRefresh: v.GARPMasterRefresh.D(),
		Notify:            vrrp.Notify{Master: v.NotifyMaster, Backup: v.NotifyBackup, Fault: v.NotifyFault},
	}
	for _, a := range cfg.VRRPVIPs() {
		c.VIPs = append(c.VIPs, netip.PrefixFrom(a, a.BitLen()))
	}
	if v.Unicast {
		c.SourceAddr, _ = netip.ParseAddr(node.Address)
		for _, d := range cfg.Directors() {
			if a, err := netip.ParseAddr(d.Address); err == nil && d.Name != node.Name {
				c.UnicastPeers = append(c.UnicastPeers, a)
			}
		}
	}
	return []vrrp.Config{c}
}

// vrrpRunner runs this director's VRRP instances and restarts one only when
// its configuration changes.
type vrrpRunner struct {
	ctx    context.Context
	log    *slog.Logger
	events *events.Bus

	mu      sync.Mutex
	running []*runningInstance
	offset  int // priority offset applied to every instance (track_reals)
}

type runningInstance struct {
	cfg    vrrp.Config
	inst   *vrrp.Instance
	cancel context.CancelFunc
	done   chan struct{}
}

func newVRRPRunner(ctx context.Context, log *slog.Logger, bus *events.Bus) *vrrpRunner {
	return &vrrpRunner{ctx: ctx, log: log, events: bus}
}

// configure starts, keeps or restarts instances to match want.
func (r *vrrpRunner) configure(want []vrrp.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keep []*runningInstance
	for _, ri := range r.running {
		if slices.ContainsFunc(want, func(c vrrp.Config) bool { return reflect.DeepEqual(c, ri.cfg) }) {
			keep = append(keep, ri)
			continue
		}
		ri.stop() // clean stop: priority 0, the peer takes over at once
	}
	var errs []string
	for _, c := range want {
		if slices.ContainsFunc(keep, func(ri *runningInstance) bool { return reflect.DeepEqual(ri.cfg, c) }) {
			continue
		}
		inst, err := vrrp.New(c, vrrp.Options{Logger: r.log, OnStateChange: r.onChange})
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		ctx, cancel := context.WithCancel(r.ctx)
		inst.SetPriorityOffset(r.offset)
		ri := &runningInstance{cfg: c, inst: inst, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(ri.done)
			if err := inst.Run(ctx); err != nil {
				r.log.Error("vrrp instance stopped", "instance", c.Name, "error", err)
				r.events.Publish(events.VRRP, "instance failed", "instance", c.Name, "error", err.Error())
			}
		}()
		keep = append(keep, ri)
	}
	r.running = keep
	if len(errs) > 0 {
		return fmt.Errorf("vrrp: %s", strings.Join(errs, "; "))
	}
	return nil
}

// setPriorityOffset applies a priority offset to every instance.
func (r *vrrpRunner) setPriorityOffset(delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if delta == r.offset {
		return
	}
	r.offset = delta
	for _, ri := range r.running {
		ri.inst.SetPriorityOffset(delta)
	}
	r.log.Info("vrrp priority offset", "offset", delta, "reason", "track_reals")
}

func (r *vrrpRunner) onChange(c vrrp.StateChange) {
	r.events.Publish(events.VRRP, "state "+c.From.String()+" -> "+c.To.String(),
		"instance", c.Instance, "state", c.To.String(), "priority", fmt.Sprint(c.Priority))
}

func (ri *runningInstance) stop() {
	ri.cancel()
	<-ri.done
}

// stop stops every instance cleanly.
func (r *vrrpRunner) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ri := range r.running {
		ri.stop()
	}
	r.running = nil
}

// status reports every instance.
func (r *vrrpRunner) status() []api.VRRPStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []api.VRRPStatus
	for _, ri := range r.running {
		st := ri.inst.Status()
		vs := api.VRRPStatus{
			VRID: int(st.VRID), Interface: ri.cfg.Interface, State: strings.ToLower(st.State.String()),
			Since: st.Since, Priority: int(st.Priority), Transitions: st.Stats.BecameMaster,
		}
		for _, p := range ri.cfg.VIPs {
			vs.VIPs = append(vs.VIPs, p.Addr())
		}
		out = append(out, vs)
	}
	return out
}

// vrrpStatus implements the VRRP part of Status.
func (d *Daemon) vrrpStatus() []api.VRRPStatus {
	if d.sub.vrrp == nil {
		return nil
	}
	return d.sub.vrrp.status()
}

// dropHeldVIPs removes the VIPs of instances that are held back (not
// running, see holdVRRP) from their interfaces: an earlier run killed as
// master left them there, and a director that has not caught up must not
// answer for them with a fence that may be older than the cluster's.
func dropHeldVIPs(log *slog.Logger, instances []vrrp.Config) {
	if len(instances) == 0 {
		return
	}
	h, err := netlink.NewHandle()
	if err != nil {
		log.Error("cannot remove VIPs left by an earlier run", "error", err)
		return
	}
	defer h.Close()
	m := ifaddr.Manager{Handle: h, Absent: []syscall.Errno{syscall.ENODEV}}
	for _, c := range instances {
		link, err := h.LinkByName(c.Interface)
		if err != nil {
			continue // no interface: no VIP on it
		}
		for _, p := range c.VIPs {
			if was, err := m.Del(link, p); err != nil {
				log.Error("cannot remove a VIP left by an earlier run", "vip", p.String(), "interface", c.Interface, "error", err)
			} else if was {
				log.Warn("removed a VIP left by an earlier run; VRRP starts once caught up with the cluster", "vip", p.String(), "interface", c.Interface)
			}
		}
	}
}
