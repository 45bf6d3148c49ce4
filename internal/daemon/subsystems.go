package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/lbd-project/lbd/internal/realserver"
	"github.com/lbd-project/lbd/pkg/acl"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/ipvs"
)

// ipvsRetry spaces the attempts to reach the kernel's IPVS.
const ipvsRetry = 10 * time.Second

// subsystems holds the per-role workers. Only the loop goroutine uses them,
// except where a field says otherwise.
type subsystems struct {
	// director side
	ipvs     *ipvs.Reconciler // nil until the kernel's IPVS is reachable
	ipvsErr  error
	syncd    *ipvs.SyncManager // the IPVS sync daemons; nil with ipvs
	ipvsNext time.Time         // when connectIPVS may try again
	acl      fencer
	storACL  fencer       // storage nodes' second line (defaults.storage_acl)
	aclRead  bool         // acl has read back what the last run fenced
	storRead bool         // storACL has, likewise
	storHave []acl.Tenant // what the last successful storage fence apply fenced
	aclHave  []acl.Tenant // what the last successful ACL apply fenced
	fenced   map[string]bool
	wake     *time.Timer // next reconcile the IPVS reconciler asked for
	vrrp     *vrrpRunner
	quorum   quorumTracker
	scripts  *quorumScripts
	// vipsDropped: leftover VIPs were removed while VRRP was held.
	vipsDropped bool
	kernel      ttlCache[map[string]kernelService] // IPVS snapshot, for status
	aclState    ttlCache[[]acl.State]              // ACL counters, for status

	// storage side
	rs   drSide
	kvs  *kvsRunner
	rest *restRunner
}

// drSide is what the daemon needs of internal/realserver's RealServer (a
// fake in tests of the storage side).
type drSide interface {
	Apply(ctx context.Context, vips []netip.Addr, ifaces []string) error
	Close() error
}

// fencer is what the daemon needs of pkg/acl's Manager (a fake in tests
// of the fail-closed decisions).
type fencer interface {
	Adopt(ctx context.Context) error
	Apply(ctx context.Context, tenants []acl.Tenant) error
	SetAllow(ctx context.Context, tenant string, allow []netip.Prefix) error
	Tenant(name string) (acl.Tenant, bool)
	Tenants() []acl.Tenant
	State(ctx context.Context) ([]acl.State, error)
	Close() error
}

// startSubsystems creates the workers of this node's role. Kernel state is
// only touched by reconcile.
func (d *Daemon) startSubsystems(ctx context.Context) error {
	dir := d.stateDir(d.cfg)
	s := &d.sub
	s.wake = time.NewTimer(time.Hour)
	s.wake.Stop()
	action, err := acl.ParseAction(d.cfg.Defaults.ACLAction)
	if err != nil {
		return fmt.Errorf("daemon: acl: %w", err)
	}
	if d.node.Role.IsDirector() {
		m, err := acl.New(acl.Options{Logger: d.log, Action: action})
		if err != nil {
			return fmt.Errorf("daemon: acl: %w", err)
		}
		s.acl = m
		d.connectIPVS()
		s.vrrp = newVRRPRunner(ctx, d.log, d.events)
		s.scripts = newQuorumScripts(ctx, d.log)
	}
	if d.node.Role.IsStorage() {
		rs, err := realserver.New(realserver.Options{StateDir: filepath.Join(dir, "realserver"), Logger: d.log})
		if err != nil {
			return fmt.Errorf("daemon: real-server side: %w", err)
		}
		s.rs = rs
		s.kvs = newKVSRunner(d.log, filepath.Join(dir, "kvs"), d.opts.KVS)
		s.rest = newRESTRunner(d.log, restBackend{d}, s.kvs.tier)
		// Its own chain and set prefix: on a node that is both, the
		// director's fences stay separate.
		m, err := acl.New(acl.Options{Logger: d.log, Action: action, Chain: "LBD-ACL-RS", SetPrefix: "LBDRS"})
		if err != nil {
			return fmt.Errorf("daemon: storage acl: %w", err)
		}
		s.storACL = m
	}
	return nil
}

// connectIPVS opens the kernel's IPVS table, loading the module if needed.
// Without IPVS the director still fences tenants and runs VRRP; IPVS is
// retried by the reconciles, at most every ipvsRetry (modprobe is a fork
// and an exec: not something every allow-list change should pay).
func (d *Daemon) connectIPVS() {
	s := &d.sub
	if s.ipvs != nil || time.Now().Before(s.ipvsNext) {
		return
	}
	s.ipvsNext = time.Now().Add(ipvsRetry)
	k, err := ipvs.NewNetlink("")
	if err != nil {
		// The module may just not be loaded yet; what modprobe says is in err below.
		_ = exec.Command("modprobe", "ip_vs").Run()
		k, err = ipvs.NewNetlink("")
	}
	var r *ipvs.Reconciler
	var sm *ipvs.SyncManager
	if err == nil {
		r, err = ipvs.NewReconciler(k, ipvs.Options{
			StateDir:    d.stateDir(d.cfg),
			DrainPeriod: d.cfg.Defaults.DrainPeriod.D(),
			Logger:      d.log,
		})
	}
	if err == nil {
		sm, err = ipvs.NewSyncManager(k, d.stateDir(d.cfg), d.log)
	}
	if err != nil && (s.ipvsErr == nil || s.ipvsErr.Error() != err.Error()) {
		d.log.Error("ipvs unavailable; services are not programmed until it is", "error", err)
	}
	d.mu.Lock() // Status reads them
	s.ipvs, s.ipvsErr = r, err
	if err == nil {
		s.syncd = sm
	}
	d.mu.Unlock()
}

