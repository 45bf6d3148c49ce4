package daemon

import (
	"context"
	"path/filepath"
	"sync"
	"time"

	"github.com/lbd-project/lbd/internal/credential"
	"github.com/lbd-project/lbd/internal/history"
	"github.com/lbd-project/lbd/pkg/config"
)

// historyDir is where the tenants' series are kept in the state directory.
const historyDir = "history"

// historySaveEvery is how often the series are written to disk (and on
// stop): a crash loses at most this much.
const historySaveEvery = time.Minute

// runHistory samples this storage node's tenants every history.Step and
// saves the series every minute and when ctx ends.
func (d *Daemon) runHistory(ctx context.Context, wg *sync.WaitGroup) {
	if d.sub.kvs == nil {
		return
	}
	dir := filepath.Join(d.stateDir(d.cfg), historyDir)
	rec, err := history.Load(dir)
	if err != nil {
		d.log.Warn("history: some series could not be read; they start anew", "error", err)
	}
	d.mu.Lock()
	d.hist = rec
	d.mu.Unlock()
	wg.Go(func() {
		tick := time.NewTicker(history.Step)
		defer tick.Stop()
		lastSave := time.Now()
		for {
			select {
			case <-ctx.Done():
				if err := rec.Save(dir); err != nil {
					d.log.Error("history: save", "error", err)
				}
				return
			case now := <-tick.C:
				rec.Record(now, d.historySamples())
				if now.Sub(lastSave) >= historySaveEvery {
					lastSave = now
					if err := rec.Save(dir); err != nil {
						d.log.Error("history: save", "error", err)
					}
				}
			}
		}
	})
}

// historySamples reads this node's tenants' counters. A clustered
// tenant's records are the node's primaries' share of them (primary
// slots among the slots it holds: the replicas are counted on their
// primaries), so that the nodes' series add up to the tenant's records;
// its bytes are what the node holds, replicas included (the memory
// graph, against the node's limit).
func (d *Daemon) historySamples() []history.Sample {
	var out []history.Sample
	for _, s := range d.sub.kvs.tier.Stats() {
		if p, b := d.slotsHeld(s.Name); p+b > 0 {
			s.Items = int64(float64(s.Items)*float64(p)/float64(p+b) + 0.5)
		}
		out = append(out, history.Sample{Tenant: s.Name, Items: s.Items, Bytes: s.Bytes, Limit: s.LimitBytes,
			Conns: s.CurrConnections, Hits: s.Hits, Misses: s.Misses, Evictions: s.Evictions, Commands: s.Commands})
	}
	return out
}

// History returns the recorder of this node's tenants' series (nil on a
// node without stores, or before Run).
func (d *Daemon) History() *history.Recorder {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.hist
}

// forgetRemovedTenants drops what lbd keeps for tenants no longer in the
// desired state: their credentials and tokens (a tenant added again under
// the same name starts without them) and their history.
func (d *Daemon) forgetRemovedTenants(cfg *config.Config) {
	live := map[string]bool{}
	for _, t := range cfg.Tenants {
		live[t.Name] = true
	}
	if d.creds != nil && !d.creds.Shared() { // shared: the leader drops them (dropRemovedCredentials)
		for _, e := range d.creds.Entries() {
			if e.Subject != credential.Operator && !live[e.Subject] {
				if err := d.creds.RevokeSubject(e.Subject); err != nil {
					d.log.Error("credentials of a removed tenant not revoked", "tenant", e.Subject, "error", err)
				} else {
					d.log.Info("credentials of a removed tenant revoked", "tenant", e.Subject)
				}
			}
		}
	}
	if h := d.History(); h != nil {
		dir := filepath.Join(d.stateDir(cfg), historyDir)
		for _, name := range h.Tenants() {
			if !live[name] {
				h.Forget(name)
				if err := history.Remove(dir, name); err != nil {
					d.log.Warn("history of a removed tenant not deleted", "tenant", name, "error", err)
				}
			}
		}
	}
}
