package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/internal/history"
	"github.com/lbd-project/lbd/internal/panel"
	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// The panel's node-to-node calls (on the cluster's mutual-TLS listener):
// a node's report (status, storage slots, recent events), and a storage
// node's figures and series of one tenant. The panel of any node asks
// every member and merges what they answer; each node keeps only its own
// series.
const (
	pathPanelNode   = "/lbd/v1/panel/node"
	pathPanelTenant = "/lbd/v1/panel/tenant"
)

// panelEvents is how many recent events a node reports.
const panelEvents = 50

// nodeReport is a node's answer to pathPanelNode.
type nodeReport struct {
	Status api.Status         `json:"status"`
	KVS    *kvs.ClusterStatus `json:"kvs,omitempty"`
	Events []events.Event     `json:"events,omitempty"`
}

// tenantReport is a storage node's answer to pathPanelTenant.
type tenantReport struct {
	Node string `json:"node"`
	// Stats: nil when the node has no store of the tenant.
	Stats     *api.KVSStats   `json:"stats,omitempty"`
	Primaries int             `json:"primaries,omitempty"`
	Backups   int             `json:"backups,omitempty"`
	Points    []history.Point `json:"points,omitempty"`
	// Error (set by the asker): the node did not answer.
	Error string `json:"-"`
}

func (r tenantReport) member() panel.Member {
	return panel.Member{Node: r.Node, Stats: r.Stats, Primaries: r.Primaries, Backups: r.Backups, Error: r.Error}
}

// handlePanelCalls registers the panel's node-to-node calls on the raft
// node's listener (nothing without a cluster section: the panel then
// asks this node only).
func (d *Daemon) handlePanelCalls() {
	rc := d.raftNode()
	if rc == nil {
		return
	}
	rc.n.Handle("GET "+pathPanelNode, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writePeerJSON(w, d.nodeReport(r.Context()))
	}))
	rc.n.Handle("GET "+pathPanelTenant, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		writePeerJSON(w, d.tenantReport(r.URL.Query().Get("tenant"), since))
	}))
}

func writePeerJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// nodeReport is what this node reports to the operator's page.
func (d *Daemon) nodeReport(ctx context.Context) nodeReport {
	st, _ := d.Status(ctx)
	rep := nodeReport{Status: st}
	if d.sub.kvs != nil {
		if ks, ok := d.sub.kvs.tier.ClusterStatus(); ok {
			rep.KVS = &ks
		}
	}
	evs := d.events.Recent()
	rep.Events = evs[max(0, len(evs)-panelEvents):]
	return rep
}

// tenantReport is this storage node's figures of tenant and, with since
// set, its series from then on.
func (d *Daemon) tenantReport(tenant string, since int64) tenantReport {
	d.mu.RLock()
	node := d.node
	d.mu.RUnlock()
	rep := tenantReport{Node: node.Name}
	if d.sub.kvs == nil {
		return rep
	}
	if ks := d.kvsStats(node, tenant); len(ks) > 0 {
		rep.Stats = &ks[0]
	}
	rep.Primaries, rep.Backups = d.slotsHeld(tenant)
	if h := d.History(); h != nil && since > 0 {
		rep.Points = h.Series(tenant, time.Unix(since, 0))
	}
	return rep
}

// slotsHeld is how many of a clustered tenant's slots this storage node
// holds as primary and as backup (0, 0: not clustered).
func (d *Daemon) slotsHeld(tenant string) (primaries, backups int) {
	ks, ok := d.sub.kvs.tier.ClusterStatus()
	if !ok {
		return 0, 0
	}
	for _, t := range ks.Tenants {
		if t.Tenant != tenant {
			continue
		}
		for _, n := range t.Nodes {
			if n.Node == ks.Node {
				return n.Primaries, n.Backups
			}
		}
	}
	return 0, 0
}

// askPeer makes a panel call to node n and decodes its answer into v.
func (d *Daemon) askPeer(ctx context.Context, rc *raftControl, cfg *config.Config, n config.Node, path string, q url.Values, v any) error {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	u := cluster.PeerURL(cfg.ClusterAddr(n), path)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := rc.n.Client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", n.Name, resp.Status)
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}

// askStorage asks every storage node of the cluster (in parallel; this
// node in-process) for tenant's figures and, with since set, its series.
// Without a cluster section only this node is asked.
func (d *Daemon) askStorage(ctx context.Context, tenant string, since int64) []tenantReport {
	d.mu.RLock()
	cfg, self := d.cfg, d.node
	d.mu.RUnlock()
	rc := d.raftNode()
	var nodes []config.Node
	for _, n := range cfg.Nodes {
		if n.Role.IsStorage() && (rc != nil || n.Name == self.Name) {
			nodes = append(nodes, n)
		}
	}
	out := make([]tenantReport, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		if n.Name == self.Name {
			out[i] = d.tenantReport(tenant, since)
			continue
		}
		wg.Go(func() {
			q := url.Values{"tenant": {tenant}}
			if since > 0 {
				q.Set("since", strconv.FormatInt(since, 10))
			}
			var r tenantReport
			if err := d.askPeer(ctx, rc, cfg, n, pathPanelTenant, q, &r); err != nil {
				r = tenantReport{Error: err.Error()}
			}
			r.Node = n.Name
			out[i] = r
		})
	}
	wg.Wait()
	return out
}

// clusterView asks every node of the cluster for its report (in
// parallel; this node in-process), in file order.
func (d *Daemon) clusterView(ctx context.Context) []panel.NodeView {
	d.mu.RLock()
	cfg, self := d.cfg, d.node
	d.mu.RUnlock()
	rc := d.raftNode()
	out := make([]panel.NodeView, len(cfg.Nodes))
	var wg sync.WaitGroup
	for i, n := range cfg.Nodes {
		out[i].Node = panel.Node{Name: n.Name, Role: string(n.Role), Address: n.Address, Self: n.Name == self.Name}
		fill := func(r nodeReport) {
			out[i].Status, out[i].KVS, out[i].Events = &r.Status, r.KVS, r.Events
		}
		switch {
		case n.Name == self.Name:
			fill(d.nodeReport(ctx))
		case rc == nil:
			out[i].Error = "no cluster section: this node cannot ask it"
		default:
			wg.Go(func() {
				var r nodeReport
				if err := d.askPeer(ctx, rc, cfg, n, pathPanelNode, nil, &r); err != nil {
					out[i].Error = err.Error()
					return
				}
				fill(r)
			})
		}
	}
	wg.Wait()
	return out
}