// stopSubsystems releases the workers. Kernel state stays: a restart
// adopts it and no tenant port opens.
func (d *Daemon) stopSubsystems() {
	s := &d.sub
	if s.vrrp != nil {
		s.vrrp.stop()
	}
	if s.rest != nil {
		s.rest.close()
	}
	if s.kvs != nil {
		s.kvs.close()
	}
	for _, m := range []fencer{s.acl, s.storACL} {
		if m != nil {
			m.Close()
		}
	}
	if s.rs != nil {
		s.rs.Close()
	}
}

// reconcileDirector fences the tenants first, then programs IPVS, then
// hands VRRP its instance: a service is only announced once its port is
// closed to outsiders.
func (d *Daemon) reconcileDirector(ctx context.Context, cfg *config.Config, node config.Node, eff []config.ResolvedService) []error {
	var errs []error
	if err := d.reconcileACL(ctx, eff); err != nil {
		errs = append(errs, err)
	}
	// A tenant whose fence is not in place is left out of IPVS: if it is
	// new, it is not announced; if it existed, its service is kept as is
	// by the reconciler only if it is still desired, so keep it desired.
	withQuorum, crossed := d.sub.quorum.apply(eff)
	for _, a := range crossed {
		d.quorumCrossed(a)
	}
	var desired []ipvs.Service
	for _, s := range withQuorum {
		if s.Tenant != "" && !d.sub.fenced[s.Tenant] {
			continue
		}
		desired = append(desired, toIPVS(s))
	}
	if err := d.reconcileIPVS(ctx, desired); err != nil {
		errs = append(errs, err)
	}
	if err := d.reconcileSync(cfg, node); err != nil {
		errs = append(errs, err)
	}
	// A fence kept only for a draining service can go once IPVS let go.
	want := aclTenants(eff)
	if len(withLingering(want, d.sub.aclHave, d.ownedServices())) < len(d.sub.aclHave) {
		d.Kick()
	}
	// A director that has not caught up with the cluster does not run
	// VRRP (it cannot become master on a stale state), unless no quorum
	// answered in time: then it serves its last state (holdVRRP).
	instances := vrrpInstances(cfg, node)
	if d.holdVRRP() {
		if !d.sub.vipsDropped {
			dropHeldVIPs(d.log, instances)
			d.sub.vipsDropped = true
		}
		instances = nil
	}
	if err := d.sub.vrrp.configure(instances); err != nil {
		errs = append(errs, err)
	}
	d.sub.vrrp.setPriorityOffset(trackRealsOffset(cfg, eff))
	return errs
}

// reconcileACL brings the allow-lists in step. When only lists changed, it
// swaps just those sets (O(change)); otherwise it applies the whole set of
// tenants. A service that left the desired state (its tenant removed or
// moved) stays fenced while IPVS still has it (draining): its port never
// opens, not even then. Which fences linger is decided from what the
// manager enforces, not from aclHave, which a failed apply forgets.
func (d *Daemon) reconcileACL(ctx context.Context, eff []config.ResolvedService) error {
	s := &d.sub
	// Until what the last run fenced is known, nothing is applied: a
	// tenant removed while lbd was stopped still has its service in IPVS
	// (the reconciler reports it from its state file), and its fence must
	// linger until that service has drained.
	if err := d.adoptFences(ctx, s.acl, &s.aclRead); err != nil {
		return err
	}
	want := withLingering(aclTenants(eff), s.acl.Tenants(), d.ownedServices())
	if changed, ok := onlyAllowChanged(s.aclHave, want); ok {
		return swapAllows(ctx, s.acl, &s.aclHave, changed)
	}
	err := s.acl.Apply(ctx, want)
	// Whatever went wrong, a tenant counts as fenced only if the manager
	// enforces a fence for exactly its VIP, port and protocol (possibly
	// with its previous list); any other tenant is not announced.
	s.fenced = map[string]bool{}
	for _, t := range want {
		if have, ok := s.acl.Tenant(t.Name); ok && sameService(have, t) {
			s.fenced[t.Name] = true
		}
	}
	if err == nil {
		s.aclHave = want
	} else {
		s.aclHave = nil // unknown mix: the next reconcile applies in full
	}
	return err
}

