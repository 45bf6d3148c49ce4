package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// The daemon is the API's backend.
var _ api.Backend = (*Daemon)(nil)

// mutate makes a runtime change cluster-wide: it is proposed with the
// other changes of the cluster (proposeChanges: on the leader, in its
// group commit), validated there like a file, and the call returns once
// this node has applied it. Nothing changes if the change or the
// validation fails. It returns an allow change's new list.
func (d *Daemon) mutate(ctx context.Context, c Change) ([]netip.Prefix, error) {
	r := d.proposeChanges(ctx, []Change{c}, false)[0]
	if r.err != nil {
		return nil, r.err
	}
	api.NoteIndex(ctx, r.index)
	what := c.String()
	d.events.Publish(events.Config, "runtime change: "+what, "index", fmt.Sprint(r.index))
	d.log.Info("runtime change", "change", what, "index", r.index)
	return r.result, d.waitReconciled(ctx, r.index)
}

// pendingChange is a runtime change waiting for its turn to be proposed.
type pendingChange struct {
	change Change
	// forwarded: another node sent it to this one as the leader; it is
	// never forwarded again (its origin looks for the leader itself).
	forwarded bool
	// tries counts the writes that carried it and did not commit.
	tries int
	done  chan proposed
}

// proposed is a pending change's outcome: the index of the write that
// carries it (and an allow change's new list), or why it was not written.
type proposed struct {
	index  uint64
	result []netip.Prefix
	err    error
}

// proposeChanges has changes proposed: the writer that gets the turn
// takes every change waiting on this node and proposes them as one write
// (group commit), each applied and validated in turn on top of the
// previous ones; a change that fails alone is left out with its error.
// On a node that is not the leader the turn forwards the batch to the
// leader, where it joins the leader's batch: the cluster's writers thus
// never conflict with each other.
func (d *Daemon) proposeChanges(ctx context.Context, changes []Change, forwarded bool) []proposed {
	ps := make([]*pendingChange, len(changes))
	for i, c := range changes {
		ps[i] = &pendingChange{change: c, forwarded: forwarded, done: make(chan proposed, 1)}
	}
	d.pendMu.Lock()
	d.pending = append(d.pending, ps...)
	start := !d.proposing
	d.proposing = true
	d.pendMu.Unlock()
	if start {
		// One proposer at a time drains what is pending, batch after
		// batch; a caller whose change is in a batch only waits for it.
		go d.drainPending(context.WithoutCancel(ctx))
	}
	out := make([]proposed, len(ps))
	for i, p := range ps {
		out[i] = <-p.done // bounded by batchTimeout
	}
	return out
}

// batchTimeout bounds the proposal of one batch of runtime changes.
const batchTimeout = 15 * time.Second

// proposeLocal proposes the changes of batch as one compare-and-set of
// the overlay, re-read and redone on a conflict (a bounded number of
// times: only a file apply or a seed races the leader), and tells each
// change its outcome.
func (d *Daemon) proposeLocal(ctx context.Context, batch []*pendingChange) {
	var res []proposed
	var idx uint64
	err := cluster.ErrConflict
	for try := 0; try < maxProposeTries && errors.Is(err, cluster.ErrConflict); try++ {
		idx, res, err = d.proposeOnce(ctx, batch)
	}
	if errors.Is(err, cluster.ErrConflict) {
		err = fmt.Errorf("daemon: the runtime changes kept changing under this one (%d tries); try again: %w", maxProposeTries, err)
	}
	for i, p := range batch {
		switch {
		case res != nil && res[i].err != nil:
			p.done <- res[i]
		case err != nil:
			p.done <- proposed{err: err}
		default:
			p.done <- proposed{index: idx, result: res[i].result}
		}
	}
}

