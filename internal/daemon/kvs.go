package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/pkg/acl"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// kvsRunner serves the tenants' stores on a storage node.
type kvsRunner struct {
	tier *kvs.Tier
	dir  string
	// reported is the tenants reported as failing to start, with why:
	// each failure is logged and published once, when it starts or
	// changes.
	reported map[string]string
}

// newKVSRunner returns an empty tier with opts, its memory limit following
// the tenants (the tier is the process's), durable stores under dir.
func newKVSRunner(log *slog.Logger, dir string, opts kvs.Options) *kvsRunner {
	opts.GoMemoryLimit = true
	return &kvsRunner{tier: kvs.New(log, opts), dir: dir}
}

// kvsTenants maps the file's tenants to the KVS tier's: each on its own
// port on every address (the VIP on lo for DR traffic, the node's address
// for health checks), each durable store in its own directory.
func kvsTenants(cfg *config.Config, dir string) []kvs.TenantConfig {
	var out []kvs.TenantConfig
	for _, t := range cfg.Tenants {
		k := t.KVS
		out = append(out, kvs.TenantConfig{
			Name:         t.Name,
			Listen:       kvsListen(t.Service.Port),
			Store:        kvs.StoreKind(k.Storage),
			MemoryLimit:  int64(k.Memory),
			Dir:          filepath.Join(dir, t.Name),
			Sync:         kvs.SyncMode(k.Sync),
			SyncInterval: k.SyncInterval.D(),
			MaxItemSize:  int(k.MaxItemSize),
			MaxConns:     k.MaxConnections,
			IdleTimeout:  k.IdleTimeout.D(),
		})
	}
	return out
}

// kvsListen is the address a tenant's store listens on: its port on every
// address.
func kvsListen(port int) string { return fmt.Sprintf(":%d", port) }

// apply adds, changes and removes tenants without disturbing the others.
// A tenant that cannot start is left out; report tells of it.
func (r *kvsRunner) apply(ctx context.Context, want []kvs.TenantConfig) error {
	if err := r.tier.Apply(ctx, want); err != nil {
		return fmt.Errorf("kvs: %w", err)
	}
	return nil
}

// report logs and publishes each tenant that newly fails to start (or
// fails for a new reason), and each that recovered.
func (r *kvsRunner) report(log *slog.Logger, bus *events.Bus) {
	if bus == nil {
		bus = events.NewBus(1)
	}
	now := map[string]string{}
	for name, err := range r.tier.Failed() {
		msg := err.Error()
		now[name] = msg
		if r.reported[name] != msg {
			log.Error("kvs tenant cannot start; the other tenants serve", "tenant", name, "error", msg)
			bus.Publish(events.KVS, "tenant cannot start", "tenant", name, "error", msg)
		}
	}
	for name := range r.reported {
		if _, still := now[name]; !still {
			log.Info("kvs tenant no longer failing", "tenant", name)
			bus.Publish(events.KVS, "tenant no longer failing", "tenant", name)
		}
	}
	r.reported = now
}

// port returns the port a tenant's store is served on, if it runs.
func (r *kvsRunner) port(name string) (int, bool) {
	a, ok := r.tier.Addr(name)
	if !ok {
		return 0, false
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return 0, false
	}
	return ta.Port, true
}

// fencedKVS holds back, with storage_acl, every store whose port the
// storage ACL does not fence yet (its apply failed): a new tenant is not
// started, and one that moved stays on the port it is served on, until a
// reconcile finds the storage ACL fencing exactly its port and protocol.
// fence is what the storage ACL was asked for. It returns the stores to
// run, and an error naming the tenants held back so that the reconcile
// counts as failed (the next one, at the latest on the resync interval,
// tries again).
func (d *Daemon) fencedKVS(want []kvs.TenantConfig, fence []acl.Tenant) ([]kvs.TenantConfig, error) {
	asked := make(map[string]acl.Tenant, len(fence))
	for _, f := range fence {
		asked[f.Name] = f
	}
	out := make([]kvs.TenantConfig, 0, len(want))
	var held []string
	for _, c := range want {
		f, ok := asked[c.Name]
		have, fenced := d.sub.storACL.Tenant(c.Name)
		if ok && fenced && sameService(have, f) {
			out = append(out, c)
			continue
		}
		held = append(held, c.Name)
		reason := "the storage ACL does not fence it"
		if fenced {
			reason = fmt.Sprintf("the storage ACL fences it on %s/%d", have.Protocol, have.Port)
		}
		logger := d.log.With("tenant", c.Name, "port", f.Port, "protocol", string(f.Protocol), "reason", reason)
		if port, running := d.sub.kvs.port(c.Name); running {
			c.Listen = kvsListen(port)
			out = append(out, c)
			logger.Warn("kvs tenant not moved to its new port until the port is fenced; served on its current one", "current_port", port)
			continue
		}
		logger.Warn("kvs tenant not started until its port is fenced")
	}
	if len(held) > 0 {
		return out, fmt.Errorf("kvs: tenants %s held back until the storage ACL fences their ports", strings.Join(held, ", "))
	}
	return out, nil
}

func (r *kvsRunner) close() { r.tier.Close() }

// kvsStats reports this node's tenants' counters.
func (d *Daemon) kvsStats(node config.Node, tenant string) []api.KVSStats {
	if d.sub.kvs == nil {
		return nil
	}
	var out []api.KVSStats
	for _, s := range d.sub.kvs.tier.Stats() {
		if tenant != "" && s.Name != tenant {
			continue
		}
		out = append(out, api.KVSStats{
			Node: node.Name, Tenant: s.Name, Listen: s.Listen, Items: uint64(s.Items), Bytes: uint64(s.Bytes),
			LimitBytes: uint64(s.LimitBytes), Hits: s.Hits, Misses: s.Misses, Evictions: s.Evictions,
			CurrConns: uint64(s.CurrConnections), TotalConns: s.TotalConnections, OpsPerSec: s.OpsPerSec, Commands: s.Commands,
			StorageKind: string(s.Store),
		})
	}
	failed := d.sub.kvs.tier.Failed()
	for _, name := range slices.Sorted(maps.Keys(failed)) {
		if tenant == "" || name == tenant {
			out = append(out, api.KVSStats{Node: node.Name, Tenant: name, Error: failed[name].Error()})
		}
	}
	return out
}
