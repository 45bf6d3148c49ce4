package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/internal/history"
	"github.com/lbd-project/lbd/internal/panel"
	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/kvs"
	"github.com/lbd-project/lbd/pkg/slots"
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
	rc.n.Handle("GET "+pathPanelKeys, http.HandlerFunc(d.serveKeys))
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

// storagePeers is what the panel asks storage nodes with: the file, this
// node, the raft node (nil without a cluster section) and the storage
// nodes to ask, in file order: every one in a cluster, otherwise this node
// alone if it is one.
func (d *Daemon) storagePeers() (*config.Config, config.Node, *raftControl, []config.Node) {
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
	return cfg, self, rc, nodes
}

// askStorage asks every storage node of the cluster (in parallel; this
// node in-process) for tenant's figures and, with since set, its series.
// Without a cluster section only this node is asked.
func (d *Daemon) askStorage(ctx context.Context, tenant string, since int64) []tenantReport {
	cfg, self, rc, nodes := d.storagePeers()
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
			out[i].Error = "not asked: without a cluster section a node knows only itself"
		default:
			wg.Go(func() {
				var r nodeReport
				if err := d.askPeer(ctx, rc, cfg, n, pathPanelNode, nil, &r); err != nil {
					out[i].Error = "no answer: " + err.Error()
					return
				}
				fill(r)
			})
		}
	}
	wg.Wait()
	return out
}

// pathPanelKeys is a storage node's page of a tenant's keys: those of
// the slots it is primary of (all of them for a tenant without a slot
// map), so that listing every storage node in turn lists every key once.
const pathPanelKeys = "/lbd/v1/panel/keys"

// keysReport is the answer of pathPanelKeys.
type keysReport struct {
	Page  kvs.KeyPage `json:"page"`
	Error string      `json:"error,omitempty"`
}

// localKeys is a page of this node's keys of tenant, from cursor on: a
// bounded crawl, keeping the keys of the slots this node is primary of.
func (d *Daemon) localKeys(tenant, cursor, prefix string, limit int) (kvs.KeyPage, error) {
	if d.sub.kvs == nil {
		return kvs.KeyPage{}, errors.New("this node serves no stores (it is not a storage node)")
	}
	l, ok := d.sub.kvs.tier.Local(tenant)
	if !ok {
		return kvs.KeyPage{}, fmt.Errorf("tenant %s has no store on node %s", tenant, d.node.Name)
	}
	pg, err := l.Keys(cursor, []byte(prefix), limit)
	if err != nil {
		return pg, err
	}
	if m := d.slotMap(tenant); m != nil {
		pg.Keys = slices.DeleteFunc(pg.Keys, func(k kvs.KeyInfo) bool { return m.Slots[slots.Of(k.Key)].Primary != d.node.Name })
	}
	return pg, nil
}

// slotMap is a clustered tenant's slot map as this node applied it (nil
// without one).
func (d *Daemon) slotMap(tenant string) *slots.Map {
	rc := d.raftNode()
	if rc == nil {
		return nil
	}
	e, ok := rc.n.Get(slots.Key(tenant))
	if !ok {
		return nil
	}
	m, err := slots.Decode(e.Value)
	if err != nil || len(m.Slots) != slots.Count {
		return nil
	}
	return m
}

// clusterKeys lists a page of a tenant's keys over the storage nodes in
// file order: the cursor is "N:C", the N-th storage node's crawl cursor C.
// A node that does not answer stops the listing with an error naming it
// (its keys are not skipped silently).
func (d *Daemon) clusterKeys(ctx context.Context, tenant, cursor, prefix string, limit int) (kvs.KeyPage, error) {
	cfg, self, rc, nodes := d.storagePeers()
	if len(nodes) == 0 {
		return kvs.KeyPage{}, errors.New("no storage node to list the keys of")
	}
	i, inner, err := parseKeysCursor(cursor, len(nodes))
	if err != nil {
		return kvs.KeyPage{}, err
	}
	n := nodes[i]
	var pg kvs.KeyPage
	if n.Name == self.Name {
		var err error
		if pg, err = d.localKeys(tenant, inner, prefix, limit); err != nil {
			return pg, fmt.Errorf("%s: %w", n.Name, err)
		}
	} else {
		var rep keysReport
		q := url.Values{"tenant": {tenant}, "cursor": {inner}, "prefix": {prefix}, "limit": {strconv.Itoa(limit)}}
		if err := d.askPeer(ctx, rc, cfg, n, pathPanelKeys, q, &rep); err != nil {
			return pg, fmt.Errorf("storage node %s did not answer; its keys cannot be listed now: %w", n.Name, err)
		}
		if rep.Error != "" {
			return pg, fmt.Errorf("%s: %s", n.Name, rep.Error)
		}
		pg = rep.Page
	}
	switch {
	case pg.Next != "":
		pg.Next = fmt.Sprintf("%d:%s", i, pg.Next)
	case i+1 < len(nodes):
		pg.Next = fmt.Sprintf("%d:", i+1)
	}
	return pg, nil
}

// parseKeysCursor splits a cluster key listing cursor "N:C" (N the
// storage node's place among nodes, C its crawl cursor); "" is the start.
func parseKeysCursor(cursor string, nodes int) (int, string, error) {
	if cursor == "" {
		return 0, "", nil
	}
	n, c, ok := strings.Cut(cursor, ":")
	i, err := strconv.Atoi(n)
	if !ok || err != nil || i < 0 || i >= nodes || strings.TrimLeft(n, "0123456789") != "" {
		return 0, "", fmt.Errorf("bad key listing cursor %q", cursor)
	}
	return i, c, nil
}

// serveKeys answers pathPanelKeys.
func (d *Daemon) serveKeys(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	limit = min(max(limit, 1), 1000)
	pg, err := d.localKeys(q.Get("tenant"), q.Get("cursor"), q.Get("prefix"), limit)
	rep := keysReport{Page: pg}
	if err != nil {
		rep.Error = err.Error()
	}
	writePeerJSON(w, rep)
}