// proposeOnce reads the overlay, applies and validates each change, and
// proposes the result if any change is left; res holds each change's own
// outcome (its failure, or an allow change's new list).
func (d *Daemon) proposeOnce(ctx context.Context, batch []*pendingChange) (uint64, []proposed, error) {
	base, ov, oe, _, err := d.current(ctx)
	if err != nil {
		return 0, nil, err
	}
	ver := oe.Version
	merged, err := merge(base, ov)
	if err != nil {
		return 0, nil, fmt.Errorf("daemon: the cluster's runtime changes no longer fit its configuration: %w", err)
	}
	res := make([]proposed, len(batch))
	kept := 0
	for i, p := range batch {
		next := ov.clone()
		list, err := p.change.apply(next, merged)
		if err != nil {
			res[i].err = err
			continue
		}
		m := merged
		// Allow-lists and weights do not change the merged
		// configuration (effectiveServices applies them): only a
		// structural change is merged and validated like a file again.
		if p.change.structural() {
			if m, err = merge(base, next); err != nil {
				res[i].err = fmt.Errorf("%w: %w", api.ErrInvalid, err)
				continue
			}
			// Saved state must be able to run: a change a store could
			// not take is refused before it is proposed, so that no
			// change in the log keeps a node from starting.
			if err := runnable(m, d.stateDir(base)); err != nil {
				res[i].err = fmt.Errorf("%w: %w", api.ErrInvalid, err)
				continue
			}
		}
		ov, merged = next, m
		res[i].result = list
		kept++
	}
	if kept == 0 {
		return 0, res, nil
	}
	ov.Updated = time.Now()
	op, err := overlayOp(ov)
	if err != nil {
		return 0, res, err
	}
	op.IfVersion = cluster.Version(ver)
	idx, err := d.store.Propose(ctx, op)
	if err != nil && !errors.Is(err, cluster.ErrConflict) {
		err = proposeErr(err)
	}
	return idx, res, err
}

// runnable checks that every tenant's store could be run as cfg asks:
// the KVS tier's own checks, beyond the file's.
func runnable(cfg *config.Config, stateDir string) error {
	return kvs.ValidateTenants(kvsTenants(cfg, filepath.Join(stateDir, "kvs")))
}

// Validate implements api.Backend.
func (d *Daemon) Validate(_ context.Context, yaml []byte, file string) error {
	_, err := config.Parse(yaml, file)
	return err
}

// Diff implements api.Backend: what Apply would change.
func (d *Daemon) Diff(_ context.Context, yaml []byte, file string) (api.Diff, error) {
	next, err := config.Parse(yaml, file)
	if err != nil {
		return api.Diff{}, err
	}
	d.mu.RLock()
	cur, ov := d.cfg, d.overlay
	d.mu.RUnlock()
	return diffConfigs(cur, ov, next), nil
}

// Apply implements api.Backend: the content becomes the configuration of
// every node (each writes it to its file) and the desired state; runtime
// changes are dropped, as the new file is the whole truth. Validate, Diff
// and Apply parse their input on the caller's goroutine, never on the
// loop's.
func (d *Daemon) Apply(ctx context.Context, yaml []byte, file string) (api.Diff, error) {
	next, err := config.Parse(yaml, file)
	if err != nil {
		return api.Diff{}, err
	}
	node, ok := next.NodeByName(d.opts.Node)
	if !ok {
		return api.Diff{}, fmt.Errorf("%w: node %q is not in the new file", api.ErrInvalid, d.opts.Node)
	}
	if err := d.sameRole(node); err != nil {
		return api.Diff{}, fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	if err := runnable(next, d.stateDir(next)); err != nil {
		return api.Diff{}, fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	d.mu.RLock()
	diff := diffConfigs(d.cfg, d.overlay, next)
	d.mu.RUnlock()
	cop, err := configOp(file, yaml)
	if err != nil {
		return diff, err
	}
	oop, err := overlayOp(&Overlay{Updated: time.Now()})
	if err != nil {
		return diff, err
	}
	idx, err := d.store.Propose(ctx, cop, oop)
	if err != nil {
		return diff, proposeErr(err)
	}
	api.NoteIndex(ctx, idx)
	d.events.Publish(events.Config, "configuration applied", "changes", fmt.Sprint(len(diff.Changes)), "index", fmt.Sprint(idx))
	return diff, d.waitReconciled(ctx, idx)
}

// reloadFile applies the file if its content changed since this node last
// read or wrote it (SIGHUP, POST /v1/reload).
func (d *Daemon) reloadFile(ctx context.Context) error {
	_, data, _, err := d.load()
	if err == nil {
		d.mu.RLock()
		same := sha256.Sum256(data) == d.st.fileHash
		d.mu.RUnlock()
		if same {
			// Nothing to apply; reconcile anyway, as a reload always did
			// (a kernel object removed by hand comes back).
			d.log.Info("configuration file unchanged; reconciling", "file", d.opts.ConfigPath)
			return d.do(ctx, func(ctx context.Context) error {
				d.mu.Lock()
				d.gen++
				d.mu.Unlock()
				return d.reconcile(ctx)
			})
		}
		_, err = d.Apply(ctx, data, d.opts.ConfigPath)
	}
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				d.log.Error("config rejected", "problem", p.String())
			}
		}
		d.events.Publish(events.Config, "reload rejected; running state unchanged", "error", err.Error())
		return err
	}
	d.log.Info("configuration file applied to the cluster", "file", d.opts.ConfigPath)
	return nil
}

