package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// kvsRunner serves the tenants' stores on a storage node.
type kvsRunner struct {
	tier *kvs.Tier
	dir  string
}

func newKVSRunner(log *slog.Logger, dir string) *kvsRunner {
	return &kvsRunner{tier: kvs.New(log, kvs.Options{}), dir: dir}
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
			Listen:       fmt.Sprintf(":%d", t.Service.Port),
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

// apply adds, changes and removes tenants without disturbing the others.
func (r *kvsRunner) apply(ctx context.Context, cfg *config.Config) error {
	if err := r.tier.Apply(ctx, kvsTenants(cfg, r.dir)); err != nil {
		return fmt.Errorf("kvs: %w", err)
	}
	return nil
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
			CurrConns: uint64(s.CurrConnections), TotalConns: s.TotalConnections, OpsPerSec: s.OpsPerSec,
			StorageKind: string(s.Store),
		})
	}
	return out
}