// adoptFences has m read back, once (done records it), the fences the last
// run of lbd left in the kernel, so that they count before the first
// apply: a draining service keeps its fence, a store keeps being served.
//
// The kernel is the record here, rather than a state file of the fences:
// the manager owns its chain and sets by name and can read them back
// exactly, so a file could only disagree with the kernel (after a crash
// between a commit and its write). pkg/ipvs needs its file because IPVS
// cannot tell whose a service is, nor when its drain ends.
func (d *Daemon) adoptFences(ctx context.Context, m fencer, done *bool) error {
	if *done {
		return nil
	}
	if err := m.Adopt(ctx); err != nil {
		return fmt.Errorf("acl: reading back the fences of the last run: %w", err)
	}
	*done = true
	return nil
}

// reconcileIPVS applies the desired services and arms the wake-up the
// reconciler asks for (drains, retries).
func (d *Daemon) reconcileIPVS(ctx context.Context, desired []ipvs.Service) error {
	s := &d.sub
	d.connectIPVS()
	if s.ipvs == nil {
		// A standing condition, not a failed change: logged when it
		// starts, shown by status (ipvs_error) and metrics (lbd_ipvs_up);
		// the rest of the director (fences, VRRP) keeps working.
		return nil
	}
	res, err := s.ipvs.Apply(ctx, desired)
	d.mu.Lock()
	d.recon.writes += uint64(res.Writes)
	d.mu.Unlock()
	if res.Writes > 0 || err != nil {
		d.log.Info("ipvs reconciled", "writes", res.Writes, "failed", res.Failed, "netlink", res.Netlink,
			"services_added", res.ServicesAdded, "services_deleted", res.ServicesDeleted,
			"dests_added", res.DestsAdded, "dests_updated", res.DestsUpdated, "dests_deleted", res.DestsDeleted,
			"draining", res.Draining)
	}
	for _, k := range res.Conflicts {
		d.log.Warn("ipvs service exists but is not lbd's; left untouched", "service", k.String())
	}
	s.wake.Stop()
	if !res.NextWake.IsZero() {
		s.wake.Reset(time.Until(res.NextWake))
	}
	return err
}

// reconcileStorage fences the tenants' ports (with storage_acl), puts the
// VIPs on lo for DR and runs the tenants' stores, in that order: a port
// is fenced before it is served, and a store whose fence is not in place
// is not started or moved (see fencedKVS).
func (d *Daemon) reconcileStorage(ctx context.Context, cfg *config.Config, node config.Node) []error {
	var errs []error
	// With storage_acl off, lbd's storage chain is emptied: the directors
	// still fence everything.
	var fence []acl.Tenant
	if cfg.Defaults.StorageACLOn() {
		fence = storageFence(cfg, d.overlayNow())
	}
	// What the last run fenced counts for fencedKVS even if this apply
	// fails; nothing lingers here, so the apply need not wait for it.
	if err := d.adoptFences(ctx, d.sub.storACL, &d.sub.storRead); err != nil {
		errs = append(errs, err)
	}
	if err := d.applyStorageFence(ctx, fence); err != nil {
		errs = append(errs, err)
	}
	var ifaces []string
	if node.Interface != "" {
		ifaces = []string{node.Interface}
	}
	if err := d.sub.rs.Apply(ctx, drVIPs(cfg, node), ifaces); err != nil {
		errs = append(errs, err)
	}
	want := kvsTenants(cfg, d.sub.kvs.dir)
	if cfg.Defaults.StorageACLOn() {
		var err error
		if want, err = d.fencedKVS(want, fence); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.kvsReady(cfg); err != nil {
		errs = append(errs, err)
	} else if err := d.sub.kvs.apply(ctx, want); err != nil {
		errs = append(errs, err)
	}
	if err := d.reconcileREST(ctx, cfg, fence); err != nil {
		errs = append(errs, err)
	}
	d.sub.kvs.report(d.log, d.events)
	return errs
}

// applyStorageFence brings the storage fence in step: when only
// allow-lists changed since the last successful apply it swaps just
// those sets (O(change), no iptables call); otherwise, and when nothing
// changed (a resync repairs what was changed by hand), it applies the
// whole fence.
func (d *Daemon) applyStorageFence(ctx context.Context, fence []acl.Tenant) error {
	s := &d.sub
	if changed, ok := onlyAllowChanged(s.storHave, fence); ok && len(changed) > 0 {
		return swapAllows(ctx, s.storACL, &s.storHave, changed)
	}
	err := s.storACL.Apply(ctx, fence)
	if err == nil {
		s.storHave = fence
	} else {
		s.storHave = nil // unknown mix: the next reconcile applies in full
	}
	return err
}

// swapAllows sets the allow-lists of changed on m, each an atomic set
// swap, and records in have those that took.
func swapAllows(ctx context.Context, m fencer, have *[]acl.Tenant, changed []acl.Tenant) error {
	var errs []error
	for _, t := range changed {
		if err := m.SetAllow(ctx, t.Name, t.Allow); err != nil {
			errs = append(errs, err)
			continue
		}
		*have = replaceTenant(*have, t)
	}
	return errors.Join(errs...)
}