// findService returns the desired service called name.
func findService(cfg *config.Config, name string) (config.ResolvedService, bool) {
	for _, s := range cfg.Services() {
		if s.Name == name {
			return s, true
		}
	}
	return config.ResolvedService{}, false
}

// AddService implements api.Backend.
func (d *Daemon) AddService(ctx context.Context, vs config.VirtualService) error {
	_, err := d.mutate(ctx, Change{Kind: ChangeAddService, VS: &vs})
	return err
}

// DeleteService implements api.Backend.
func (d *Daemon) DeleteService(ctx context.Context, name string) error {
	_, err := d.mutate(ctx, Change{Kind: ChangeDelService, Service: name})
	return err
}

// plainService finds a plain virtual service for a real-server change.
func plainService(cur *config.Config, name string) (config.ResolvedService, error) {
	s, ok := findService(cur, name)
	switch {
	case !ok:
		return s, fmt.Errorf("%w: service %s", api.ErrNotFound, name)
	case s.Tenant != "":
		return s, fmt.Errorf("%w: tenant %s's real servers are its storage nodes", api.ErrInvalid, s.Tenant)
	}
	return s, nil
}

func hasReal(s config.ResolvedService, ap netip.AddrPort) bool {
	return slices.ContainsFunc(s.Reals, func(r config.ResolvedReal) bool { return netip.AddrPortFrom(r.Addr, r.Port) == ap })
}

// AddReal implements api.Backend.
func (d *Daemon) AddReal(ctx context.Context, service string, r config.Real) error {
	_, err := d.mutate(ctx, Change{Kind: ChangeAddReal, Service: service, Real: &r})
	return err
}

// DeleteReal implements api.Backend.
func (d *Daemon) DeleteReal(ctx context.Context, service string, addr netip.AddrPort) error {
	_, err := d.mutate(ctx, Change{Kind: ChangeDelReal, Service: service, Addr: addr})
	return err
}

// SetWeight implements api.Backend.
func (d *Daemon) SetWeight(ctx context.Context, service string, addr netip.AddrPort, weight int) error {
	_, err := d.mutate(ctx, Change{Kind: ChangeWeight, Service: service, Addr: addr, Weight: weight})
	return err
}

// Tenants implements api.Backend.
func (d *Daemon) Tenants(context.Context) ([]api.Tenant, error) {
	d.mu.RLock()
	cfg, ov := d.cfg, d.overlay
	d.mu.RUnlock()
	var out []api.Tenant
	for _, t := range cfg.Tenants {
		s, _ := findService(cfg, t.Name)
		allow, runtime := ov.Allow[t.Name]
		if !runtime {
			allow = s.Allow
		}
		out = append(out, api.Tenant{
			Name: t.Name, VIP: s.VIP, Port: s.Port, Storage: t.KVS.Storage,
			Memory: int64(t.KVS.Memory), Allow: allow, Runtime: runtime,
		})
	}
	return out, nil
}

// AddTenant implements api.Backend.
func (d *Daemon) AddTenant(ctx context.Context, t config.Tenant) error {
	_, err := d.mutate(ctx, Change{Kind: ChangeAddTenant, NewTenant: &t})
	return err
}

// DeleteTenant implements api.Backend.
func (d *Daemon) DeleteTenant(ctx context.Context, name string) error {
	_, err := d.mutate(ctx, Change{Kind: ChangeDelTenant, Tenant: name})
	return err
}

// ChangeAllow implements api.Backend. The new list is persisted before it
// is applied, so a crash in between re-applies it at start.
func (d *Daemon) ChangeAllow(ctx context.Context, tenant string, op api.AllowOp, entries []netip.Prefix) ([]netip.Prefix, error) {
	return d.mutate(ctx, Change{Kind: ChangeAllow, Tenant: tenant, Op: op, Entries: entries})
}

// changeAllow computes a new allow-list. Adding a present entry or
// deleting an absent one is a no-op, so retries are safe.
func changeAllow(list []netip.Prefix, op api.AllowOp, entries []netip.Prefix) ([]netip.Prefix, error) {
	switch op {
	case api.AllowSet:
		out := make([]netip.Prefix, 0, len(entries))
		for _, p := range entries {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		return out, nil
	case api.AllowAdd:
		out := slices.Clone(list)
		for _, p := range entries {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		return out, nil
	case api.AllowDel:
		return slices.DeleteFunc(slices.Clone(list), func(p netip.Prefix) bool { return slices.Contains(entries, p) }), nil
	}
	return nil, fmt.Errorf("%w: allow operation %q (want add, del or set)", api.ErrInvalid, op)
}
