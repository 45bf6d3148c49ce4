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

// mutate makes a runtime change cluster-wide: change edits a copy of the
// overlay read from the Store (it may read the desired state it gives),
// the result is validated like a file, then proposed as a compare-and-set
// on the overlay's version (re-read and re-validated on a conflict, a
// bounded number of times), together with the changes that arrived on
// this node meanwhile (proposeChange). It returns once this node has
// applied it. Nothing changes if change or the validation fails.
func (d *Daemon) mutate(ctx context.Context, what string, change func(ov *Overlay, cur *config.Config) error) error {
	idx, err := d.proposeChange(ctx, change)
	if err != nil {
		return err
	}
	api.NoteIndex(ctx, idx)
	d.events.Publish(events.Config, "runtime change: "+what, "index", fmt.Sprint(idx))
	d.log.Info("runtime change", "change", what, "index", idx)
	return d.waitReconciled(ctx, idx)
}

// pendingChange is a runtime change waiting for its turn to be proposed.
type pendingChange struct {
	change func(ov *Overlay, cur *config.Config) error
	done   chan proposed
}

// proposed is a pending change's outcome: the index of the write that
// carries it, or why it was not written.
type proposed struct {
	index uint64
	err   error
}

// proposeChange has change proposed: the writer that gets the turn takes
// every change waiting on this node and proposes them as one write (group
// commit), each applied and validated in turn on top of the previous
// ones; a change that fails alone is left out with its error. Writers on
// this node thus never conflict with each other, only with other nodes.
func (d *Daemon) proposeChange(ctx context.Context, change func(ov *Overlay, cur *config.Config) error) (uint64, error) {
	p := &pendingChange{change: change, done: make(chan proposed, 1)}
	d.pendMu.Lock()
	d.pending = append(d.pending, p)
	d.pendMu.Unlock()
	d.writeMu.Lock()
	d.pendMu.Lock()
	batch := d.pending
	d.pending = nil
	d.pendMu.Unlock()
	if len(batch) > 0 {
		d.proposeBatch(ctx, batch)
	}
	d.writeMu.Unlock()
	r := <-p.done // ours was in this batch or an earlier one
	return r.index, r.err
}

// proposeBatch proposes the changes of batch as one compare-and-set of the
// overlay, re-read and redone on a conflict (a bounded number of times),
// and tells each change its outcome.
func (d *Daemon) proposeBatch(ctx context.Context, batch []*pendingChange) {
	var errs []error
	var idx uint64
	err := cluster.ErrConflict
	for try := 0; try < maxProposeTries && errors.Is(err, cluster.ErrConflict); try++ {
		idx, errs, err = d.proposeOnce(ctx, batch)
	}
	if errors.Is(err, cluster.ErrConflict) {
		err = fmt.Errorf("daemon: the runtime changes kept changing under this one (%d tries); try again: %w", maxProposeTries, err)
	}
	for i, p := range batch {
		switch {
		case errs != nil && errs[i] != nil:
			p.done <- proposed{err: errs[i]}
		case err != nil:
			p.done <- proposed{err: err}
		default:
			p.done <- proposed{index: idx}
		}
	}
}

// proposeOnce reads the overlay, applies and validates each change, and
// proposes the result if any change is left; errs holds each change's own
// failure.
func (d *Daemon) proposeOnce(ctx context.Context, batch []*pendingChange) (uint64, []error, error) {
	base, ov, ver, err := d.current(ctx)
	if err != nil {
		return 0, nil, err
	}
	merged, err := merge(base, ov)
	if err != nil {
		return 0, nil, fmt.Errorf("daemon: the cluster's runtime changes no longer fit its configuration: %w", err)
	}
	errs := make([]error, len(batch))
	kept := 0
	for i, p := range batch {
		next := ov.clone()
		if err := p.change(next, merged); err != nil {
			errs[i] = err
			continue
		}
		m, err := merge(base, next)
		if err != nil {
			errs[i] = fmt.Errorf("%w: %w", api.ErrInvalid, err)
			continue
		}
		// Saved state must be able to run: a change a store could not
		// take is refused before it is proposed, so that no change in the
		// log keeps a node from starting.
		if err := runnable(m, d.stateDir(base)); err != nil {
			errs[i] = fmt.Errorf("%w: %w", api.ErrInvalid, err)
			continue
		}
		ov, merged = next, m
		kept++
	}
	if kept == 0 {
		return 0, errs, nil
	}
	ov.Updated = time.Now()
	op, err := overlayOp(ov)
	if err != nil {
		return 0, errs, err
	}
	op.IfVersion = cluster.Version(ver)
	idx, err := d.store.Propose(ctx, op)
	if err != nil && !errors.Is(err, cluster.ErrConflict) {
		err = proposeErr(err)
	}
	return idx, errs, err
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
	name := serviceName(vs.Protocol, vs.VIP, vs.Port)
	return d.mutate(ctx, "add service "+name, func(ov *Overlay, cur *config.Config) error {
		if _, ok := findService(cur, name); ok {
			return fmt.Errorf("%w: service %s", api.ErrConflict, name)
		}
		ov.Services = append(ov.Services, vs)
		return nil
	})
}

// DeleteService implements api.Backend.
func (d *Daemon) DeleteService(ctx context.Context, name string) error {
	return d.mutate(ctx, "delete service "+name, func(ov *Overlay, cur *config.Config) error {
		s, ok := findService(cur, name)
		switch {
		case !ok:
			return fmt.Errorf("%w: service %s", api.ErrNotFound, name)
		case s.Tenant != "":
			return fmt.Errorf("%w: %s is tenant %s's service; use tenant del", api.ErrInvalid, name, s.Tenant)
		}
		n := len(ov.Services)
		ov.Services = slices.DeleteFunc(ov.Services, func(v config.VirtualService) bool {
			return serviceName(v.Protocol, v.VIP, v.Port) == name
		})
		if len(ov.Services) == n {
			ov.DeletedServices = append(ov.DeletedServices, name)
		}
		delete(ov.Reals, name)
		delete(ov.DeletedReals, name)
		return nil
	})
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
	return d.mutate(ctx, "add real "+r.Address+" to "+service, func(ov *Overlay, cur *config.Config) error {
		s, err := plainService(cur, service)
		if err != nil {
			return err
		}
		ap := realAddr(r, int(s.Port))
		if !ap.Addr().IsValid() {
			return fmt.Errorf("%w: real server address %q", api.ErrInvalid, r.Address)
		}
		if hasReal(s, ap) {
			return fmt.Errorf("%w: real server %s in %s", api.ErrConflict, ap, service)
		}
		if ov.Reals == nil {
			ov.Reals = map[string][]config.Real{}
		}
		ov.Reals[service] = append(slices.Clone(ov.Reals[service]), r)
		return nil
	})
}

// DeleteReal implements api.Backend.
func (d *Daemon) DeleteReal(ctx context.Context, service string, addr netip.AddrPort) error {
	return d.mutate(ctx, "delete real "+addr.String()+" from "+service, func(ov *Overlay, cur *config.Config) error {
		s, err := plainService(cur, service)
		if err != nil {
			return err
		}
		if !hasReal(s, addr) {
			return fmt.Errorf("%w: real server %s in %s", api.ErrNotFound, addr, service)
		}
		added := ov.Reals[service]
		kept := slices.DeleteFunc(slices.Clone(added), func(r config.Real) bool { return realAddr(r, int(s.Port)) == addr })
		if len(kept) == len(added) {
			if ov.DeletedReals == nil {
				ov.DeletedReals = map[string][]netip.AddrPort{}
			}
			ov.DeletedReals[service] = append(slices.Clone(ov.DeletedReals[service]), addr)
		} else if ov.Reals[service] = kept; len(kept) == 0 {
			delete(ov.Reals, service)
		}
		delete(ov.Weights, realID(s, config.ResolvedReal{Addr: addr.Addr(), Port: addr.Port()}))
		return nil
	})
}

// SetWeight implements api.Backend.
func (d *Daemon) SetWeight(ctx context.Context, service string, addr netip.AddrPort, weight int) error {
	what := fmt.Sprintf("weight of %s in %s to %d", addr, service, weight)
	return d.mutate(ctx, what, func(ov *Overlay, cur *config.Config) error {
		if weight < 0 || weight > 65535 {
			return fmt.Errorf("%w: weight %d out of range 0-65535", api.ErrInvalid, weight)
		}
		s, ok := findService(cur, service)
		if !ok {
			return fmt.Errorf("%w: service %s", api.ErrNotFound, service)
		}
		if !hasReal(s, addr) {
			return fmt.Errorf("%w: real server %s in %s", api.ErrNotFound, addr, service)
		}
		if ov.Weights == nil {
			ov.Weights = map[string]int{}
		}
		ov.Weights[realID(s, config.ResolvedReal{Addr: addr.Addr(), Port: addr.Port()})] = weight
		return nil
	})
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
	return d.mutate(ctx, "add tenant "+t.Name, func(ov *Overlay, cur *config.Config) error {
		if slices.ContainsFunc(cur.Tenants, func(x config.Tenant) bool { return x.Name == t.Name }) {
			return fmt.Errorf("%w: tenant %s", api.ErrConflict, t.Name)
		}
		ov.Tenants = append(ov.Tenants, t)
		return nil
	})
}

// DeleteTenant implements api.Backend.
func (d *Daemon) DeleteTenant(ctx context.Context, name string) error {
	return d.mutate(ctx, "delete tenant "+name, func(ov *Overlay, cur *config.Config) error {
		if !slices.ContainsFunc(cur.Tenants, func(x config.Tenant) bool { return x.Name == name }) {
			return fmt.Errorf("%w: tenant %s", api.ErrNotFound, name)
		}
		n := len(ov.Tenants)
		ov.Tenants = slices.DeleteFunc(ov.Tenants, func(x config.Tenant) bool { return x.Name == name })
		if len(ov.Tenants) == n {
			ov.DeletedTenants = append(ov.DeletedTenants, name)
		}
		delete(ov.Allow, name)
		return nil
	})
}

// ChangeAllow implements api.Backend. The new list is persisted before it
// is applied, so a crash in between re-applies it at start.
func (d *Daemon) ChangeAllow(ctx context.Context, tenant string, op api.AllowOp, entries []netip.Prefix) ([]netip.Prefix, error) {
	var result []netip.Prefix
	err := d.mutate(ctx, fmt.Sprintf("allow %s %s %v", op, tenant, entries), func(ov *Overlay, cur *config.Config) error {
		s, ok := findService(cur, tenant)
		if !ok || s.Tenant == "" {
			return fmt.Errorf("%w: tenant %s", api.ErrNotFound, tenant)
		}
		for _, p := range entries {
			if !p.IsValid() || p.Masked() != p {
				return fmt.Errorf("%w: allow entry %s (host bits set or invalid)", api.ErrInvalid, p)
			}
		}
		list, ok := ov.Allow[tenant]
		if !ok {
			list = s.Allow
		}
		next, err := changeAllow(list, op, entries)
		if err != nil {
			return err
		}
		if ov.Allow == nil {
			ov.Allow = map[string][]netip.Prefix{}
		}
		ov.Allow[tenant] = next
		result = next
		return nil
	})
	return result, err
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
